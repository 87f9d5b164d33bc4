"""The files a page needs to analyse on its own device: the wasm runtime and the three models.

Why a blueprint of its own rather than ``static/``: the files are big (14 MB of wasm, 2.4 MB
classifier, 2.5 MB of BlazeFace) and change only with a release, so each is served under a
URL that names its content (the models' sha256, the runtime's version) with a year-long
``immutable`` cache, and gzip-compressed for clients that accept it (the wasm shrinks to a
quarter); ``/device/manifest.json`` (never cached) says which URLs are current. Flask's
static handler would give none of that, and would type ``.mjs`` by the platform's guess
(a module script needs a JavaScript type under ``nosniff``). Nothing here runs unless a page
asks: a page in server mode never fetches these.

The classifier is the one the server runs (``MODEL_PATH`` or the shipped file) with its
card beside it; BlazeFace is the ONNX made by ``scripts/blazeface_onnx.py``; the runtime is
what ``scripts/vendor-onnxruntime-web.sh`` put in ``static/vendor/`` at install.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for

from ..vision.emocare_backend import default_model_path

log = logging.getLogger(__name__)

bp = Blueprint("device", __name__, url_prefix="/device")

ORT_WEB_VERSION = "1.30.0"
#: the runtime's files a page loads, and their types
RUNTIME_FILES = {
    "ort.wasm.min.mjs": "text/javascript",
    "ort-wasm-simd-threaded.mjs": "text/javascript",
    "ort-wasm-simd-threaded.wasm": "application/wasm",
}
BLAZEFACE = {"short": "blazeface_short_range.onnx", "full": "blazeface_full_range.onnx"}
#: a year: the URL changes whenever the content does
IMMUTABLE = "public, max-age=31536000, immutable"


def runtime_folder() -> Path:
    return Path(current_app.static_folder) / "vendor" / f"onnxruntime-web-{ORT_WEB_VERSION}"


def model_files() -> dict[str, Path]:
    """Name (as in the URL) → file, for every model a page may fetch."""
    classifier = Path(current_app.config.get("MODEL_PATH") or default_model_path())
    shipped = default_model_path().parent
    return {
        "emocare_expression.onnx": classifier,
        "emocare_expression.json": classifier.with_suffix(".json"),
        **{name: shipped / name for name in BLAZEFACE.values()},
    }


@lru_cache(maxsize=32)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def digest(path: Path) -> str:
    """The first 16 hex digits of the file's sha256, computed once per version of the file."""
    stat = path.stat()
    return _digest(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _gzipped(path: str, mtime_ns: int, size: int) -> bytes:
    # level 6 and no timestamp: 14 MB of wasm in about a second, once per process and file
    return gzip.compress(Path(path).read_bytes(), 6, mtime=0)


def send(path: Path, mimetype: str) -> Response:
    """The file with a long-lived cache, gzip-compressed when the client takes gzip."""
    stat = path.stat()
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response = Response(_gzipped(str(path), stat.st_mtime_ns, stat.st_size), mimetype=mimetype)
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(path.read_bytes(), mimetype=mimetype)
    response.headers["Cache-Control"] = IMMUTABLE
    response.headers["Vary"] = "Accept-Encoding"
    return response


def _model_url(name: str, path: Path) -> str:
    stem, _, ext = name.rpartition(".")
    return url_for("device.model", name=stem, sha=digest(path), ext=ext)


@bp.get("/manifest.json")
def manifest():
    """Where the current runtime and models are; never cached, so a new model is picked up."""
    files = model_files()
    missing = [str(path) for path in files.values() if not path.is_file()]
    if not (runtime_folder() / "ort-wasm-simd-threaded.wasm").is_file():
        missing.append(str(runtime_folder()))
    if missing:
        log.error("analysis on the device is unavailable: missing %s", ", ".join(missing))
        response = jsonify({"error": "device_assets_missing", "message": "The in-page analysis files are missing."})
        response.status_code = 503
        return response
    runtime = url_for("device.runtime", version=ORT_WEB_VERSION, filename="ort.wasm.min.mjs")
    response = jsonify(
        {
            "runtime": {
                "version": ORT_WEB_VERSION,
                "module": runtime,
                "wasm_path": runtime.rpartition("/")[0] + "/",
            },
            "classifier": {
                "model": _model_url("emocare_expression.onnx", files["emocare_expression.onnx"]),
                "card": _model_url("emocare_expression.json", files["emocare_expression.json"]),
            },
            "detector": {kind: _model_url(name, files[name]) for kind, name in BLAZEFACE.items()},
        }
    )
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/models/<name>.<sha>.<ext>")
def model(name: str, sha: str, ext: str):
    """A model by name and content digest; an old digest is gone (404), not served stale."""
    path = model_files().get(f"{name}.{ext}")
    if path is None or not path.is_file() or digest(path) != sha:
        abort(404)
    return send(path, "application/json" if ext == "json" else "application/octet-stream")


@bp.get("/runtime/<version>/<filename>")
def runtime(version: str, filename: str):
    if version != ORT_WEB_VERSION or filename not in RUNTIME_FILES:
        abort(404)
    path = runtime_folder() / filename
    if not path.is_file():
        log.error("%s is missing: run scripts/vendor-onnxruntime-web.sh (make run does)", path)
        abort(404)
    return send(path, RUNTIME_FILES[filename])
