"""Speed of the project's pipeline against the plain libraries, on the same JPEG frames.

Frames arrive as the page sends them: JPEG bytes (quality 0.7) of 640×480 scenes whose face
fills about 15%, 30% and 60% of the height, and one with two faces, shifted by a few pixels
from frame to frame (the astronaut portrait, public domain, from scikit-image). EmoCare is
timed stage by stage (decode, detect, align, classify, smooth) and as a whole; plain
``FER().detect_emotions`` and ``DeepFace.analyze`` get the same bytes, decoded the same way.
Each pipeline is warmed up first. Ratios in one run are what to trust on a shared machine,
not the absolute numbers; this is where speed is judged, not in timed test assertions.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .vision import build_analyzer
from .vision.deepface_backend import weights_path
from .vision.emocare_backend import model_crop
from .vision.frames import decode_frame
from .vision.samples import noisy_steady_clip, scene, to_jpeg
from .vision.smoothing import SmoothingConfig, count_flips
from .vision.tracking import FaceTracker
from .vision.types import EMOTIONS, Face

log = logging.getLogger(__name__)
#: scene name → (share of the frame height the face fills, number of faces)
SCENES = {"far": (0.15, 1), "mid": (0.30, 1), "near": (0.60, 1), "two": (0.30, 2)}
STAGES = ("decode", "detect", "align", "classify", "smooth")
WARM_UP_CALLS = 5


def scene_frames(share: float, faces: int, count: int = 10) -> list[bytes]:
    base = scene(share, (640, 480), faces)
    return [to_jpeg(np.roll(base, (k % 5 - 2, k % 7 - 3), axis=(0, 1))) for k in range(count)]


def _stats(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
    }


class StagedPipeline:
    """EmoCare's live path, decode to smoothing, with a clock around each stage."""

    def __init__(self, analyzer) -> None:
        self.analyzer = analyzer
        self.tracker = FaceTracker(SmoothingConfig())
        self.t = 0.0

    def __call__(self, data: bytes) -> tuple[dict[str, float], list]:
        clock = time.perf_counter
        marks = [clock()]
        image = decode_frame(data)
        marks.append(clock())
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = self.analyzer.detector.detect(image, gray)
        marks.append(clock())
        classifier = self.analyzer.classifier
        crops = [model_crop(gray, box, classifier.margin) for box in boxes]
        marks.append(clock())
        probs = classifier.probabilities(classifier.logits_batch(np.stack(crops))) if crops else []
        marks.append(clock())
        faces = [Face(b, dict(zip(EMOTIONS, map(float, p), strict=True))) for b, p in zip(boxes, probs, strict=True)]
        self.t += 0.1
        tracked = self.tracker.update(faces, self.t, (image.shape[1], image.shape[0]))
        marks.append(clock())
        stages = {name: (marks[i + 1] - marks[i]) * 1000 for i, name in enumerate(STAGES)}
        return stages, tracked


def startup_ms() -> float:
    """Wall time of a fresh process that imports EmoCare's vision code and warms the model."""
    code = (
        "import time; t=time.perf_counter(); from emocare.vision import build_analyzer; "
        "a=build_analyzer('emocare'); a.warm_up(); print((time.perf_counter()-t)*1000)"
    )
    src = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    return (time.perf_counter() - started) * 1000


def _plain_pipelines(deepface_home: str | None, notes: list[str]) -> dict[str, Callable[[bytes], object] | None]:
    from fer.fer import FER  # imports TensorFlow: done here, not at module import

    plain = FER()

    def fer(data: bytes):
        faces = plain.detect_emotions(decode_frame(data))
        return [max(f["emotions"], key=f["emotions"].get) for f in faces]

    pipelines: dict[str, Callable | None] = {"fer": fer, "deepface": None}
    home = deepface_home or os.environ.get("DEEPFACE_HOME") or os.path.expanduser("~")
    if weights_path(home).is_file():
        os.environ["DEEPFACE_HOME"] = str(home)
        from deepface import DeepFace

        def deepface(data: bytes):
            results = DeepFace.analyze(
                decode_frame(data), actions=["emotion"], detector_backend="opencv", enforce_detection=False, silent=True
            )
            return [r["dominant_emotion"] for r in results if float(r.get("face_confidence") or 0) > 0]

        pipelines["deepface"] = deepface
    else:
        notes.append(f"DeepFace.analyze skipped: its emotion weights are not at {weights_path(home)}")
    return pipelines


