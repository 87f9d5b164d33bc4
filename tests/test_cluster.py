"""The cluster of docs/deploy.md with the real parts: two EmoCare processes on PostgreSQL and
Redis behind nginx with HTTPS (``deploy.cluster``, what ``make cluster N=2`` starts).

Served over HTTPS through nginx, in a real browser (the streaming Python clients use nginx's
loopback port without TLS: Python's TLS WebSocket client stalled now and then); WebSocket clients spread over both
processes; a profile forgotten on one process is let go of on the other; a ``kill -9`` of a
process under load sends its pages to the other within 5 s while the other's pages see no
error and no committed row is lost; a PostgreSQL restart mid-stream loses nothing either.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis
import requests
import socketio

from deploy.cluster import Cluster
from deploy.services import ServerProcess, free_port

from .conftest import ARTIFACTS, ROOT, chromium, form_token, fresh_database, start_camera, stream

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def cluster():
    folder = Path(tempfile.mkdtemp(prefix="emocare-cluster-"))
    folder.chmod(0o755)  # PostgreSQL runs as its own user when the tests run as root
    # the tests' clients all come from 127.0.0.1: room for them under the per-address caps
    env = {"EMOCARE_MAX_CONNECTIONS_PER_ADDRESS": "40"}
    with Cluster(
        folder, servers=2, https_port=free_port(), env=env, nginx_options={"connections_per_address": 60}
    ) as c:
        yield c
    for server in c.servers:  # kept for a failed run's post-mortem
        shutil.copy(server.log_path, ARTIFACTS / f"cluster-{server.log_path.name}")
    shutil.rmtree(folder, ignore_errors=True)


def sql(cluster: Cluster, query: str, *args) -> list[tuple]:
    dsn = cluster.postgres.url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, args).fetchall()


class Page(threading.Thread):
    """A live page that streams at 10 fps and, like the real page, reconnects when its server
    goes away; it records its results, the errors it saw and when it was cut off and back."""

    def __init__(self, url: str, jpeg: bytes, profile: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.jpeg, self.seconds = jpeg, seconds
        self.results, self.errors = 0, []
        self.cut_at: float | None = None
        self.back_at: float | None = None
        self.answered = threading.Event()
        self.answered_at: list[float] = []
        self.leaving = False
        # reconnecting as the page does (socket.io-client's defaults, shortened)
        self.sio = socketio.Client(reconnection_delay=0.2, reconnection_delay_max=1, ssl_verify=False)
        self.sio.on("result", self._result)
        self.sio.on("error", lambda msg: self.errors.append(msg))
        self.sio.on("disconnect", self._cut)
        self.sio.on("connect", self._back)
        headers = {"Cookie": f"emocare_profile={profile}"}
        self.sio.connect(url, headers=headers, transports=["websocket"], wait_timeout=10)

    def _result(self, _msg) -> None:
        self.results += 1
        self.answered_at.append(time.monotonic())
        self.answered.set()

    def _cut(self, *_reason) -> None:
        if not self.leaving:  # not its own disconnect at the end
            self.cut_at = self.cut_at or time.monotonic()

    def _back(self) -> None:
        if self.cut_at is not None and self.back_at is None:
            self.back_at = time.monotonic()

    def run(self) -> None:
        end, seq = time.monotonic() + self.seconds, 0
        while time.monotonic() < end:
            self.answered.clear()
            if self.sio.connected:
                seq += 1
                with contextlib.suppress(socketio.exceptions.SocketIOError):  # cut off just now: reconnecting
                    self.sio.emit("frame", {"seq": seq, "image": self.jpeg})
                self.answered.wait(2)
            time.sleep(0.1)
        self.leaving = True
        self.sio.disconnect()


def test_the_page_is_served_over_https_through_nginx(cluster):
    page = requests.get(cluster.url + "/", timeout=10, verify=str(cluster.certificate))
    assert page.status_code == 200 and "Start camera" in page.text
    assert cluster.health()["state"] == "ready"
    plain = requests.get(f"http://127.0.0.1:{cluster.nginx.http_port}/history/", allow_redirects=False, timeout=5)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
    [(revision,)] = sql(cluster, "SELECT version_num FROM alembic_version")
    assert revision  # the servers migrated the shared database at start


def test_the_device_files_are_served_through_nginx_compressed_cached_and_typed(cluster):
    """What a device-mode page loads, through nginx over HTTPS: the manifest never cached (by
    the browser or by nginx), every file it names gzipped when the client takes gzip and whole
    when not, each with its MIME type and a year-long immutable cache, the same bytes as the
    file on disk, and from nginx's own copy the second time; an outdated digest is a 404."""
    import gzip
    import hashlib

    def get(path: str, encoding: str = "gzip") -> requests.Response:
        answer = requests.get(
            cluster.url + path,
            headers={"Accept-Encoding": encoding},
            stream=True,
            timeout=30,
            verify=str(cluster.certificate),
        )
        answer.body = answer.raw.read(decode_content=False)  # as sent, not as requests decodes it
        return answer

    manifest = [get("/device/manifest.json") for _ in range(2)]
    for answer in manifest:
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-cache"
        assert answer.headers["X-Cache"] != "HIT"  # every manifest request reaches a server
    names = json.loads(
        gzip.decompress(manifest[0].body) if manifest[0].headers.get("Content-Encoding") else manifest[0].body
    )
    runtime = names["runtime"]["wasm_path"]
    files = {
        names["runtime"]["module"]: "text/javascript",
        runtime + "ort-wasm-simd-threaded.mjs": "text/javascript",
        runtime + "ort-wasm-simd-threaded.wasm": "application/wasm",
        names["classifier"]["model"]: "application/octet-stream",
        names["classifier"]["card"]: "application/json",
        names["detector"]["short"]: "application/octet-stream",
        names["detector"]["full"]: "application/octet-stream",
    }
    vendor = ROOT / "static" / "vendor" / f"onnxruntime-web-{names['runtime']['version']}"
    for url, mimetype in files.items():
        first, again, whole = get(url), get(url), get(url, "identity")
        for answer in (first, again, whole):
            assert answer.status_code == 200, url
            assert answer.headers["Content-Type"].split(";")[0] == mimetype, url
            assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable", url
            assert "wasm-unsafe-eval" in answer.headers["Content-Security-Policy"], url
        assert first.headers["Content-Encoding"] == again.headers["Content-Encoding"] == "gzip", url
        assert "Content-Encoding" not in whole.headers, url
        assert again.headers["X-Cache"] == "HIT" and again.body == first.body, url  # nginx's own copy
        assert gzip.decompress(first.body) == whole.body, url
        if "/models/" in url:  # the URL names the content: its sha256's first 16 hex digits
            assert hashlib.sha256(whole.body).hexdigest()[:16] == url.rsplit(".", 2)[1], url
        else:
            assert whole.body == (vendor / url.rsplit("/", 1)[1]).read_bytes(), url
    stale = names["classifier"]["model"].replace(names["classifier"]["model"].rsplit(".", 2)[1], "0" * 16)
    assert get(stale).status_code == 404


