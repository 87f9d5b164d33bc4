"""The DeepFace backend: DeepFace's own emotion model through the real ``DeepFace.analyze`` path.

DeepFace needs its weights (``facial_expression_model_weights.h5``, about 6 MB) in
``$DEEPFACE_HOME/.deepface/weights``. When the file is absent, the first use fetches it from
DeepFace's own source URLs (``deepface.models.demography.tf.Emotion.WEIGHTS_URL``, tried in
order; ``EMOCARE_DEEPFACE_WEIGHTS_URLS`` names others), as DeepFace itself would, but within a
bounded wait (``DOWNLOAD_TIMEOUT_S``, or the ``EMOCARE_DEEPFACE_DOWNLOAD_S`` environment
variable), with its progress in the log, into a ``.part`` file that becomes the weights only
once it is whole and an HDF5 file. DeepFace's own download (gdown) has no overall deadline,
writes straight into the final path, and reports progress only on stderr. Where no source
answers (offline) or the wait runs out, this backend refuses to start with a message saying
where to put the file, and ``build_analyzer`` falls back to fer; nothing crashes. A failure is
remembered for ``RETRY_AFTER_S`` within a process (other worker threads do not wait again); a
later start tries again. TensorFlow is imported only here, only when this backend is chosen.

Faces are found with EmoCare's own detector by default (``detector_backend="emocare"``: each
crop then goes through ``DeepFace.analyze(detector_backend="skip")``, about 20 ms a face); any
of DeepFace's detectors can be named instead (``opencv``, ``retinaface``, …), at their cost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from .types import EMOTIONS, Face

log = logging.getLogger(__name__)

WEIGHTS_FILE = "facial_expression_model_weights.h5"

# Keras models are not safe to call from several threads at once; DeepFace caches one model
# per process, so every call goes through this lock.
_lock = threading.Lock()


#: The longest the first use waits for the weights to download, in seconds (plus at most one
#: socket read timeout, ``READ_TIMEOUT_S``, when a source stalls mid-file).
DOWNLOAD_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
#: A failed download is not tried again within this many seconds in the same process.
RETRY_AFTER_S = 300.0
#: The first bytes of every HDF5 file: a proxy's error page is not weights.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

_download_lock = threading.Lock()
_failed: dict[Path, tuple[float, str]] = {}  # path -> (when, why), see RETRY_AFTER_S
#: The download under way in this process (one at a time, under ``_download_lock``): read by the
#: page's status line while a session waits for DeepFace to warm up. Empty when none runs.
_current: dict[str, object] = {}


def download_progress() -> dict | None:
    """What the download under way has fetched so far: ``{"received": bytes, "total": bytes (0:
    the source did not say), "source": host}``; None when no download runs in this process."""
    current = dict(_current)
    return current or None


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message tells a person what to do."""


def weights_path(deepface_home: str | os.PathLike) -> Path:
    return Path(deepface_home) / ".deepface" / "weights" / WEIGHTS_FILE


def weights_sources() -> list[str]:
    """Where the emotion weights are fetched from: ``EMOCARE_DEEPFACE_WEIGHTS_URLS`` (URLs separated
    by spaces: a mirror, or none reachable for a test) when set, otherwise DeepFace's own source
    URLs, in the order DeepFace tries them."""
    override = os.environ.get("EMOCARE_DEEPFACE_WEIGHTS_URLS", "").split()
    if override:
        return override
    from deepface.models.demography.tf import Emotion

    urls = Emotion.WEIGHTS_URL
    return [urls] if isinstance(urls, str) else list(urls)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _reason(exc: Exception) -> str:
    """A short reason for the page; the log has the whole exception."""
    import requests

    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout):
        return "cannot connect"
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return str(exc)


