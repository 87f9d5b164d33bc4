"""Serving benchmark: round-trip times of real frames through real servers, per server kind.

Starts ``run.py`` (``emocare serve``) once per configuration and drives it with python-socketio
clients that behave like the page: one 320×240 JPEG (quality 70) in flight, paced at 10 fps.
A "ping" client sends a tiny invalid frame every 50 ms; its error comes back without touching
the model, so its round trip shows whether inference is blocking the server's event loop.

``--cluster N`` measures the deployment of docs/deploy.md instead: N Gunicorn processes on
PostgreSQL and Redis behind nginx (``deploy.cluster``), the clients going through nginx on its
loopback port without TLS (Python's TLS WebSocket client stalled now and then; browsers use
HTTPS). Each row then also has p99, errors (answers that never came, error events, refused
connections) and the CPU-seconds a frame cost each server process; ``--find-max`` adds clients,
``--step`` (2) at a time, until p95 passes ``--p95-ms`` (150) or an error occurs, and reports
the most that held.

``--analysis server device`` measures what issue 30 is about: the most pages one server
(``emocare serve``'s default: Gunicorn, one process) holds with the page's round trip at p95
≤ ``--p95-ms`` and no error, for each place the analysis may run, in one run on this machine.
Server-mode pages send the JPEG frames the page sends today, device-mode pages the ``scores``
events of a page that analyses on its own device, 2.5 a second each (four analysed frames a
message), one in flight; the pages
are simulated cheaply in this process (``bench/pages.py``). ``--find-max`` doubles the pages
until the bar breaks, then halves the gap to one page (or a tenth of what held). Each row
says what limited it: the server's p95, errors, or the clients themselves (their event loop
saturating one core) — a limit of the clients is only a floor for the server. The last line
printed is JSON: ``{"max_clients": {"server": M, "device": N}, ...}``. ``--processes N`` runs
N such servers on this machine instead, the pages spread over them in turn (no nginx between).

    python -m bench.serving [--seconds 8] [--clients 1 10 20] [--json]
    python -m bench.serving --cluster 1 2 --find-max [--seconds 10]
    python -m bench.serving --analysis server device --find-max --p95-ms 100 --json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import socketio

from . import pages
from .common import ServerProcess, free_port, percentile

log = logging.getLogger(__name__)

#: (label, ``emocare serve`` server, environment); the first is the reference of the ratios
CONFIGS = [
    ("gunicorn gthread + threads", "gunicorn", {"EMOCARE_OFFLOAD": "thread"}),
    ("eventlet + tpool", "eventlet", {"EMOCARE_OFFLOAD": "thread"}),
    ("werkzeug --dev + threads", "dev", {"EMOCARE_OFFLOAD": "thread"}),
    ("gunicorn + process pool", "gunicorn", {"EMOCARE_OFFLOAD": "process"}),
    ("eventlet, inference inline", "eventlet", {"EMOCARE_OFFLOAD": "inline"}),
]


class PacedClient(threading.Thread):
    """Sends a frame, waits for its answer, keeps to ``fps``; records each round trip in ms."""

    def __init__(self, url: str, payload: bytes, fps: float, seconds: float, event: str) -> None:
        super().__init__(daemon=True)
        self.payload, self.period, self.seconds, self.event = payload, 1 / fps, seconds, event
        self.rtts: list[float] = []
        self.active_seconds = 0.0
        self._failed = False
        #: what went wrong where a result was expected, by error code ("timeout": no answer in 10 s)
        self.error_codes: Counter[str] = Counter()
        self._answer = threading.Event()
        # the cluster's certificate is self-signed: this client trusts it, as the bench's own
        self.sio = socketio.Client(reconnection=False, ssl_verify=False)
        self.sio.on(event, lambda _msg: self._answer.set())
        if event != "error":
            self.sio.on("error", self._error)
        self.sio.connect(url, transports=["websocket"], wait_timeout=10)

    @property
    def errors(self) -> int:
        return self.error_codes.total()

    def _error(self, msg) -> None:
        self.error_codes[msg.get("code", "?") if isinstance(msg, dict) else "?"] += 1
        self._failed = True
        self._answer.set()

    def run(self) -> None:
        began = time.perf_counter()
        end = began + self.seconds
        seq = 0
        while time.perf_counter() < end:
            start = time.perf_counter()
            self._answer.clear()
            self._failed = False
            seq += 1
            self.sio.emit("frame", {"seq": seq, "image": self.payload})
            if not self._answer.wait(10):
                self.error_codes["timeout"] += 1
            elif not self._failed:
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


def run_cluster_scenario(cluster, frame: bytes, clients: int, seconds: float) -> dict:
    """``clients`` page-like clients through nginx, the CPU each server process spent on them."""
    workers, refused, retried = [], 0, 0
    for _ in range(clients):
        for attempt in range(2):  # the page reconnects by itself: one retry, counted apart
            try:
                workers.append(PacedClient(cluster.local_url, frame, 10, seconds, "result"))
                break
            except socketio.exceptions.ConnectionError as exc:
                log.warning("a client could not connect: %s", exc)
                retried += attempt == 0
                refused += attempt == 1
    spread = [server.health()["sessions"] for server in cluster.servers]
    before = [server.cpu_seconds() for server in cluster.servers]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    spent = [server.cpu_seconds() - b for server, b in zip(cluster.servers, before, strict=True)]
    rtts = [r for w in workers for r in w.rtts]
    frames = len(rtts)
    return {
        "clients": clients,
        "frames": frames,
        "fps_total": round(sum(len(w.rtts) / w.active_seconds for w in workers if w.active_seconds), 1),
        "rtt_p50_ms": round(statistics.median(rtts), 1) if rtts else None,
        "rtt_p95_ms": round(percentile(rtts, 0.95), 1),
        "rtt_p99_ms": round(percentile(rtts, 0.99), 1),
        "errors": refused + sum(w.errors for w in workers),
        "connects_retried": retried,
        "error_codes": dict(sum((w.error_codes for w in workers), Counter())),
        "sessions_per_process": spread,
        # all server processes' CPU over all frames served, and each process's share of it
        "cpu_ms_per_frame": round(1000 * sum(spent) / frames, 2) if frames else None,
        "cpu_s_per_process": [round(c, 2) for c in spent],
        # each process's CPU over the frames it served, counted from its share of the pages
        # (every page sends at the same pace)
        "cpu_ms_per_frame_per_process": [
            round(1000 * c / (frames * n / sum(spread)), 2) if frames and n and sum(spread) else None
            for c, n in zip(spent, spread, strict=True)
        ],
        "rss_mb_per_process": [round(server.rss() / 2**20) for server in cluster.servers],
    }


def bench_cluster(
    servers: int, clients: list[int], seconds: float, find_max: bool, p95_ms: float, step: int = 2
) -> dict:
    """Rows for ``clients`` (or, with ``find_max``, from the first of them up by ``step``
    until the bar breaks) on a cluster of ``servers`` processes."""
    from deploy.cluster import Cluster

    frame = pages.page_jpeg()
    folder = Path(tempfile.mkdtemp(prefix="emocare-cluster-"))
    folder.chmod(0o755)  # PostgreSQL runs as its own user when the bench runs as root
    # every client runs here, on one address: lift the per-address caps for the bench
    env = {"EMOCARE_MAX_CONNECTIONS_PER_ADDRESS": "200", "EMOCARE_MAX_CONNECTIONS": "200"}
    nginx = {"connections_per_address": 1000, "request_rate": 1000}
    rows, best = [], 0
    with Cluster(folder, servers=servers, https_port=free_port(), env=env, nginx_options=nginx) as cluster:
        counts = iter(clients) if not find_max else itertools.count(clients[0], step)
        for n in counts:
            row = run_cluster_scenario(cluster, frame, n, seconds)
            rows.append(row)
            held = row["errors"] == 0 and row["rtt_p95_ms"] <= p95_ms
            best = n if held else best
            if find_max and not held:
                break
            time.sleep(2)  # let the last clients' disconnects settle
    shutil.rmtree(folder, ignore_errors=True)
    return {"servers": servers, "rows": rows, "most_clients": best if find_max else None, "p95_bar_ms": p95_ms}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 20])
    parser.add_argument("--only", nargs="+", default=None, help="labels of CONFIGS to run (default: all)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cluster", type=int, nargs="+", default=None, help="server processes behind nginx")
    parser.add_argument("--find-max", action="store_true", help="add --step clients at a time until the bar breaks")
    parser.add_argument("--step", type=int, default=2, help="clients added at each row of --find-max")
    parser.add_argument("--p95-ms", type=float, default=150.0, help="the round trip bar of --find-max")
    parser.add_argument(
        "--analysis", nargs="+", choices=pages.MODES, help="pages analysed on the server, on their device, or both"
    )
    parser.add_argument(
        "--max-clients", type=int, default=800, help="--analysis --find-max: never more pages than this"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="--analysis: server processes on this machine, each page talking to one of them in turn",
    )
    args = parser.parse_args(argv)
    if args.analysis:
        return main_analysis(args)
    if args.cluster:
        return main_cluster(args)

    frame = pages.page_jpeg()
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


def main_cluster(args: argparse.Namespace) -> dict:
    report = {
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "clusters": [
            bench_cluster(n, args.clients, args.seconds, args.find_max, args.p95_ms, args.step) for n in args.cluster
        ],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return report
    print(f"{args.seconds:.0f} s per row, 10 fps per client, through nginx; {os.cpu_count()} CPUs")
    header = f"{'servers':>7} {'clients':>7} {'fps':>6} {'p50':>6} {'p95':>6} {'p99':>6} {'errors':>6}"
    header += "  sessions  cpu ms/frame (each process)  RSS MB"
    print(header)
    print("-" * len(header))
    for cluster in report["clusters"]:
        for row in cluster["rows"]:
            print(
                f"{cluster['servers']:>7} {row['clients']:>7} {row['fps_total']:>6} {row['rtt_p50_ms']!s:>6} "
                f"{row['rtt_p95_ms']:>6} {row['rtt_p99_ms']:>6} {row['errors']:>6}  {row['sessions_per_process']}"
                f"  {row['cpu_ms_per_frame']} {row['cpu_ms_per_frame_per_process']}  {row['rss_mb_per_process']}"
                f"  {row['error_codes'] or ''} {f'retried {n}' if (n := row['connects_retried']) else ''}"
            )
        if cluster["most_clients"] is not None:
            print(f"  most clients with p95 <= {cluster['p95_bar_ms']:.0f} ms and no error: {cluster['most_clients']}")
    return report


#: Where ``--analysis --find-max`` starts: a server-mode page costs inference, a device-mode one not.
FIRST_ROW = {"server": 1, "device": 20}
#: A row whose clients (one event loop, one core at most) used this much of a core measured
#: the simulation rather than the server. (An event loop that wakes late while its own CPU is
#: low was starved by the others on the machine, the server among them: the row's
#: ``client_loop_lag_p95_ms`` says how late.)
CLIENT_SATURATED_CORES = 0.85


def limit_of(row: dict, p95_ms: float) -> str | None:
    """What kept a row from holding the bar (None: it held): the clients first, because a
    saturated client inflates every round trip it measures."""
    if row["errors"] == 0 and row["rtt_p95_ms"] is not None and row["rtt_p95_ms"] <= p95_ms:
        return None
    if row["client_cores"] >= CLIENT_SATURATED_CORES:
        return "client saturated"
    if row["errors"]:
        return "errors: " + ", ".join(f"{code} {n}" for code, n in sorted(row["error_codes"].items()))
    return "server p95"


def analysis_rows(mode: str, args: argparse.Namespace, folder: Path) -> dict:
    """One server for ``mode`` (``--processes`` of them), its rows, and the most pages that held
    the bar."""
    # every page comes from 127.0.0.1: lift the per-address cap, and the cap of the mode measured
    cap = str(args.max_clients)
    env = {"EMOCARE_MAX_CONNECTIONS_PER_ADDRESS": cap, "EMOCARE_OFFLOAD": "thread"}
    env["EMOCARE_MAX_DEVICE_CONNECTIONS" if mode == "device" else "EMOCARE_MAX_CONNECTIONS"] = cap
    servers = [ServerProcess("gunicorn", env, log_dir=folder) for _ in range(args.processes)]
    rows: list[dict] = []

    def cpu_seconds() -> float:
        return sum(server.cpu_seconds() for server in servers)

    def measure(n: int) -> dict:
        before, began = cpu_seconds(), time.perf_counter()
        row = asyncio.run(pages.drive("127.0.0.1", [s.port for s in servers], mode, n, args.seconds))
        row["server_cores"] = round((cpu_seconds() - before) / (time.perf_counter() - began), 2)
        row["server_rss_mb"] = round(sum(server.rss() for server in servers) / 2**20)
        row["load_average"] = round(os.getloadavg()[0], 2)
        row["limit"] = limit_of(row, args.p95_ms)
        rows.append(row)
        log.info(
            "%s: %d pages, %.0f messages/s, p95 %s ms, errors %d, server %.2f cores, clients %.2f cores -> %s",
            mode,
            n,
            row["per_second"],
            row["rtt_p95_ms"],
            row["errors"],
            row["server_cores"],
            row["client_cores"],
            row["limit"] or "held",
        )
        for server in servers:
            settle(server)
        return row

    try:
        if args.find_max:
            best, failed = find_max(measure, FIRST_ROW[mode], 1, args.max_clients)
        else:
            for n in args.clients:
                measure(n)
            best, failed = None, None
    finally:
        for server in servers:
            server.stop()
    limit = next((r["limit"] for r in rows if r["clients"] == failed), None)
    if args.find_max and failed is None:
        limit = f"--max-clients {args.max_clients} reached"
    held = next((r for r in rows if r["clients"] == best), None)
    return {
        "rows": rows,
        "max_clients": best,
        "limit": limit,
        "p95_ms_at_max": held["rtt_p95_ms"] if held else None,
        # the server's CPU for one message at the most pages held: what a core serves
        "server_cpu_ms_per_message": round(1000 * held["server_cores"] / held["per_second"], 2)
        if held and held["per_second"]
        else None,
    }


def settle(server: ServerProcess, timeout: float = 15.0) -> None:
    """Wait until the server has let go of the last row's pages, so that rows do not overlap."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.health()["sessions"]:
        time.sleep(0.2)