def test_websocket_pages_spread_over_both_processes(cluster, astronaut_jpeg):
    """nginx balances WebSocket connections (least connections): a room of cameras behind
    one address is not all sent to one process, as stickiness by address would do."""
    clients = [socketio.Client(ssl_verify=False) for _ in range(6)]
    try:
        for client in clients:
            client.connect(cluster.url, transports=["websocket"], wait_timeout=10)  # HTTPS: no frames sent
        counts = [server.health()["sessions"] for server in cluster.servers]
        assert sum(counts) == 6 and min(counts) >= 2, counts
    finally:
        for client in clients:
            client.disconnect()


def test_forgetting_a_profile_on_one_process_reaches_its_pages_on_the_other(cluster, astronaut_jpeg):
    """The profile streams on process 2 while "delete all my data" is pressed on process 1:
    its old rows are gone for good, and its page on process 2 goes on in a new session
    (without the word from process 1 over Redis, process 2's writes for the deleted session
    would all be refused from then on)."""
    one, two = cluster.servers
    profile = "forget-everywhere"
    outcome = {}
    page = threading.Thread(target=lambda: outcome.update(two=stream(two.url, profile, 7.0, astronaut_jpeg)))
    page.start()
    time.sleep(3.5)
    old = {row[0] for row in sql(cluster, "SELECT id FROM sessions WHERE profile = %s", profile)}
    assert len(old) == 1
    browser = requests.Session()
    browser.cookies.set("emocare_profile", profile)
    token = form_token(browser, one.url + "/history/")
    done = browser.post(one.url + "/history/delete", data={"confirm": "yes", "csrf_token": token}, timeout=15)
    assert done.status_code == 200 and "refused" not in done.url
    page.join()
    assert outcome["two"][0] >= 40  # the page on process 2 never stopped
    time.sleep(1.5)  # its last batch
    rows = sql(
        cluster,
        "SELECT x.id, count(s.id) FROM sessions x LEFT JOIN samples s ON s.session_id = x.id "
        "WHERE x.profile = %s GROUP BY x.id",
        profile,
    )
    assert {r[0] for r in rows}.isdisjoint(old), "a deleted session came back"
    assert sum(r[1] for r in rows) >= 2, "the page's history after the delete was lost"
    assert "refuse" not in two.log_tail(100_000)  # no write of the deleted session was tried