def download_weights(
    path: Path,
    urls: Sequence[str],
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """Fetch the weights into ``path`` from the first of ``urls`` that gives a whole HDF5 file
    within ``timeout_s`` (all sources together); raises :class:`BackendUnavailable` saying why."""
    import requests

    started = clock()
    deadline = started + timeout_s
    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        left = deadline - clock()
        if left <= 0:
            errors.append(f"{urlsplit(url).netloc}: not tried, the {timeout_s:.0f} s were spent")
            continue
        log.info("downloading DeepFace's emotion weights from %s (waiting at most %.0f s)", url, left)
        try:
            timeouts = (min(CONNECT_TIMEOUT_S, left), min(READ_TIMEOUT_S, left))
            with requests.get(url, stream=True, timeout=timeouts) as response:
                response.raise_for_status()
                total = int(response.headers.get("Content-Length") or 0)
                got, next_report = 0, 0.25
                _current.update(received=0, total=total, source=urlsplit(url).netloc)
                with part.open("wb") as out:
                    for chunk in response.iter_content(64 * 1024):
                        out.write(chunk)
                        got += len(chunk)
                        _current["received"] = got
                        if clock() > deadline:
                            raise TimeoutError(f"{_mb(got)} in {timeout_s:.0f} s, not the whole file")
                        if total and next_report <= got / total < 1:
                            log.info(
                                "DeepFace's emotion weights: %d%% (%s of %s)", 100 * got // total, _mb(got), _mb(total)
                            )
                            next_report = (4 * got // total + 1) / 4
                if total and got != total:
                    raise OSError(f"the connection ended after {_mb(got)} of {_mb(total)}")
                with part.open("rb") as written:
                    if written.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                        raise ValueError(f"what came back ({_mb(got)}) is not an HDF5 weights file")
            os.replace(part, path)
            log.info("DeepFace's emotion weights downloaded: %s in %.1f s, %s", _mb(got), clock() - started, path)
            return path
        except (requests.RequestException, OSError, ValueError) as exc:  # TimeoutError is an OSError
            log.warning("downloading DeepFace's emotion weights from %s failed: %s", url, exc)
            errors.append(f"{urlsplit(url).netloc}: {_reason(exc)}")
        finally:
            part.unlink(missing_ok=True)
            _current.clear()
    raise BackendUnavailable(
        f"DeepFace emotion weights not found at {path} and not downloaded ({'; '.join(errors)}):"
        " download them or place the file there"
    )


def ensure_weights(
    deepface_home: str | os.PathLike,
    urls: Sequence[str] | None = None,
    timeout_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """The weights file, downloaded on first use; one download at a time in a process."""
    path = weights_path(deepface_home)
    with _download_lock:
        if path.is_file():
            return path
        failed = _failed.get(path)
        if failed is not None and clock() - failed[0] < RETRY_AFTER_S:
            raise BackendUnavailable(failed[1])
        if timeout_s is None:
            timeout_s = float(os.environ.get("EMOCARE_DEEPFACE_DOWNLOAD_S") or DOWNLOAD_TIMEOUT_S)
        try:
            return download_weights(path, weights_sources() if urls is None else urls, timeout_s, clock)
        except BackendUnavailable as exc:
            _failed[path] = (clock(), str(exc))
            raise


class DeepFaceAnalyzer:
    name = "deepface"

    def __init__(self, deepface_home: str | os.PathLike, detector_backend: str = "emocare", detector=None) -> None:
        # deepface reads DEEPFACE_HOME when it resolves paths; set it before the first import.
        os.environ["DEEPFACE_HOME"] = str(deepface_home)
        from deepface import DeepFace
        from deepface.modules import modeling

        ensure_weights(deepface_home)

        with _lock:
            modeling.build_model(task="facial_attribute", model_name="Emotion")
        self._deepface = DeepFace
        self.detector_backend = detector_backend
        self.detector = detector
        if detector_backend == "emocare" and detector is None:
            from . import build_detector

            self.detector = build_detector()

    def _analyze(self, image: np.ndarray, backend: str) -> list[dict]:
        with _lock:
            return self._deepface.analyze(
                image, actions=["emotion"], detector_backend=backend, enforce_detection=False, silent=True
            )

    @staticmethod
    def _scores(result: dict) -> dict[str, float]:
        raw = np.array([float(result["emotion"][name]) for name in EMOTIONS])
        return dict(zip(EMOTIONS, map(float, raw / max(raw.sum(), 1e-9)), strict=True))

    def analyze(self, image: np.ndarray) -> list[Face]:
        if self.detector_backend == "emocare":
            faces = []
            height, width = image.shape[:2]
            for x, y, w, h in self.detector.detect(image):
                x1, y1 = max(0, x), max(0, y)
                x2, y2 = min(width, x + w), min(height, y + h)
                if x2 - x1 < 8 or y2 - y1 < 8:
                    continue
                [result] = self._analyze(image[y1:y2, x1:x2], "skip")[:1]
                faces.append(Face((x, y, w, h), self._scores(result)))
            return faces
        faces = []
        for result in self._analyze(image, self.detector_backend):
            # with enforce_detection=False DeepFace returns the whole frame when no face was
            # found, with face_confidence 0: that is not a face.
            if float(result.get("face_confidence") or 0) <= 0:
                continue
            region = result["region"]
            faces.append(Face((region["x"], region["y"], region["w"], region["h"]), self._scores(result)))
        return faces

    def classify_crop(self, image: np.ndarray) -> dict[str, float]:
        """Scores for an image that is already a face crop (DeepFace with detector "skip")."""
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        return self._scores(self._analyze(image, "skip")[0])

    def warm_up(self) -> None:
        self._analyze(np.full((48, 48, 3), 128, dtype=np.uint8), "skip")
