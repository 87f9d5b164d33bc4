"""How fast the page analyses on its own device: analyzer.js in headless Chromium, timed.

Why a script and not a test: times depend on the machine and on what else runs on it; the
figures go into docs/device.md, the parity of what is computed is tests/test_device_parity.py.

One real server (for its CSP and its /device/ files), Debian's Chromium, the live page with
static/js/analyzer.js loaded; a real face (the astronaut portrait, or ``--image``) in a frame
of ``--size``; ``--frames`` analyses after ``--warm-up`` ones, each timed in the page with
performance.now() by stage: detection (the BlazeFace cascade), then crop + classification.
Prints a summary and, as its last line, JSON.

    .venv/bin/python scripts/device_page_bench.py --frames 200 --size 320x240
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("device_page_bench")

TIMED = """async ([w, h, b64, frames, warmUp, threads, flip]) => {
    const m = await import('/static/js/analyzer.js');
    const started = performance.now();
    const analyzer = await m.loadAnalyzer({ threads, flip });
    const loadMs = performance.now() - started;
    const data = Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0));
    const detect = [], classify = [], total = [];
    let faces = 0;
    for (let i = 0; i < warmUp + frames; i++) {
        const t0 = performance.now();
        const rgb = m.rgbFromRGBA(data, w, h);
        const boxes = await analyzer.detect(rgb, w, h);
        const t1 = performance.now();
        if (boxes.length) {
            const gray = m.grayFromRGBA(data, w, h);
            const crops = boxes.map((b) => m.modelCrop(gray, w, h, b, analyzer.card.margin));
            await analyzer.logits(crops);
        }
        const t2 = performance.now();
        if (i >= warmUp) {
            detect.push(t1 - t0);
            classify.push(t2 - t1);
            total.push(t2 - t0);
            faces += boxes.length;
        }
    }
    return { loadMs, detect, classify, total, faces, isolated: self.crossOriginIsolated };
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--size", default="320x240", help="frame WxH")
    parser.add_argument("--image", type=Path, help="a face photo (default: the astronaut portrait)")
    parser.add_argument("--threads", type=int, default=1, help="wasm threads (more need cross-origin isolation)")
    parser.add_argument("--flip", action="store_true", help="flip averaging on (the card's other choice)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from playwright.sync_api import sync_playwright

    from bench.common import ServerProcess
    from emocare.vision import samples

    width, height = (int(v) for v in args.size.split("x"))
    image = cv2.imread(str(args.image)) if args.image else samples.astronaut()
    frame = samples.camera_frame(image, (width, height))
    rgba = cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA)
    server = ServerProcess("gunicorn", {}, log_dir=Path(tempfile.mkdtemp(prefix="emocare-bench-")))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            page.goto(server.url + "/?lang=en")
            result = page.evaluate(
                TIMED,
                [
                    width,
                    height,
                    base64.b64encode(rgba.tobytes()).decode(),
                    args.frames,
                    args.warm_up,
                    args.threads,
                    True if args.flip else None,
                ],
            )
            version = browser.version
            browser.close()
    finally:
        server.stop()
    summary = {
        "chromium": version,
        "frame": args.size,
        "frames": args.frames,
        "threads": args.threads,
        "flip": args.flip,
        "faces_per_frame": result["faces"] / args.frames,
        "load_ms": round(result["loadMs"]),
        "cross_origin_isolated": result["isolated"],
        **{
            f"{stage}_ms": {
                "p50": round(statistics.median(result[stage]), 1),
                "p95": round(percentile(result[stage], 0.95), 1),
            }
            for stage in ("detect", "classify", "total")
        },
    }
    summary["fps_p50"] = round(1000 / summary["total_ms"]["p50"], 1)
    log.info(
        "%s, %s frame, %d thread(s): detect %.1f ms, classify %.1f ms, total %.1f ms p50 (%.1f p95): %.0f fps",
        version,
        args.size,
        args.threads,
        summary["detect_ms"]["p50"],
        summary["classify_ms"]["p50"],
        summary["total_ms"]["p50"],
        summary["total_ms"]["p95"],
        summary["fps_p50"],
    )
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