def test_a_killed_process_hands_its_pages_to_the_other_and_loses_nothing(cluster, astronaut_jpeg):
    pages = [Page(cluster.local_url, astronaut_jpeg, f"failover-{i}", 14.0) for i in range(6)]
    victim, survivor = cluster.servers
    on_victim = victim.health()["sessions"]
    assert 2 <= on_victim <= 4  # the load is spread, so both kinds of page are tested
    for page in pages:
        page.start()
    time.sleep(5.0)
    committed = {row[0] for row in sql(cluster, "SELECT id FROM samples")}
    killed_at = time.monotonic()
    victim.kill_9()
    for page in pages:
        page.join()
    cut = [p for p in pages if p.cut_at is not None]
    kept = [p for p in pages if p.cut_at is None]
    assert len(cut) == on_victim and kept
    for page in cut:
        assert page.back_at is not None and page.back_at - killed_at <= 5.0, "not back within 5 s"
    for page in kept:  # the other process's pages never noticed
        assert page.errors == [] and page.results >= 50
        assert max(b - a for a, b in itertools.pairwise(page.answered_at)) < 1.0
    after = {row[0] for row in sql(cluster, "SELECT id FROM samples")}
    assert committed <= after, f"{len(committed - after)} committed history rows lost"
    assert survivor.health()["sessions"] == 0  # every page has left again
    cluster.servers.remove(victim)
    cluster.add_server(port=victim.port)  # where nginx expects it, for the tests after this one


def test_a_postgresql_restart_mid_stream_is_retried_and_the_server_stays_up(cluster, astronaut_jpeg):
    profile = "through-a-restart"
    outcome = {}
    page = threading.Thread(target=lambda: outcome.update(r=stream(cluster.local_url, profile, 9.0, astronaut_jpeg)))
    page.start()
    time.sleep(3.0)
    cluster.postgres.restart()
    assert cluster.health()["state"] == "ready"
    page.join()
    results, _ = outcome["r"]
    assert results >= 60
    time.sleep(2.5)  # the retried batch and the last one
    stamps = [
        r[0]
        for r in sql(
            cluster,
            "SELECT s.ts FROM samples s JOIN sessions x ON x.id = s.session_id WHERE x.profile = %s ORDER BY s.ts",
            profile,
        )
    ]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) >= 7 and max(gaps) < 2.5, f"history lost across the restart: gaps {gaps}"
    assert all(s.proc.poll() is None for s in cluster.servers)


def test_the_real_page_works_through_nginx(cluster, fake_camera, tmp_path):
    with chromium(fake_camera, tmp_path / "profile", ignore_https_errors=True) as context:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        start_camera(page, cluster.url + "/?lang=en")
        page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=30_000)
        assert page.locator("#status").get_attribute("data-state") == "live"
        page.screenshot(path=str(ARTIFACTS / "cluster-live.png"))
        assert errors == []


def test_serve_takes_the_cluster_settings_on_its_command_line(postgres, redis_server, astronaut_jpeg):
    """``emocare serve --database-url … --message-queue … --workers 1``: the history goes to
    PostgreSQL and the process joins the others on Redis."""
    url = fresh_database(postgres)
    args = ("--database-url", url, "--message-queue", redis_server.url, "--workers", "1")
    server = ServerProcess("gunicorn", {}, log_dir=ARTIFACTS, args=args)
    try:
        results, _ = stream(server.url, "by-flags", 2.5, astronaut_jpeg)
        assert results >= 10
        [(_, listeners)] = redis.Redis.from_url(redis_server.url).pubsub_numsub("emocare:peers")
        assert listeners == 1  # it listens for the others' forget requests
        server.stop()  # writes the last batch
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            [(sessions,)] = conn.execute("SELECT count(*) FROM sessions WHERE profile = 'by-flags'").fetchall()
        assert sessions == 1
        assert "(threading mode, 1 workers)" in server.log_tail(20_000)
    finally:
        server.stop()
