"""Command line: ``python -m emocare analyze|evaluate|bench``.

- ``analyze PATH``: an image or a video; prints one JSON object per frame with its faces
  (video frames are tracked and smoothed as on the live page).
- ``evaluate DIR``: DIR holds one folder per label (angry, disgust, …); prints top-1, balanced
  accuracy, per-class accuracy, the confusion matrix, faces not found and ms per image.
- ``bench``: the project's pipeline against plain ``FER().detect_emotions`` and
  ``DeepFace.analyze`` on the same real frames, with ratios.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from .vision import BACKENDS, EMOTIONS, build_analyzer
from .vision.smoothing import SmoothingConfig
from .vision.tracking import FaceTracker

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
#: Images no larger than this on their longer side are taken as face crops (no detection).
CROP_MAX_SIDE = 64


def _analyzer_options(args: argparse.Namespace) -> dict:
    return {"tta": getattr(args, "tta", True), "deepface_home": getattr(args, "deepface_home", None)}


def cmd_analyze(args: argparse.Namespace) -> int:
    analyzer = build_analyzer(args.backend, **_analyzer_options(args))
    path = Path(args.path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"error: cannot read image {path}", file=sys.stderr)
            return 2
        faces = analyzer.analyze(image)
        print(json.dumps({"frame": 0, "faces": [f.to_dict() for f in faces]}))
        return 0
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        print(f"error: cannot open {path} as an image or a video", file=sys.stderr)
        return 2
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    tracker = FaceTracker(SmoothingConfig())
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        tracked = tracker.update(analyzer.analyze(frame), index / fps, (frame.shape[1], frame.shape[0]))
        print(json.dumps({"frame": index, "t": round(index / fps, 3), "faces": [f.to_dict() for f in tracked]}))
        index += 1
    capture.release()
    return 0 if index else 2


def evaluate(directory: Path, backend: str = "fer", tta: bool = True, deepface_home=None) -> dict:
    """Accuracy of ``backend`` on DIR/<label>/<images>; every image counts, no face is wrong."""
    analyzer = build_analyzer(backend, tta=tta, deepface_home=deepface_home)
    labels = list(EMOTIONS)
    confusion = np.zeros((len(labels), len(labels) + 1), dtype=int)  # last column: no face
    times = []
    for truth_index, label in enumerate(labels):
        folder = directory / label
        if not folder.is_dir():
            continue
        for image_path in sorted(folder.iterdir()):
            if image_path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            started = time.perf_counter()
            if max(image.shape[:2]) <= CROP_MAX_SIDE:
                scores = analyzer.classify_crop(image)
            else:
                faces = analyzer.analyze(image)
                scores = max(faces, key=lambda f: f.area).scores if faces else None
            times.append((time.perf_counter() - started) * 1000)
            column = len(labels) if scores is None else labels.index(max(scores, key=scores.get))
            confusion[truth_index, column] += 1
    n = int(confusion.sum())
    per_class = {}
    for i, label in enumerate(labels):
        total = int(confusion[i].sum())
        if total:
            per_class[label] = round(confusion[i, i] / total, 4)
    return {
        "backend": analyzer.name,
        "tta": tta,
        "n": n,
        "top1": round(float(np.trace(confusion[:, : len(labels)]) / n), 4) if n else None,
        "balanced": round(float(np.mean(list(per_class.values()))), 4) if per_class else None,
        "per_class": per_class,
        "no_face": int(confusion[:, -1].sum()),
        "ms_per_image": round(float(np.mean(times)), 2) if times else None,
        "labels": labels,
        "confusion": confusion.tolist(),
    }


def cmd_evaluate(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"error: {directory} is not a folder", file=sys.stderr)
        return 2
    report = evaluate(directory, args.backend, args.tta, args.deepface_home)
    if args.json:
        print(json.dumps(report))
        return 0
    if not report["n"]:
        print(f"no images found in {directory}/<label>/ for labels {', '.join(EMOTIONS)}")
        return 1
    print(f"backend {report['backend']}, tta {'on' if args.tta else 'off'}: {report['n']} images")
    print(f"top-1 {report['top1']:.1%}   balanced {report['balanced']:.1%}   no face {report['no_face']}")
    print(f"{report['ms_per_image']} ms per image")
    print("per class: " + ", ".join(f"{k} {v:.0%}" for k, v in report["per_class"].items()))
    header = "truth \\ predicted".ljust(18) + "".join(label[:8].rjust(9) for label in [*EMOTIONS, "no face"])
    print(header)
    for label, row in zip(EMOTIONS, report["confusion"], strict=True):
        print(label.ljust(18) + "".join(str(v).rjust(9) for v in row))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    report = run_bench(frames=args.frames, deepface_home=args.deepface_home)
    if args.json:
        print(json.dumps(report))
    else:
        from .bench import format_report

        print(format_report(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emocare", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--backend", choices=BACKENDS, default="fer")
        p.add_argument("--deepface-home", default=None, help="folder holding .deepface/weights")
        p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="flip averaging")

    p = sub.add_parser("analyze", help="print faces and scores of an image or a video, as JSON lines")
    p.add_argument("path")
    common(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("evaluate", help="accuracy on a folder of labelled images")
    p.add_argument("directory")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="speed against plain fer and DeepFace, with ratios")
    p.add_argument("--frames", type=int, default=60, help="timed frames per size and pipeline")
    p.add_argument("--deepface-home", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)
