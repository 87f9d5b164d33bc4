"""Real, public-domain frames for tests, benchmarks and demos.

The portrait of astronaut Eileen Collins (NASA, public domain) and a photo of coffee ship
inside scikit-image, a test/benchmark dependency (requirements-dev.txt), so nothing is
downloaded. Frames are placed on a canvas the way a webcam frames a face.
"""

from __future__ import annotations

import cv2
import numpy as np


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
    rng = np.random.default_rng(seed)
    dim = place_on_canvas(astronaut(), size).astype(np.float32) * 0.6
    clip = []
    for _ in range(frames):
        dx, dy = rng.integers(-3, 4, size=2)
        frame = np.roll(dim, (dy, dx), axis=(0, 1)) + rng.normal(0, 20, dim.shape)
        clip.append(np.clip(frame, 0, 255).astype(np.uint8))
    return clip