def run_bench(
    frames: int = 60, deepface_home: str | None = None, model_path: str | None = None, tta: bool | None = None
) -> dict:
    """EmoCare's pipeline (the shipped model, or ``model_path``; flip averaging as its card
    says, or as ``tta`` asks) against the plain libraries, on the same frames in one run."""
    analyzer = build_analyzer("emocare", model_path=model_path, tta=tta)
    analyzer.warm_up()
    notes: list[str] = []
    if analyzer.name != "emocare":
        notes.append(f"EmoCare's model did not load, fer stood in: {analyzer.notice}")
    plain = _plain_pipelines(deepface_home, notes)
    report: dict = {
        "frames_timed": frames,
        "backend": analyzer.name,
        "model": str(analyzer.classifier.path) if analyzer.name == "emocare" else None,  # None: fer stood in
        "flip": bool(getattr(analyzer.classifier, "tta", False)),
        "scenes": {},
        "notes": notes,
    }
    for scene_name, (share, faces) in SCENES.items():
        clip = scene_frames(share, faces)
        pipeline = StagedPipeline(analyzer)
        for k in range(WARM_UP_CALLS):
            pipeline(clip[k % len(clip)])
        per_stage: dict[str, list[float]] = {name: [] for name in STAGES}
        totals, tracked = [], []
        for k in range(frames):
            started = time.perf_counter()
            stages, tracked = pipeline(clip[k % len(clip)])
            totals.append((time.perf_counter() - started) * 1000)
            for name, ms in stages.items():
                per_stage[name].append(ms)
        row: dict = {
            "face_share": share,
            "faces_expected": faces,
            "emocare": {**_stats(totals), "faces": len(tracked), "labels": [f.label for f in tracked]},
            "stages": {name: _stats(times) for name, times in per_stage.items()},
        }
        for name, fn in plain.items():
            if fn is None:
                continue
            for k in range(WARM_UP_CALLS):
                fn(clip[k % len(clip)])
            times, labels = [], []
            for k in range(frames):
                started = time.perf_counter()
                labels = fn(clip[k % len(clip)])
                times.append((time.perf_counter() - started) * 1000)
            row[name] = {**_stats(times), "faces": len(labels), "labels": labels}
            row[name]["ratio_to_emocare"] = round(row[name]["p50_ms"] / row["emocare"]["p50_ms"], 2)
        report["scenes"][scene_name] = row
    ratios = [row["fer"]["ratio_to_emocare"] for row in report["scenes"].values()]
    report["ratio_vs_fer_640"] = round(float(np.median(ratios)), 2)
    report["emocare_p50_ms_640"] = report["scenes"]["mid"]["emocare"]["p50_ms"]
    report["classify_p50_ms_per_face"] = report["scenes"]["mid"]["stages"]["classify"]["p50_ms"]
    if plain.get("deepface"):
        report["ratio_vs_deepface_640"] = report["scenes"]["mid"]["deepface"]["ratio_to_emocare"]
    report["smoothing"] = flip_rates(analyzer)
    report["startup_ms"] = round(startup_ms())
    return report


def flip_rates(analyzer, fps: float = 10.0) -> dict:
    """Label changes per second on a steady but noisy clip, raw against smoothed."""
    tracker = FaceTracker(SmoothingConfig())
    raw, shown = [], []
    clip = noisy_steady_clip(100)
    for i, frame in enumerate(clip):
        tracked = tracker.update(analyzer.analyze(frame), i / fps, (frame.shape[1], frame.shape[0]))
        if tracked:
            raw.append(tracked[0].face.dominant)
            shown.append(tracked[0].label)
    seconds = len(clip) / fps
    return {
        "seconds": seconds,
        "frames_with_face": len(raw),
        "raw_flips_per_s": round(count_flips(raw) / seconds, 2),
        "smoothed_flips_per_s": round(count_flips(shown) / seconds, 2),
    }


def format_report(report: dict) -> str:
    lines = [
        f"{report['frames_timed']} JPEG frames per row (640×480, astronaut portrait), "
        f"after {WARM_UP_CALLS} warm-up calls; backend {report['backend']} "
        f"({Path(report['model']).name if report['model'] else 'no EmoCare model'})",
        f"{'scene':<10}{'pipeline':<24}{'p50 ms':>9}{'p95 ms':>9}{'× EmoCare':>11}  faces",
    ]
    for scene_name, row in report["scenes"].items():
        what = f"{scene_name} ({row['face_share']:.0%}{', 2 faces' if row['faces_expected'] > 1 else ''})"
        for name, label in (("emocare", "EmoCare"), ("fer", "FER().detect_emotions"), ("deepface", "DeepFace.analyze")):
            if name not in row:
                continue
            cell = row[name]
            ratio = cell.get("ratio_to_emocare", 1.0)
            lines.append(f"{what:<10.10}{label:<24}{cell['p50_ms']:>9}{cell['p95_ms']:>9}{ratio:>11}  {cell['faces']}")
        stages = ", ".join(f"{name} {s['p50_ms']}" for name, s in row["stages"].items())
        lines.append(f"{'':<10}EmoCare stages, p50 ms: {stages}")
    lines.append(
        f"EmoCare is {report['ratio_vs_fer_640']}× faster than plain fer on the same frames (median over scenes); "
        f"classifier {report['classify_p50_ms_per_face']} ms p50 per face "
        f"({'with' if report['flip'] else 'without'} flip averaging)"
    )
    flips = report["smoothing"]
    lines.append(
        f"label flips per second on a steady noisy clip ({flips['seconds']:.0f} s): "
        f"raw {flips['raw_flips_per_s']}, smoothed {flips['smoothed_flips_per_s']}"
    )
    lines.append(f"start-up (fresh process: import, load, warm up): {report['startup_ms']} ms")
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)
