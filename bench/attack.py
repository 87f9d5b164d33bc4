"""Attack suite: the hardening issue's attacks against a real server on 127.0.0.1.

Starts ``run.py`` (Gunicorn, default settings) and, while a calm page streams real frames at
10 fps beside them, runs each attack, bounded in time, and prints one row per attack: what was
sent, what came back and how fast, the calm page's round-trip p95 before and during, the
server's memory (all its processes) before and at the peak, and how much log it wrote. Each row
says whether it meets the issue's bar (``ok``). Two attacks need a server of their own: the
speech one (a scripted sad stream, so every page gets care) and the ``kill -9`` one.

    python -m bench.attack [--only NAME ...] [--quick] [--json]

``--quick`` runs the fast attacks only (``tests/test_attack.py`` runs those in CI); the
floods and the speech run take about a minute more. docs/security.md has the measured table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
import socketio
import websocket

from emocare.live.service import FLOODER_PAUSE_S
from emocare.vision.samples import astronaut, place_on_canvas, progressive_jpeg, to_jpeg

from .common import ROOT, ServerProcess, percentile

ARTIFACTS = ROOT / "bench" / "artifacts"
FRAME = to_jpeg(place_on_canvas(astronaut(), (320, 240), face_height=0.8))
#: Socket.IO over a raw WebSocket (Engine.IO 4): a frame event with one binary attachment.
FRAME_PACKET = '451-["frame",{"seq":1,"image":{"_placeholder":true,"num":0}}]'


@dataclass
class Row:
    attack: str
    sent: str
    answer: str = ""
    seconds: float = 0.0
    p95_before_ms: float = 0.0
    p95_during_ms: float = 0.0
    worst_during_ms: float = 0.0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    log_bytes: int = 0
    ok: bool = False
    bar: str = ""


@dataclass
class Calm:
    """A page that behaves: one frame in flight, 10 fps; every round trip kept with its time."""

    url: str
    trips: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._answer = threading.Event()
        self._stop = threading.Event()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("result", lambda _m: self._answer.set())
        self.sio.connect(self.url, transports=["websocket"], wait_timeout=10)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            sent = time.perf_counter()
            self._answer.clear()
            seq += 1
            self.sio.emit("frame", {"seq": seq, "image": FRAME})
            answered = self._answer.wait(5)
            self.trips.append((sent, (time.perf_counter() - sent) * 1000 if answered else 5000.0))
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - sent)))

    def between(self, start: float, end: float) -> list[float]:
        return [rtt for t, rtt in list(self.trips) if start <= t <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sio.disconnect()


class Memory(threading.Thread):
    """The server's resident memory, sampled every 100 ms."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server, self.samples, self.stopped = server, [], threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.perf_counter(), self.server.rss()))
            time.sleep(0.1)

    def peak(self, start: float, end: float) -> int:
        return max((rss for t, rss in list(self.samples) if start <= t <= end), default=self.server.rss())


def websocket_url(url: str) -> str:
    """The server's Socket.IO endpoint as a raw WebSocket (Engine.IO 4) sees it."""
    return url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"


def raw_socket(url: str, host: str | None = None, timeout: float = 10) -> websocket.WebSocket:
    """A Socket.IO connection by hand, joined to the default namespace: what an attacker
    who does not use a Socket.IO library sends."""
    ws = websocket.create_connection(websocket_url(url), timeout=timeout, host=host)
    ws.recv()  # Engine.IO open
    ws.send("40")
    return ws


def events_until(ws: websocket.WebSocket, name: str, timeout: float) -> tuple[dict | None, float]:
    """The first ``name`` event the server sends within ``timeout`` s, and how long it took."""
    started = time.perf_counter()
    ws.settimeout(timeout)
    while time.perf_counter() - started < timeout:
        try:
            message = ws.recv()
        except (websocket.WebSocketTimeoutException, websocket.WebSocketConnectionClosedException):
            break
        if isinstance(message, str) and message == "2":
            ws.send("3")  # Engine.IO ping
        elif isinstance(message, str) and message.startswith("42"):
            event, *args = json.loads(message[2:])
            if event == name:
                return (args[0] if args else {}), time.perf_counter() - started
    return None, time.perf_counter() - started


# --- the attacks: each returns (sent, answer, seconds, ok, bar) ------------------------------


