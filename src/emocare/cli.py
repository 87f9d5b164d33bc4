"""Command line: ``emocare serve|analyze|evaluate|split|train|bench`` (or ``python -m emocare``).

- ``serve`` (or ``run``): the web app on a production server (Gunicorn; ``--server eventlet``),
  or on Werkzeug's development server with ``--dev``; see :mod:`emocare.server`.
- ``analyze PATH``: an image or a video; prints one JSON object per frame with its faces
  (video frames are tracked and smoothed as on the live page).
- ``evaluate DIR``: DIR holds one folder per label (angry, disgust, …); prints top-1, balanced
  accuracy, per-class recall, the confusion matrix, faces not found and ms per image;
  ``--clips`` runs steady clips through the live smoothing instead.
- ``split OUT``: links the validation split of the shared faces into OUT/<source>/<label>/.
- ``train``: trains, calibrates and exports EmoCare's model (needs PyTorch).
- ``bench``: the project's pipeline against plain ``FER().detect_emotions`` and
  ``DeepFace.analyze`` on the same real frames, with ratios.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import cv2

from .evaluation import IMAGE_SUFFIXES
from .vision import BACKENDS, EMOTIONS, build_analyzer
from .vision.smoothing import SmoothingConfig
from .vision.tracking import FaceTracker


def _analyzer_options(args: argparse.Namespace) -> dict:
    return {"tta": getattr(args, "tta", None), "deepface_home": getattr(args, "deepface_home", None)}


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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate, evaluate_clips

    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"error: {directory} is not a folder", file=sys.stderr)
        return 2
    options = {"deepface_home": args.deepface_home, "model_path": args.model}
    if args.clips:
        votes = Path(args.votes) if args.votes else None
        report = evaluate_clips(directory, args.backend, per_class=args.per_class, tta=args.tta, votes=votes, **options)
    else:
        try:
            report = evaluate(
                directory,
                args.backend,
                args.tta,
                calibration=Path(args.calibration) if args.calibration else None,
                person_pattern=args.person_pattern,
                votes=Path(args.votes) if args.votes else None,
                **options,
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(report))
        return 0
    if not report["n"]:
        print(f"no images found in {directory}/<label>/ for labels {', '.join(EMOTIONS)}")
        return 1
    what = f"{report['n']} steady {report['seconds']:.0f}-second clips" if args.clips else f"{report['n']} images"
    print(f"backend {report['backend']}, tta {'on' if report['tta'] else 'off'}: {what}")
    print(f"top-1 {report['top1']:.1%}   balanced {report['balanced']:.1%}   no face {report['no_face']}")
    if args.clips:
        print(
            f"per-frame majority: top-1 {report['majority_top1']:.1%}   balanced {report['majority_balanced']:.1%}"
            f"   label changes {report['flips_per_s']} a second"
        )
    else:
        print(f"{report['ms_per_image']} ms per image")
    if "calibrated_images" in report:
        print(
            f"corrected by the person's relaxed face: {report['calibrated_images']} of {report['n']} images"
            f" ({report['calibration_people']} people in the calibration folder)"
        )
    print("per-class recall: " + ", ".join(f"{k} {v:.0%}" for k, v in report["per_class"].items()))
    if "care" in report:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in report["care"]["negative_crossing"].items())
        print(f"faces over a negative mood's care threshold, by label: {shares}")
    header = "truth \\ predicted".ljust(18) + "".join(label[:8].rjust(9) for label in [*EMOTIONS, "no face"])
    print(header)
    for label, row in zip(EMOTIONS, report["confusion"], strict=True):
        print(label.ljust(18) + "".join(str(v).rjust(9) for v in row))
    return 0


def _data_folder(args: argparse.Namespace) -> Path | None:
    """``--data`` as a folder, or None after saying why it is not one."""
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: {data} is not a folder of <source>/<label>/ images (see --data)", file=sys.stderr)
        return None
    return data


def cmd_split(args: argparse.Namespace) -> int:
    from .training.data import write_split

    data = _data_folder(args)
    if data is None:
        return 2
    counts = write_split(data, Path(args.out), args.side)
    for key, count in sorted(counts.items()):
        print(f"{key}: {count}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    report = run_bench(frames=args.frames, deepface_home=args.deepface_home, model_path=args.model, tta=args.tta)
    if args.json:
        print(json.dumps(report))
    else:
        from .bench import format_report

        print(format_report(report))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    server = "dev" if args.dev else args.server
    # given on the command line, these win over the environment and instance/config.py
    chosen = {
        "MESSAGE_QUEUE": args.message_queue,
        "DATABASE_URL": args.database_url,
        "INFERENCE_WORKERS": args.workers,
        "PROXY_HOPS": args.proxy_hops,
        "ANALYSIS": args.analysis,
    }
    overrides = {name: value for name, value in chosen.items() if value is not None}
    serve(args.host, args.port, server, args.config, args.threads, overrides=overrides)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    try:
        from .training.train import Recipe, resolve_precision, train
    except ImportError as exc:  # pragma: no cover - depends on the installed set
        print(f"error: training needs PyTorch and onnx (pip install torch==2.13.0 onnx): {exc}", file=sys.stderr)
        return 2
    data = _data_folder(args)
    if data is None:
        return 2
    if args.recalibrate:
        from .training.train import recalibrate

        card = recalibrate(Path(args.recalibrate), data, Path(args.out) / "crops.npz")
        choice = card["flip_choice"]
        print(
            f"flip averaging {'on' if choice['chosen'] else 'off'}: balanced {choice['balanced_with_flip']:.1%} with,"
            f" {choice['balanced_without_flip']:.1%} without"
        )
        for source, figures in card["validation"].items():
            print(f"{source:>14}: top-1 {figures['top1']:.1%}  balanced {figures['balanced']:.1%}  (n={figures['n']})")
        return 0
    recipe = Recipe(
        epochs=args.epochs,
        seed=args.seed,
        side=args.input_side,
        precision=resolve_precision(args.precision),
        live_share=args.live_share,
        distil=args.distil if args.teacher else 0.0,
        targets=args.targets,
        **({"max_lr": args.max_lr} if args.max_lr else {}),
        frozen_norm=bool(args.fine_tune),
        frozen_blocks=args.frozen_blocks,
    )
    export = Path(args.export) if args.export else None
    extend = Path(args.extend) if args.extend else None
    teacher = Path(args.teacher) if args.teacher else None
    start = Path(args.fine_tune) if args.fine_tune else None
    card = train(
        data,
        Path(args.out),
        recipe,
        members=args.members,
        resume=args.resume,
        export=export,
        extend=extend,
        teacher=teacher,
        start=start,
    )
    for source, figures in card["validation"].items():
        print(f"{source:>14}: top-1 {figures['top1']:.1%}  balanced {figures['balanced']:.1%}  (n={figures['n']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .config import configs

    parser = argparse.ArgumentParser(prog="emocare", description="EmoCare: real-time emotion recognition and care")
    parser.add_argument("--version", action="version", version=f"emocare {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", aliases=["run"], help="serve the web app (http://127.0.0.1:5000 by default)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument(
        "--server",
        choices=("gunicorn", "eventlet"),
        default="gunicorn",
        help="production server: Gunicorn's threaded worker (default, docs/serving.md) or eventlet",
    )
    p.add_argument("--dev", action="store_true", help="Werkzeug's development server instead (not for production)")
    p.add_argument("--threads", type=int, help="Gunicorn: most open connections (default: the connection caps, plus 6)")
    p.add_argument("--config", choices=sorted(configs), default="default", help="settings class (emocare/config.py)")
    p.add_argument("--message-queue", metavar="URL", help="redis://…: the Redis several server processes share")
    p.add_argument("--database-url", metavar="URL", help="the history database (postgresql+psycopg://…)")
    p.add_argument("--workers", type=int, help="inference worker threads, each with its own model (default 2)")
    p.add_argument("--proxy-hops", type=int, help="proxies in front that set X-Forwarded-For (nginx: 1)")
    p.add_argument(
        "--analysis",
        choices=("server", "device"),
        help="where pages analyse frames by default: on this server, or on the device (only scores are sent)",
    )
    p.set_defaults(func=cmd_serve)

    def flip(p):
        p.add_argument(
            "--tta", action=argparse.BooleanOptionalAction, default=None, help="flip averaging (default: the model's)"
        )

    def model_file(p):
        p.add_argument("--model", default=None, help="another EmoCare ONNX model (its .json card beside it)")

    def common(p):
        p.add_argument("--backend", choices=BACKENDS, default="emocare")
        p.add_argument("--deepface-home", default=None, help="folder holding .deepface/weights")
        flip(p)

    p = sub.add_parser("analyze", help="print faces and scores of an image or a video, as JSON lines")
    p.add_argument("path")
    common(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("evaluate", help="accuracy on a folder of labelled images")
    p.add_argument("directory")
    common(p)
    model_file(p)
    p.add_argument("--clips", action="store_true", help="steady 5-second clips through the live smoothing")
    p.add_argument("--per-class", type=int, default=None, help="--clips: at most this many images a label")
    p.add_argument(
        "--calibration",
        metavar="CAL_DIR",
        default=None,
        help="relaxed faces: each image is corrected by its person's others (never by itself)",
    )
    p.add_argument(
        "--person-pattern",
        metavar="REGEX",
        default=None,
        help="with --calibration: the first group of REGEX on a file name names its person",
    )
    p.add_argument(
        "--votes",
        metavar="VOTES.tsv",
        default=None,
        help="FER+ votes by file name (fer2013_train_ferplus.tsv's columns): score against their majority",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="speed against plain fer and DeepFace, with ratios")
    p.add_argument("--frames", type=int, default=60, help="timed frames per size and pipeline")
    p.add_argument("--deepface-home", default=None)
    model_file(p)
    flip(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("split", help="link the validation split into OUT/<source>/<label>/ (and OUT/all)")
    p.add_argument("out")
    p.add_argument("--data", default="../shared/datasets/expressions")
    p.add_argument("--side", choices=("validation", "train"), default="validation")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("train", help="train, calibrate and export EmoCare's expression model (needs PyTorch)")
    p.add_argument("--data", default="../shared/datasets/expressions", help="folder of <source>/<label>/ images")
    p.add_argument("--out", default="instance/training", help="checkpoints, crops cache and progress log")
    p.add_argument("--export", default=None, help="where the ONNX model and its card go (default: --out)")
    p.add_argument("--epochs", type=int, default=60)  # the shipped model's recipe (training.train.Recipe)
    p.add_argument("--members", type=int, default=4, help="networks trained with successive seeds and averaged")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--input-side", type=int, default=48, help="the network's input size in pixels")
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="bfloat16 (the shipped recipe): training steps under CPU autocast, 2.8 times faster on CPUs"
        " with BF16 instructions and about 10 times slower without; auto: bfloat16 where the CPU has them",
    )
    p.add_argument(
        "--live-share",
        type=float,
        default=0.0,
        help="share of FER2013 and CK+ crops drawn as the live detector frames them (0: the shipped recipe)",
    )
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True, help="go on from the checkpoint")
    p.add_argument(
        "--extend",
        metavar="MODEL.onnx",
        default=None,
        help="an exported model of this recipe holding the first members: train only the members after them"
        " and average both in one graph",
    )
    p.add_argument(
        "--teacher",
        metavar="MODEL.onnx",
        default=None,
        help="an exported model the networks also learn from (its scores, not only the labels): with"
        " --members 1, one network near its accuracy at a fraction of its cost",
    )
    p.add_argument("--distil", type=float, default=0.7, help="with --teacher: the share of the loss it teaches")
    p.add_argument(
        "--targets",
        choices=("votes", "labels"),
        default="votes",
        help="votes: FER2013 faces learn their ten FER+ annotators' vote distribution (the shipped model);"
        " labels: every face its folder's label (the first model)",
    )
    p.add_argument(
        "--fine-tune",
        metavar="MODEL.onnx",
        default=None,
        help="start each network from this exported model's member of the same index (batch norm frozen),"
        " instead of from random weights: with a few epochs and a small --max-lr",
    )
    p.add_argument("--max-lr", type=float, default=None, help="the one-cycle schedule's peak (default 0.1)")
    p.add_argument(
        "--frozen-blocks", type=int, default=0, help="leading convolution blocks kept as they start (fine-tuning)"
    )
    p.add_argument(
        "--recalibrate",
        metavar="MODEL.onnx",
        default=None,
        help="no training: fit calibration, flip choice and care thresholds again for an exported model",
    )
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func is cmd_serve:  # a server says what it does; the tools print only their answers
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)
