"""Turning untrusted bytes from a browser into an image, with errors a person can read.

Frames come from the network, so everything here assumes the bytes may be empty, huge, not an
image at all, or an image that declares enormous dimensions to exhaust memory when decoded.
Nothing is ever written to disk: frames live only in memory for the time of one analysis.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

#: What a browser's canvas encodes; nothing else is parsed (each PIL plugin is attack surface).
FORMATS = ("JPEG", "PNG", "WEBP")
#: Most JPEG scans a frame may have. A browser's canvas writes baseline JPEG (one scan); a
#: progressive encoder writes about ten. A progressive JPEG of 990,000 bytes with about 70,000
#: repeated scans passed every other check and took 19-25 s to decode (measured here).
MAX_JPEG_SCANS = 16


class FrameError(ValueError):
    """A frame that cannot be analysed; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self):  # keep code and message when pickled to or from a worker process
        return (FrameError, (self.code, self.message))

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class FrameLimits:
    """Upper bounds on what a client may send."""

    max_bytes: int = 1_000_000
    max_side: int = 1920


def check_frame(data: object, limits: FrameLimits = FrameLimits()) -> bytes:
    """Validate a frame from its header alone (tens of microseconds), or raise :class:`FrameError`.

    Cheap enough to run on the server's event loop, so bad frames are answered at once instead
    of waiting behind other clients' inference; an image that claims to be 30000 px wide is
    refused before any pixel is decoded.
    """
    if isinstance(data, memoryview | bytearray):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise FrameError("bad_type", "A frame must be binary image data (JPEG or PNG bytes).")
    if not data:
        raise FrameError("empty", "The frame was empty.")
    if len(data) > limits.max_bytes:
        raise FrameError(
            "too_large",
            f"The frame is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes. "
            "Send a smaller or more compressed image.",
        )
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as header:
            width, height = header.size
    except Image.DecompressionBombError as exc:  # PIL's own guard against pixel bombs
        message = f"The frame declares too many pixels; the limit is {limits.max_side} px per side."
        raise FrameError("too_large", message) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise FrameError("undecodable", "The frame is not a decodable image (JPEG, PNG or WebP).") from exc
    if max(width, height) > limits.max_side:
        raise FrameError(
            "too_large",
            f"The frame is {width}×{height} px; the limit is {limits.max_side} px per side.",
        )
    if data[:2] == b"\xff\xd8" and jpeg_scans(data) > MAX_JPEG_SCANS:
        raise FrameError(
            "too_complex",
            f"The frame has more than {MAX_JPEG_SCANS} JPEG scans; send a baseline JPEG, as a canvas writes.",
        )
    return data


def jpeg_scans(data: bytes) -> int:
    """An upper bound on a JPEG's scans: its start-of-scan markers, counted at C speed.

    Entropy-coded data never holds the byte pair FF DA (an FF there is always followed by 00
    or a restart marker), so every FF DA is a scan header, or a byte pair inside a metadata
    segment (which a canvas does not write): never fewer than the real scans.
    """
    return data.count(b"\xff\xda")


def decode_frame(data: object, limits: FrameLimits = FrameLimits()) -> np.ndarray:
    """Decode a JPEG/PNG/WebP frame into a BGR array, or raise :class:`FrameError`."""
    data = check_frame(data, limits)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise FrameError("undecodable", "The frame is not a decodable image.")
    return image
