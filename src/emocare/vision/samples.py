"""Real, public-domain frames for tests, benchmarks and demos.

The portrait of astronaut Eileen Collins (NASA, public domain) and a photo of coffee ship
inside scikit-image, a test/benchmark dependency (requirements-dev.txt), so nothing is
downloaded. Frames are placed on a canvas the way a webcam frames a face.
"""

from __future__ import annotations

import io

import cv2
import numpy as np

from .types import CROP_MAX_SIDE


def _skimage_data():
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - a clear message for a missing dev dependency
        raise RuntimeError("Sample images need scikit-image: pip install -r requirements-dev.txt") from exc
    return data


def astronaut() -> np.ndarray:
    """The 512×512 portrait as BGR."""
    return cv2.cvtColor(_skimage_data().astronaut(), cv2.COLOR_RGB2BGR)


def coffee() -> np.ndarray:
    """A photo with no face in it, as BGR."""
    return cv2.cvtColor(_skimage_data().coffee(), cv2.COLOR_RGB2BGR)


#: scikit-image's pictures without a human face (a cat's face is not one either, but detectors
#: take it for one; it is left out so that what is counted is pictures nobody would call a face)
FACE_FREE = (
    "brick",
    "checkerboard",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "moon",
    "page",
    "retina",
    "rocket",
    "shepp_logan_phantom",
    "text",
)


def face_free() -> dict[str, np.ndarray]:
    """Pictures with no face in them, by name, as BGR (grey and float ones made 8-bit colour)."""
    data = _skimage_data()
    pictures = {}
    for name in FACE_FREE:
        if not hasattr(data, name):
            continue
        image = np.asarray(getattr(data, name)(), dtype=np.float64)
        image = (255 * (image - image.min()) / max(float(np.ptp(image)), 1e-9)).astype(np.uint8)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        pictures[name] = np.ascontiguousarray(image[..., 2::-1])
    return pictures


def place_on_canvas(image: np.ndarray, size=(640, 480), face_height: float = 1.0, fill: int = 110) -> np.ndarray:
    """Centre ``image``, scaled to ``face_height`` of the canvas height (or to fit), on a grey canvas."""
    width, height = size
    scale = min(height * face_height / image.shape[0], width / image.shape[1])
    new_size = (int(image.shape[1] * scale), int(image.shape[0] * scale))
    scaled = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), fill, dtype=np.uint8)
    x = (width - scaled.shape[1]) // 2
    y = (height - scaled.shape[0]) // 2
    canvas[y : y + scaled.shape[0], x : x + scaled.shape[1]] = scaled
    return canvas


def camera_frame(image: np.ndarray, size=(640, 480), face_height: float = 0.75) -> np.ndarray:
    """A labelled face photo or crop as a webcam would frame it, for clips and fake cameras.

    A tight face crop (64 px or less, as in FER2013 and CK+) first gets a third of its side of
    surroundings (edge pixels repeated): a face detector needs some context to find a face.
    """
    if max(image.shape[:2]) <= CROP_MAX_SIDE:
        pad = image.shape[0] // 3
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return place_on_canvas(image, size, face_height=face_height)


def progressive_jpeg(image: np.ndarray, scans_repeated: int = 0) -> bytes:
    """A real progressive JPEG; ``scans_repeated`` more copies of its smallest scan are put
    before the end marker, as in the scan bomb the hardening issue measured (every copy is more
    decoding work: about 70,000 in 990,000 bytes took 19 to 25 s to decode)."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(image[:, :, ::-1]).save(buffer, "JPEG", progressive=True, quality=70)
    data = buffer.getvalue()
    starts = [k for k in range(len(data) - 1) if data[k : k + 2] == b"\xff\xda"]
    scans = [data[a:b] for a, b in zip(starts, [*starts[1:], len(data) - 2], strict=True)]
    return data[:-2] + min(scans, key=len) * scans_repeated + data[-2:]


def to_jpeg(image: np.ndarray, quality: int = 70) -> bytes:
    """JPEG bytes, at the quality the page uses (0.7)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the image as JPEG")
    return buf.tobytes()


def noisy_steady_clip(frames: int = 60, seed: int = 7, size=(320, 240)) -> list[np.ndarray]:
    """One face that does not move or change, filmed badly: dim light, sensor noise, jitter.

    The model's raw label flickers on such a clip (its expression never changes), which is
    what smoothing must absorb; used by the tests and by ``bench``.
    """
    dim = place_on_canvas(astronaut(), size).astype(np.float32) * 0.6
    return list(jittered(dim, np.random.default_rng(seed), frames, noise=20))


def jittered(base: np.ndarray, rng: np.random.Generator, frames: int, noise: float, jpeg_quality: int | None = None):
    """Frames of a still scene as a cheap webcam films it: up to 3 px of jitter and sensor
    noise each frame, and, with ``jpeg_quality``, the page's JPEG compression."""
    for _ in range(frames):
        dx, dy = rng.integers(-3, 4, size=2)
        frame = np.clip(np.roll(base, (dy, dx), axis=(0, 1)) + rng.normal(0, noise, base.shape), 0, 255)
        frame = frame.astype(np.uint8)
        if jpeg_quality is not None:
            frame = cv2.imdecode(np.frombuffer(to_jpeg(frame, jpeg_quality), np.uint8), cv2.IMREAD_COLOR)
        yield frame


#: The astronaut's face in the 512×512 portrait, as BlazeFace frames it (x, y, w, h).
ASTRONAUT_FACE = (176, 74, 99, 99)


def scene(face_share: float, size=(640, 480), faces: int = 1, fill: int = 110) -> np.ndarray:
    """A webcam-like frame whose face(s) fill ``face_share`` of its height: near, mid or far.

    With two faces, the portrait and its mirror image stand side by side.
    """
    width, height = size
    portrait = astronaut()
    x, y, w, h = ASTRONAUT_FACE
    scale = face_share * height / h
    scaled = cv2.resize(
        portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    canvas = np.full((height, width, 3), fill, dtype=np.uint8)
    centres = [width / 2] if faces == 1 else [width * (k + 1) / (faces + 1) for k in range(faces)]
    for k, centre in enumerate(centres):
        image = scaled if k % 2 == 0 else scaled[:, ::-1]
        face_cx = (x + w / 2) * scale if k % 2 == 0 else image.shape[1] - (x + w / 2) * scale
        left, top = round(centre - face_cx), round(height / 2 - (y + h / 2) * scale)
        # paste the part of the portrait that falls inside the canvas
        sx, sy = max(0, -left), max(0, -top)
        dx, dy = max(0, left), max(0, top)
        pw, ph = min(image.shape[1] - sx, width - dx), min(image.shape[0] - sy, height - dy)
        if faces > 1:  # keep each portrait to its own half
            slot = width // faces
            dx_end = min(dx + pw, (k + 1) * slot)
            sx += max(0, k * slot - dx)
            dx = max(dx, k * slot)
            pw = dx_end - dx
        if pw > 0 and ph > 0:
            canvas[dy : dy + ph, dx : dx + pw] = image[sy : sy + ph, sx : sx + pw]
    return canvas
