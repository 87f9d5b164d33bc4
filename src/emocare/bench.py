"""Speed of the project's pipeline against the plain libraries, on the same real frames.

Frames are the astronaut portrait (public domain, from scikit-image) placed on 640×480 and
320×240 canvases, shifted by a few pixels from frame to frame. Each pipeline is warmed up,
then timed frame by frame; medians, 95th percentiles and ratios to EmoCare are printed. This
is where speed is judged, not in timed test assertions.
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

import numpy as np

from .vision import build_analyzer
from .vision.deepface_backend import weights_path
from .vision.samples import astronaut, noisy_steady_clip, place_on_canvas
from .vision.smoothing import SmoothingConfig, count_flips
from .vision.tracking import FaceTracker

log = logging.getLogger(__name__)
SIZES = {"640": (640, 480), "320": (320, 240)}
WARM_UP_CALLS = 5


def _frames(size: tuple[int, int], count: int = 10) -> list[np.ndarray]:
    base = place_on_canvas(astronaut(), size, face_height=0.9)
    return [np.roll(base, (k % 5 - 2, k % 7 - 3), axis=(0, 1)) for k in range(count)]


def _time(fn: Callable[[np.ndarray], object], frames: list[np.ndarray], n: int) -> tuple[list[float], object]:
    for k in range(WARM_UP_CALLS):
        fn(frames[k % len(frames)])
    times, last = [], None
    for k in range(n):
        frame = frames[k % len(frames)]
        started = time.perf_counter()
        last = fn(frame)
        times.append((time.perf_counter() - started) * 1000)
    return times, last


def _stats(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2),
    }


def startup_ms() -> float:
    """Wall time of a fresh process that imports EmoCare's vision code and warms the model."""
    code = (
        "import time; t=time.perf_counter(); from emocare.vision import build_analyzer; "
        "a=build_analyzer('fer'); a.warm_up(); print((time.perf_counter()-t)*1000)"
    )
    src = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    return (time.perf_counter() - started) * 1000


def run_bench(frames: int = 60, deepface_home: str | None = None) -> dict:
    ours = build_analyzer("fer")
    ours.warm_up()

    def emocare(frame):
        faces = ours.analyze(frame)
        return max(faces, key=lambda f: f.area).dominant if faces else None

    from fer.fer import FER  # imports TensorFlow: done here, not at module import

    plain = FER()

    def fer(frame):
        faces = plain.detect_emotions(frame)
        return max(faces[0]["emotions"], key=faces[0]["emotions"].get) if faces else None

    pipelines: dict[str, Callable | None] = {"emocare": emocare, "fer": fer}
    notes = []
    home = deepface_home or os.environ.get("DEEPFACE_HOME") or os.path.expanduser("~")
    if weights_path(home).is_file():
        os.environ["DEEPFACE_HOME"] = str(home)
        from deepface import DeepFace

        def deepface(frame):
            results = DeepFace.analyze(
                frame, actions=["emotion"], detector_backend="opencv", enforce_detection=False, silent=True
            )
            found = [r for r in results if float(r.get("face_confidence") or 0) > 0]
            return found[0]["dominant_emotion"] if found else None

        pipelines["deepface"] = deepface
    else:
        pipelines["deepface"] = None
        notes.append(f"DeepFace.analyze skipped: its emotion weights are not at {weights_path(home)}")

    report: dict = {"frames_timed": frames, "results": {}, "notes": notes}
    for size_name, size in SIZES.items():
        clip = _frames(size)
        for name, fn in pipelines.items():
            if fn is None:
                continue
            times, dominant = _time(fn, clip, frames)
            report["results"][f"{name}_{size_name}"] = {**_stats(times), "dominant": dominant}
    results = report["results"]
    for key, row in results.items():
        size_name = key.rsplit("_", 1)[1]
        row["ratio_to_emocare"] = round(row["p50_ms"] / results[f"emocare_{size_name}"]["p50_ms"], 2)
    report["ratio_vs_fer_640"] = results["fer_640"]["ratio_to_emocare"]
    report["ratio_vs_fer_320"] = results["fer_320"]["ratio_to_emocare"]
    report["emocare_p50_ms_320"] = results["emocare_320"]["p50_ms"]
    report["emocare_p50_ms_640"] = results["emocare_640"]["p50_ms"]
    if "deepface_640" in results:
        report["ratio_vs_deepface_640"] = results["deepface_640"]["ratio_to_emocare"]
    report["smoothing"] = flip_rates(ours)
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
        f"{report['frames_timed']} frames per row, astronaut portrait, after {WARM_UP_CALLS} warm-up calls",
        f"{'pipeline':<26}{'p50 ms':>9}{'p95 ms':>9}{'× EmoCare':>11}  dominant",
    ]
    for key, row in report["results"].items():
        name, size = key.rsplit("_", 1)
        label = {"emocare": "EmoCare", "fer": "FER().detect_emotions", "deepface": "DeepFace.analyze"}[name]
        timing = f"{row['p50_ms']:>9}{row['p95_ms']:>9}{row['ratio_to_emocare']:>11}"
        lines.append(f"{label + ' ' + size:<26}{timing}  {row['dominant']}")
    lines.append(
        f"EmoCare is {report['ratio_vs_fer_640']}× faster than plain fer at 640×480 "
        f"({report['ratio_vs_fer_320']}× at 320×240); p50 at 320×240: {report['emocare_p50_ms_320']} ms"
    )
    flips = report["smoothing"]
    lines.append(
        f"label flips per second on a steady noisy clip ({flips['seconds']:.0f} s): "
        f"raw {flips['raw_flips_per_s']}, smoothed {flips['smoothed_flips_per_s']}"
    )
    lines.append(f"start-up (fresh process: import, load, warm up): {report['startup_ms']} ms")
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)
