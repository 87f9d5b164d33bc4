"""How fast the page analyses on its own device: analyzer.js in headless Chromium, timed.

Why a script and not a test: times depend on the machine and on what else runs on it; the
figures go into docs/device.md, the parity of what is computed is tests/test_device_parity.py.

One real server (for its CSP and its /device/ files), Debian's Chromium, the live page with
static/js/analyzer.js loaded; a real face (the astronaut portrait, or ``--image``) in a frame
of ``--size``; ``--frames`` analyses after ``--warm-up`` ones, each timed in the page with
performance.now() by stage: detection (the BlazeFace cascade), then crop + classification.
Prints a summary and, as its last line, JSON.

    .venv/bin/python scripts/device_page_bench.py --frames 200 --size 320x240

``--isolated`` serves the page cross-origin isolated (``CROSS_ORIGIN_ISOLATION``: COEP
``require-corp``), which more than one wasm thread needs; ``--threads 1 2`` then times both in
one run, each in a fresh page, alternating for ``--rounds``, so that their ratio is measured
under the same load. The JSON line then has one summary per thread count and the ratios.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--size", default="320x240", help="frame WxH")
    parser.add_argument("--image", type=Path, help="a face photo (default: the astronaut portrait)")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1], help="wasm threads, each timed (more than 1 needs --isolated)"
    )
    parser.add_argument("--isolated", action="store_true", help="serve with COEP require-corp (cross-origin isolated)")
    parser.add_argument("--rounds", type=int, default=1, help="times each thread count is timed, alternating")
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
    env = {"EMOCARE_CROSS_ORIGIN_ISOLATION": "true"} if args.isolated else {}
    server = ServerProcess("gunicorn", env, log_dir=Path(tempfile.mkdtemp(prefix="emocare-bench-")))
    b64 = base64.b64encode(rgba.tobytes()).decode()
    runs: dict[int, list[dict]] = {n: [] for n in args.threads}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            for _round in range(args.rounds):
                for threads in args.threads:  # a fresh page each: the runtime's threads are set once per page
                    page = browser.new_page()
                    page.goto(server.url + "/?lang=en")
                    flip = True if args.flip else None
                    timed = [width, height, b64, args.frames, args.warm_up, threads, flip]
                    runs[threads].append(page.evaluate(TIMED, timed))
                    page.close()
            version = browser.version
            browser.close()
    finally:
        server.stop()
    summaries = {n: summarise(merge(results), args, n) for n, results in runs.items()}
    for n, summary in summaries.items():
        log.info(
            "%s, %s frame, %d thread(s)%s: detect %.1f ms, classify %.1f ms, total %.1f ms p50 (%.1f p95): %.0f fps",
            version,
            args.size,
            n,
            " (isolated)" if summary["cross_origin_isolated"] else "",
            summary["detect_ms"]["p50"],
            summary["classify_ms"]["p50"],
            summary["total_ms"]["p50"],
            summary["total_ms"]["p95"],
            summary["fps_p50"],
        )
    first = args.threads[0]
    summary = {**summaries[first], "chromium": version}
    if len(args.threads) > 1:
        summary["by_threads"] = summaries
        summary["total_p50_vs_first"] = {
            n: round(s["total_ms"]["p50"] / summaries[first]["total_ms"]["p50"], 2) for n, s in summaries.items()
        }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def merge(results: list[dict]) -> dict:
    """The rounds of one thread count as one run."""
    merged = {key: [v for r in results for v in r[key]] for key in ("detect", "classify", "total")}
    merged["faces"] = sum(r["faces"] for r in results)
    merged["loadMs"] = statistics.median(r["loadMs"] for r in results)
    merged["isolated"] = all(r["isolated"] for r in results)
    return merged


def summarise(result: dict, args: argparse.Namespace, threads: int) -> dict:
    from bench.common import percentile

    frames = len(result["total"])
    summary = {
        "frame": args.size,
        "frames": frames,
        "threads": threads,
        "flip": args.flip,
        "faces_per_frame": result["faces"] / frames,
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
    return summary


if __name__ == "__main__":
    sys.exit(main())