def find_max(measure, start: int, step: int, most: int) -> tuple[int, int | None]:
    """The most clients for which ``measure(n)["limit"]`` is None, and the fewest that failed:
    doubling from ``start``, then halving the gap down to ``step`` or a tenth of what held."""
    held, failed, n = 0, None, start
    while failed is None and n <= most:
        if measure(n)["limit"] is None:
            held, n = n, min(2 * n, most) if n < most else most + 1
        else:
            failed = n
    while failed is not None and failed - held > max(step, held // 10):
        n = (held + failed) // 2
        if measure(n)["limit"] is None:
            held = n
        else:
            failed = n
    return held, failed


def main_analysis(args: argparse.Namespace) -> dict:
    """``--analysis``: each mode on a fresh server, one after the other, in one run."""
    folder = Path(tempfile.mkdtemp(prefix="emocare-analysis-bench-"))
    report: dict = {
        "p95_bar_ms": args.p95_ms,
        "seconds_per_row": args.seconds,
        "processes": args.processes,
        "page_messages_per_second": {mode: round(1 / pages.message_period(mode), 1) for mode in pages.MODES},
        "cpus": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "message_bytes": {
            "server": len(pages.page_jpeg()),
            "device": len(json.dumps(pages.scores_message(), separators=(",", ":"))),
        },
        "modes": {},
    }
    try:
        for mode in args.analysis:
            report["modes"][mode] = analysis_rows(mode, args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    report["max_clients"] = {mode: found["max_clients"] for mode, found in report["modes"].items()}
    report["limit"] = {mode: found["limit"] for mode, found in report["modes"].items()}
    held = report["max_clients"]
    if held.get("server") and held.get("device"):
        report["device_to_server"] = round(held["device"] / held["server"], 1)
    if not args.json:
        for mode, found in report["modes"].items():
            print(
                f"{mode}: {found['max_clients']} pages held (p95 {found['p95_ms_at_max']} ms); limit: {found['limit']}"
            )
    # the last line, whatever else was printed: one JSON object
    print(json.dumps(report if args.json else {k: report[k] for k in ("max_clients", "limit")}))
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main()
