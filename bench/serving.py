"""Serving benchmark: round-trip times of real frames through real servers, per server kind.

Starts ``run.py`` (``emocare serve``) once per configuration and drives it with python-socketio
clients that behave like the page: one 320×240 JPEG (quality 70) in flight, paced at 10 fps.
A "ping" client sends a tiny invalid frame every 50 ms; its error comes back without touching
the model, so its round trip shows whether inference is blocking the server's event loop.

    python -m bench.serving [--seconds 8] [--clients 1 10 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import socketio

from emocare.vision.samples import astronaut, place_on_canvas, to_jpeg

from .common import ServerProcess

#: (label, ``emocare serve`` server, environment); the first is the reference of the ratios
CONFIGS = [
    ("gunicorn gthread + threads", "gunicorn", {"EMOCARE_OFFLOAD": "thread"}),
    ("eventlet + tpool", "eventlet", {"EMOCARE_OFFLOAD": "thread"}),
    ("werkzeug --dev + threads", "dev", {"EMOCARE_OFFLOAD": "thread"}),
    ("gunicorn + process pool", "gunicorn", {"EMOCARE_OFFLOAD": "process"}),
    ("eventlet, inference inline", "eventlet", {"EMOCARE_OFFLOAD": "inline"}),
]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class PacedClient(threading.Thread):
    """Sends a frame, waits for its answer, keeps to ``fps``; records each round trip in ms."""

    def __init__(self, url: str, payload: bytes, fps: float, seconds: float, event: str) -> None:
        super().__init__(daemon=True)
        self.payload, self.period, self.seconds, self.event = payload, 1 / fps, seconds, event
        self.rtts: list[float] = []
        self.active_seconds = 0.0
        self._answer = threading.Event()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on(event, lambda _msg: self._answer.set())
        self.sio.connect(url, transports=["websocket"], wait_timeout=10)

    def run(self) -> None:
        began = time.perf_counter()
        end = began + self.seconds
        seq = 0
        while time.perf_counter() < end:
            start = time.perf_counter()
            self._answer.clear()
            seq += 1
            self.sio.emit("frame", {"seq": seq, "image": self.payload})
            if self._answer.wait(10):
                self.rtts.append((time.perf_counter() - start) * 1000)
            time.sleep(max(0.0, self.period - (time.perf_counter() - start)))
        self.active_seconds = time.perf_counter() - began
        self.sio.disconnect()  # not timed: a threading-mode disconnect takes seconds to settle


def run_scenario(url: str, frame: bytes, clients: int, seconds: float) -> dict:
    workers = [PacedClient(url, frame, 10, seconds, "result") for _ in range(clients)]
    ping = PacedClient(url, b"ping", 20, seconds, "error")
    for worker in [*workers, ping]:
        worker.start()
    for worker in [*workers, ping]:
        worker.join()
    rtts = [r for w in workers for r in w.rtts]
    return {
        "clients": clients,
        "frames": len(rtts),
        "fps_total": round(sum(len(w.rtts) / w.active_seconds for w in workers if w.active_seconds), 1),
        "rtt_p50_ms": round(statistics.median(rtts), 1) if rtts else None,
        "rtt_p95_ms": round(percentile(rtts, 0.95), 1),
        "ping_p50_ms": round(statistics.median(ping.rtts), 1) if ping.rtts else None,
        "ping_p95_ms": round(percentile(ping.rtts, 0.95), 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 20])
    parser.add_argument("--only", nargs="+", default=None, help="labels of CONFIGS to run (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    frame = to_jpeg(place_on_canvas(astronaut(), (320, 240)), 70)
    report: dict = {"frame_bytes": len(frame), "seconds": args.seconds, "configs": {}}
    for label, mode, env in CONFIGS:
        if args.only and label not in args.only:
            continue
        # every client runs here, on one address: lift the per-address cap for the bench
        server = ServerProcess(mode, {**env, "EMOCARE_MAX_CONNECTIONS_PER_ADDRESS": "100"})
        try:
            report["configs"][label] = [run_scenario(server.url, frame, n, args.seconds) for n in args.clients]
        finally:
            server.stop()

    base = next(iter(report["configs"].values()))
    for rows in report["configs"].values():
        for row, ref in zip(rows, base, strict=True):
            row["rtt_p50_vs_default"] = round(row["rtt_p50_ms"] / ref["rtt_p50_ms"], 2) if row["rtt_p50_ms"] else None

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"frame: 320×240 JPEG q70, {len(frame):,} bytes; {args.seconds:.0f} s per scenario; 10 fps per client")
        header = (
            f"{'configuration':<30} {'clients':>7} {'fps':>6} {'rtt p50':>8} {'p95':>7} "
            f"{'ping p50':>9} {'p95':>7} {'p50 ×':>6}"
        )
        print(header)
        print("-" * len(header))
        for label, rows in report["configs"].items():
            for row in rows:
                print(
                    f"{label:<30} {row['clients']:>7} {row['fps_total']:>6} {row['rtt_p50_ms']:>8} "
                    f"{row['rtt_p95_ms']:>7} {row['ping_p50_ms']!s:>9} {row['ping_p95_ms']:>7} "
                    f"{row['rtt_p50_vs_default']!s:>6}"
                )
    return report


if __name__ == "__main__":
    main()
