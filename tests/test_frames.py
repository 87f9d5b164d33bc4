"""Decoding untrusted frames: every bad input gets a clear, stable error code."""

import zlib

import cv2
import numpy as np
import pytest

from emocare.vision import FrameError, FrameLimits, check_frame, decode_frame
from emocare.vision.frames import MAX_JPEG_SCANS, jpeg_scans
from emocare.vision.samples import progressive_jpeg


def test_decodes_a_real_jpeg(astronaut_jpeg):
    image = decode_frame(astronaut_jpeg)
    assert image.shape == (240, 320, 3)


def test_decodes_png_and_memoryview(astronaut_frame):
    ok, png = cv2.imencode(".png", astronaut_frame)
    assert ok
    assert decode_frame(memoryview(png.tobytes())).shape == (240, 320, 3)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "undecodable"),
        ("a string, not bytes", "bad_type"),
        (None, "bad_type"),
        ({"nested": b"x"}, "bad_type"),
    ],
)
def test_bad_payloads(payload, code):
    with pytest.raises(FrameError) as err:
        decode_frame(payload)
    assert err.value.code == code
    assert err.value.message


def test_truncated_jpeg_is_refused_or_decoded_without_crash(astronaut_jpeg):
    with pytest.raises(FrameError) as err:
        decode_frame(astronaut_jpeg[:20])
    assert err.value.code == "undecodable"


def test_too_many_bytes(astronaut_jpeg):
    with pytest.raises(FrameError) as err:
        decode_frame(astronaut_jpeg, FrameLimits(max_bytes=len(astronaut_jpeg) - 1))
    assert err.value.code == "too_large"
    assert f"{len(astronaut_jpeg):,}" in err.value.message


def test_huge_dimensions_refused_before_decoding():
    # A tiny PNG that declares 4000×4000: the header check refuses it without decoding.
    ok, png = cv2.imencode(".png", np.zeros((4000, 4000), dtype=np.uint8))
    assert ok and len(png) < 1_000_000
    with pytest.raises(FrameError) as err:
        decode_frame(png.tobytes(), FrameLimits(max_side=1920))
    assert err.value.code == "too_large"


def test_frame_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(FrameError("empty", "The frame was empty.")))
    assert (err.code, err.message) == ("empty", "The frame was empty.")


def test_pixel_bomb_is_too_large_not_a_crash():
    """A PNG header claiming 30000×30000 trips PIL's own bomb guard: a clear too_large error."""
    _, png = cv2.imencode(".png", np.zeros((8, 8), dtype=np.uint8))
    data = bytearray(png.tobytes())
    data[16:24] = (30000).to_bytes(4, "big") * 2  # IHDR width and height…
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # …with a valid checksum
    with pytest.raises(FrameError) as err:
        decode_frame(bytes(data), FrameLimits(max_side=100_000))
    assert err.value.code == "too_large"


@pytest.mark.parametrize("ext", [".bmp", ".tiff"])
def test_only_browser_formats_are_parsed(astronaut_frame, ext):
    ok, data = cv2.imencode(ext, astronaut_frame)
    assert ok
    with pytest.raises(FrameError) as err:
        decode_frame(data.tobytes())
    assert err.value.code == "undecodable"


def test_an_ordinary_progressive_jpeg_is_accepted(astronaut_frame):
    data = progressive_jpeg(astronaut_frame)
    assert 1 < jpeg_scans(data) <= MAX_JPEG_SCANS
    assert decode_frame(data).shape == astronaut_frame.shape


def test_a_scan_bomb_is_refused_before_decoding(astronaut_frame):
    bomb = progressive_jpeg(astronaut_frame, scans_repeated=2_000)
    assert len(bomb) < 1_000_000  # it passes the byte limit, as the measured one did
    with pytest.raises(FrameError) as refused:
        check_frame(bomb)  # from the bytes alone: no pixel is decoded
    assert refused.value.code == "too_complex" and str(MAX_JPEG_SCANS) in refused.value.message