def scan_bomb(server: ServerProcess) -> tuple:
    """Two clients each send the measured scan bomb (about 990,000 bytes of repeated scans)."""
    scene = place_on_canvas(astronaut(), (640, 480))
    plain = progressive_jpeg(scene)
    scan = len(progressive_jpeg(scene, 1)) - len(plain)  # its smallest scan
    bomb = progressive_jpeg(scene, scans_repeated=(990_000 - len(plain)) // scan)
    scans = bomb.count(b"\xff\xda")
    answers: list[tuple[dict | None, float]] = []

    def send() -> None:
        ws = raw_socket(server.url)
        events_until(ws, "status", 5)
        ws.send(FRAME_PACKET)
        ws.send_binary(bomb)
        answers.append(events_until(ws, "error", 30))
        ws.close()

    senders = [threading.Thread(target=send) for _ in range(2)]
    for s in senders:
        s.start()
    for s in senders:
        s.join()
    codes = sorted({(a or {}).get("code", "none") for a, _ in answers})
    seconds = max(t for _, t in answers)
    return (
        f"2 senders × {len(bomb):,} bytes, {scans:,} scans",
        ", ".join(codes),
        seconds,
        codes == ["too_complex"] and seconds < 1.0,
        "too_complex within 1 s",
    )


#: (what, packet) of malformed events, sent as raw Socket.IO text packets
MALFORMED = [
    ("frame with 2 arguments", '42["frame",{"seq":1},2]', "bad_request"),
    ("configure with 3 arguments", '42["configure",{},1,2]', "bad_request"),
    ("care_feedback with 2 arguments", '42["care_feedback",{},1]', "bad_request"),
    ("seq 2**70", '42["frame",{"seq":1180591620717411303424,"image":"x"}]', "bad_seq"),
    ("seq true", '42["frame",{"seq":true,"image":"x"}]', "bad_seq"),
    ("seq -1", '42["frame",{"seq":-1,"image":"x"}]', "bad_seq"),
    ("cooldown_s 10**400", '42["configure",{"settings":{"cooldown_s":1' + "0" * 400 + "}}]", "bad_request"),
    ("cooldown_s NaN", '42["configure",{"settings":{"cooldown_s":NaN}}]', "bad_settings"),
    ("broken JSON", '42["configure",{', "bad_request"),
    ("configure naming a profile", '42["configure",{"profile":"someone-else"}]', "bad_settings"),
    ("a frame of text", '42["frame","hello"]', "bad_type"),
    ("an unknown event", '42["format_disk",{}]', None),
]


def malformed_events(server: ServerProcess) -> tuple:
    """Every malformed event of the issue, one after another on one raw connection; then the
    client-sent ``connect`` and ``disconnect``, after which a real frame must still be served."""
    ws = raw_socket(server.url)
    events_until(ws, "status", 5)
    wrong, slowest = [], 0.0
    for what, packet, code in MALFORMED:
        ws.send(packet)
        error, took = events_until(ws, "error", 1.0)
        got = None if error is None else error.get("code")
        if code is not None and got != code:
            wrong.append(f"{what}: {got}")
        slowest = max(slowest, took if code is not None else 0.0)
        if code == "bad_request":
            time.sleep(1.05)  # an unreadable message is told at most once a second
    ws.send('42["connect",{"token":"x"}]')
    ws.send('42["disconnect"]')
    ws.send(FRAME_PACKET)
    ws.send_binary(FRAME)
    result, _ = events_until(ws, "result", 5)
    ws.close()
    if result is None:
        wrong.append("a frame after client-sent connect/disconnect: no result")
    answer = "each its error code" if not wrong else "; ".join(wrong)
    return (
        f"{len(MALFORMED)} malformed events, then client-sent connect and disconnect",
        answer + (", then served" if result is not None else ""),
        slowest,
        not wrong and slowest < 1.0,
        "a clear error each within 1 s; still served",
    )


def garbage_packets(server: ServerProcess) -> tuple:
    ws = raw_socket(server.url)
    started = time.perf_counter()
    for _ in range(2000):
        ws.send_binary(b"\x00")
    ws.close()
    return "2,000 one-byte binary packets", "dropped", time.perf_counter() - started, True, "≤ 200 KB of log"


def kernel_buffered_frames(frame_bytes: int = len(FRAME)) -> int:
    """How many flood frames the kernel can hold between a loopback sender and a server that
    does not read: the largest TCP receive and send buffers (Linux's tcp_rmem, tcp_wmem) over
    the frame's size. A sender counts those frames as sent though the server never took them,
    and machines differ: 6 MB of receive buffer is Debian's default, 32 MB was seen here."""
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            total += 6 * 2**20  # not Linux: a default-sized buffer
    return total // frame_bytes


def raw_flood(url: str, seconds: float = 10.0) -> tuple:
    """Frames as fast as a raw WebSocket can send them, for ``seconds``: cut off, it connects
    again at once and goes on, so the flood lasts the whole time. A send that blocks for 2 s
    (the server no longer reads) counts as cut off too."""
    started, sent, cuts, taken = time.perf_counter(), 0, 0, []
    while time.perf_counter() - started < seconds:
        try:
            ws = raw_socket(url, timeout=2)
        except (OSError, websocket.WebSocketException):
            time.sleep(0.05)  # refused at the handshake (its last socket not yet released)
            continue
        opened, count = time.perf_counter(), 0
        try:
            while time.perf_counter() - started < seconds:
                ws.send(FRAME_PACKET)
                ws.send_binary(FRAME)
                count += 1
                last = time.perf_counter()
        except (OSError, websocket.WebSocketException):
            cuts += 1  # the server shut the connection, or stopped reading it
            taken.append((count, last - opened if count else 0.0))
        sent += count
        ws.close()
    took = time.perf_counter() - started
    if cuts:
        frames, lasted = sorted(taken)[len(taken) // 2]
        answer = (
            f"cut off {cuts} times; a connection's frames taken, median {frames:,} (in {lasted:.1f} s;"
            f" the kernel's socket buffers hold up to {kernel_buffered_frames():,} of them)"
        )
    else:
        answer = "never cut off"
    return (
        f"raw WebSocket for {seconds:.0f} s, reconnecting: {sent:,} frames of {len(FRAME):,} bytes",
        answer,
        took,
        cuts > 0,
        "RSS +150 MB, p95 ×2 at most",
    )


def socketio_flood(url: str, seconds: float = 10.0) -> tuple:
    sio = socketio.Client(reconnection=False)
    codes: set[str] = set()
    sio.on("error", lambda e: codes.add(e.get("code", "")))
    sio.connect(url, transports=["websocket"], wait_timeout=10)
    started, sent = time.perf_counter(), 0
    while time.perf_counter() - started < seconds and sio.connected:
        sio.emit("frame", {"seq": sent, "image": FRAME})
        sent += 1
    took = time.perf_counter() - started
    deadline = time.perf_counter() + 5
    while sio.connected and time.perf_counter() < deadline:
        time.sleep(0.1)
    cut = not sio.connected
    time.sleep(0.5)  # the client's reader thread may still be handing out the last events
    sio.disconnect()
    answer = ", ".join(sorted(codes)) + (", disconnected" if cut else ", still connected")
    return f"python-socketio, {sent:,} frames", answer, took, "rate_limited" in codes and cut, "told, cut off"


def idle_connections(server: ServerProcess, count: int = 200) -> tuple:
    """``count`` sockets from one address that never join the namespace nor send anything."""
    sockets, refused = [], 0
    started = time.perf_counter()
    for _ in range(count):
        try:
            sockets.append(websocket.create_connection(websocket_url(server.url), timeout=5))
        except websocket.WebSocketBadStatusException:
            refused += 1
        except (OSError, websocket.WebSocketException):
            break  # the server stopped answering: the row says how many got through
    took = time.perf_counter() - started
    threads = server.threads()
    served = requests.get(server.url + "/healthz", timeout=5).status_code  # a newcomer is still served
    for ws in sockets:
        ws.close()
    return (
        f"{count} idle sockets from one address",
        f"{len(sockets)} opened, {refused} refused (HTTP 401); {threads} server threads; a newcomer got {served}",
        took,
        len(sockets) <= 12 and served == 200,
        "capped per address (10 + 2 spare)",
    )


def foreign_host(server: ServerProcess) -> tuple:
    """DNS rebinding: another name in Host (and Origin), on HTTP and on Socket.IO."""
    evil = {"Host": "evil.example", "Origin": "http://evil.example"}
    started = time.perf_counter()
    page = requests.get(server.url + "/", headers=evil, timeout=5).status_code
    export = requests.get(server.url + "/history/export.json", headers=evil, timeout=5).status_code
    try:
        raw_socket(server.url, host="evil.example").close()
        stream = "opened"
    except (OSError, websocket.WebSocketException) as exc:
        stream = f"refused ({getattr(exc, 'status_code', type(exc).__name__)})"
    took = time.perf_counter() - started
    return (
        "Host and Origin evil.example",
        f"page {page}, export {export}, Socket.IO {stream}",
        took,
        page >= 400 and export >= 400 and stream.startswith("refused"),
        "refused on HTTP and Socket.IO",
    )


def headers(server: ServerProcess) -> tuple:
    started = time.perf_counter()
    got = requests.get(server.url + "/", timeout=5).headers
    wanted = {
        "Content-Security-Policy": "frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    missing = [name for name, part in wanted.items() if part not in got.get(name, "")]
    return (
        "GET /",
        "all present" if not missing else "missing: " + ", ".join(missing),
        time.perf_counter() - started,
        not missing,
        "CSP with frame-ancestors, nosniff, Referrer-Policy",
    )


FAST: dict[str, Callable[[ServerProcess], tuple]] = {
    "scan_bomb": scan_bomb,
    "malformed_events": malformed_events,
    "foreign_host": foreign_host,
    "headers": headers,
    "garbage_packets": garbage_packets,  # last of the fast half: it gets this address paused
}


#: attacks after which the server pauses this address (every client here shares 127.0.0.1)
PAUSED_AFTER = ("garbage_packets", "raw_flood", "socketio_flood")


def elsewhere(attack: Callable[[str], tuple]) -> Callable[[ServerProcess], tuple]:
    """Run ``attack(url)`` in a process of its own: a flooding client would otherwise hold this
    process's GIL and slow the calm page's own side of every round trip."""

    def run(server: ServerProcess) -> tuple:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(attack, server.url).result(timeout=120)

    return run


SLOW: dict[str, Callable[[ServerProcess], tuple]] = {
    "raw_flood": elsewhere(raw_flood),
    "socketio_flood": elsewhere(socketio_flood),
    "idle_connections": idle_connections,
}


def run_on_shared_server(names: list[str], log_dir: Path) -> list[Row]:
    server = ServerProcess("gunicorn", log_dir=log_dir)
    memory = Memory(server)
    memory.start()
    calm = Calm(server.url)
    rows = []
    try:
        time.sleep(3)  # the calm page's own baseline
        for name in names:
            attack = {**FAST, **SLOW}[name]
            quiet = time.perf_counter()
            time.sleep(2)
            before_rtts = calm.between(quiet, time.perf_counter())
            rss_before, log_before = server.rss(), server.log_path.stat().st_size
            start = time.perf_counter()
            sent, answer, seconds, ok, bar = attack(server)
            time.sleep(1)  # what the attack left behind
            end = time.perf_counter()
            during = calm.between(start, end)
            row = Row(
                name,
                sent,
                answer,
                round(seconds, 3),
                round(percentile(before_rtts, 0.95), 1),
                round(percentile(during, 0.95), 1),
                round(max(during, default=float("nan")), 1),
                round(rss_before / 2**20, 1),
                round(memory.peak(start, end) / 2**20, 1),
                server.log_path.stat().st_size - log_before,
                ok,
                bar,
            )
            row.ok = row.ok and _meets_shared_bars(row)
            rows.append(row)
            if name in PAUSED_AFTER and name != names[-1]:
                time.sleep(FLOODER_PAUSE_S)  # this address (everyone here) is paused after a flood
    finally:
        calm.close()
        memory.stopped.set()
        server.stop()
    return rows


def _meets_shared_bars(row: Row) -> bool:
    """The bars every attack on the shared server must meet (the issue's "Done when")."""
    if row.attack == "scan_bomb" and row.worst_during_ms >= 1000:
        return False
    if row.attack == "raw_flood":
        return row.rss_peak_mb - row.rss_before_mb <= 150 and row.p95_during_ms <= 2 * row.p95_before_ms
    if row.attack == "garbage_packets":
        return row.log_bytes <= 200_000
    return row.log_bytes <= 20_000  # no traceback per bad input


def speech_in_distress(log_dir: Path, pages: int = 40, seconds: float = 12.0) -> Row:
    """``pages`` pages whose faces stay sad, on a server with an empty speech cache: how many
    speech syntheses run at once (sampled every 20 ms)?"""
    server = ServerProcess(
        "gunicorn",
        {
            "EMOCARE_ANALYZER": "scripted",
            "EMOCARE_SCRIPTED_MOODS": "sad",
            "EMOCARE_MAX_CONNECTIONS_PER_ADDRESS": str(pages + 5),
        },
        log_dir=log_dir,
    )
    cards, voices = [0], [0]
    clients = []
    rss_before, log_before = server.rss(), server.log_path.stat().st_size
    try:
        for _ in range(pages):
            sio = socketio.Client(reconnection=False)
            sio.on("care", lambda _m: cards.__setitem__(0, cards[0] + 1))
            sio.on("care_speech", lambda _m: voices.__setitem__(0, voices[0] + 1))
            sio.connect(server.url, transports=["websocket"], wait_timeout=10)
            sio.emit("configure", {"locale": "en"})
            clients.append(sio)
        most, peak_rss = 0, rss_before
        started = time.perf_counter()
        next_frame = started
        while time.perf_counter() - started < seconds:
            if time.perf_counter() >= next_frame:
                for k, sio in enumerate(clients):
                    sio.emit("frame", {"seq": k, "image": FRAME})
                next_frame += 0.2
            synthesising = 0
            for pid in server.pids():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                synthesising += b"espeak" in cmdline or b"tts_worker" in cmdline
            most = max(most, synthesising)
            peak_rss = max(peak_rss, server.rss())
            time.sleep(0.02)
        took = time.perf_counter() - started
    finally:
        for sio in clients:
            sio.disconnect()
        server.stop()
    rendered = len(list((log_dir / f"instance-{server.port}" / "tts_cache").glob("*.wav")))
    return Row(
        "speech_in_distress",
        f"{pages} pages with a sad face for {seconds:.0f} s, empty speech cache",
        f"{cards[0]} cards, {voices[0]} voices ({rendered} texts rendered, the rest shared);"
        f" at most {most} synthesis at once",
        round(took, 1),
        rss_before_mb=round(rss_before / 2**20, 1),
        rss_peak_mb=round(peak_rss / 2**20, 1),
        log_bytes=server.log_path.stat().st_size - log_before,
        ok=most <= 1 and cards[0] >= pages,
        bar="one synthesis at a time per process",
    )


def kill_9_restart(log_dir: Path) -> Row:
    """A page streams, the server is killed with SIGKILL, and started again on the same folder:
    is any history session left without an end?"""
    instance = log_dir / f"instance-kill-{int(time.time())}"
    env = {"EMOCARE_ANALYZER": "scripted", "EMOCARE_INSTANCE_PATH": str(instance)}
    server = ServerProcess("gunicorn", env, log_dir=log_dir)
    sio = socketio.Client(reconnection=False)
    sio.connect(server.url, headers={"Cookie": "emocare_profile=kill-me"}, transports=["websocket"], wait_timeout=10)
    sio.emit("configure", {"locale": "en"})
    for seq in range(30):
        sio.emit("frame", {"seq": seq, "image": FRAME})
        time.sleep(0.1)
    started = time.perf_counter()
    server.kill_9()
    again = ServerProcess("gunicorn", env, log_dir=log_dir)
    took = time.perf_counter() - started
    again.stop()
    with sqlite3.connect(instance / "history.sqlite3") as db:
        total, open_ = db.execute("SELECT COUNT(*), SUM(ended_at IS NULL) FROM sessions").fetchone()
    return Row(
        "kill_9_restart",
        "SIGKILL while a page streams, then a restart",
        f"{total} session(s), {open_ or 0} left without an end",
        round(took, 1),
        ok=total >= 1 and not open_,
        bar="no session left with an empty end",
    )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="attack names (default: all)")
    parser.add_argument("--quick", action="store_true", help="only the fast attacks (as CI runs them)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    every = [*FAST, *SLOW, "speech_in_distress", "kill_9_restart"]
    names = args.only or (list(FAST) if args.quick else every)
    unknown = set(names) - set(every)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shared = [n for n in names if n in FAST or n in SLOW]
    rows = run_on_shared_server(shared, ARTIFACTS) if shared else []
    if "speech_in_distress" in names:
        rows.append(speech_in_distress(ARTIFACTS))
    if "kill_9_restart" in names:
        rows.append(kill_9_restart(ARTIFACTS))
    table = [asdict(r) for r in rows]
    if args.json:
        print(json.dumps(table, indent=1))
    else:
        print_table(rows)
    return table


COLUMNS = (
    "attack",
    "sent",
    "answer",
    "time s",
    "others' p95 before / during (worst) ms",
    "RSS before / peak MB",
    "log bytes",
    "bar",
    "ok",
)


def print_table(rows: list[Row]) -> None:
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        cells = (
            r.attack,
            r.sent,
            r.answer,
            f"{r.seconds:.2f}",
            f"{r.p95_before_ms} / {r.p95_during_ms} ({r.worst_during_ms})",
            f"{r.rss_before_mb} / {r.rss_peak_mb}",
            f"{r.log_bytes:,}",
            r.bar,
            "yes" if r.ok else "NO",
        )
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
