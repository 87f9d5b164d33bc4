"""The mood history on a real SQLite file and a real PostgreSQL server: writes, summaries,
export, delete, retention, migrations, a full disk, and many writers at once.

Every test that is not about one engine's own behaviour (SQLite's write-ahead log and page
cap) runs on both: ``store`` is parametrised over the two backends.
"""

import csv
import io
import sqlite3
import threading
import time

import pytest

from emocare.care.policy import CareAction
from emocare.history import HistorySession, HistoryStore, HistoryWriter
from emocare.history.schema import current_revision, head
from emocare.vision.scripted import scores_for
from emocare.vision.types import EMOTIONS

from .conftest import fresh_database, unwritable


@pytest.fixture
def db(tmp_path):
    return tmp_path / "history.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request, tmp_path):
    """Makes empty stores of one backend: SQLite files, or new PostgreSQL databases."""
    made = []

    def make() -> HistoryStore:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f'history-{len(made)}.sqlite3'}"
        else:
            url = fresh_database(request.getfixturevalue("postgres"))
        made.append(HistoryStore(url))
        return made[-1]

    yield make
    for store in made:
        store.engine.dispose()


@pytest.fixture
def store(new_store):
    return new_store()


@pytest.fixture
def sqlite_store(db):
    store = HistoryStore(f"sqlite:///{db}")
    yield store
    store.engine.dispose()


def record(writer, session, moods, start=1_700_000_000.0):
    """Feed one label per second (several frames each, as the live page does)."""
    for second, mood in enumerate(moods):
        for frame in range(10):
            writer.sample(session, mood, 0.8, scores_for(mood, 0.8), start + second + frame / 10)


def test_wal_mode_and_schema_version(sqlite_store, db):
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head()
        columns = {row[1] for row in conn.execute("PRAGMA table_info(samples)")}
    assert set(EMOTIONS) <= columns
    assert not any("image" in c or "crop" in c or "box" in c for c in columns)  # never images


def test_one_sample_a_second_summary_and_timeline(store):
    writer = HistoryWriter(store)
    session = HistorySession(profile="mei", locale="zh-CN")
    record(writer, session, ["sad"] * 6 + ["neutral"] * 3 + ["happy"])
    action = CareAction("message", "sad", "sad-01", 0.0)
    writer.care(session, action, 1_700_000_003.5)
    writer.feedback(action.id, "helpful", 1_700_000_004.0)
    assert writer.flush() == 1 + 10 + 2
    summary = store.summary("mei", 1_699_999_000, 1_700_001_000)
    assert summary["seconds"] == 10
    assert summary["share"]["sad"] == pytest.approx(0.6) and summary["share"]["happy"] == pytest.approx(0.1)
    assert summary["care"]["message"] == {"shown": 1, "helpful": 1, "not_now": 0, "not_me": 0}
    assert summary["most_helpful"] == "message"
    timeline = store.timeline(session.id, "mei")
    assert [s["emotion"] for s in timeline["samples"]][:2] == ["sad", "sad"]
    assert timeline["care"][0]["feedback"] == "helpful"
    assert store.timeline(session.id, "someone-else") is None  # profiles see only their own


def test_export_round_trips_and_csv_matches(store, new_store):
    writer = HistoryWriter(store)
    session = HistorySession(profile="mei")
    record(writer, session, ["angry", "fear", "neutral"])
    writer.care(session, CareAction("breathing", "fear", "breathing-intro-01", 0.0, exercise_id="box"), 1_700_000_001)
    writer.flush()
    exported = store.export("mei")
    assert len(exported["sessions"]) == 1 and len(exported["samples"]) == 3 and len(exported["care_actions"]) == 1

    other = new_store()
    assert other.import_(exported) == 1
    again = other.export("mei")
    for key in ("sessions", "samples", "care_actions"):
        assert again[key] == exported[key]
    assert other.import_(exported) == 0  # importing twice adds nothing

    rows = list(csv.DictReader(io.StringIO(store.export_csv("mei"))))
    assert [r["emotion"] for r in rows] == ["angry", "fear", "neutral"]
    assert float(rows[0]["angry"]) == pytest.approx(0.8)


def files_of(db):
    """The database's bytes: the main file and its write-ahead log."""
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_delete_really_deletes(sqlite_store, db):
    store = sqlite_store
    writer = HistoryWriter(store)
    keep, gone = HistorySession(profile="keep-me"), HistorySession(profile="zebra-secret-profile")
    record(writer, keep, ["happy"] * 3)
    record(writer, gone, ["sad"] * 300)
    writer.flush()
    before = files_of(db)
    assert b"zebra-secret-profile" in before
    assert store.delete_profile("zebra-secret-profile") == 1
    assert store.export("zebra-secret-profile")["samples"] == []
    assert len(store.export("keep-me")["samples"]) == 3
    store.engine.dispose()
    after = files_of(db)
    assert b"zebra-secret-profile" not in after  # VACUUM: the bytes are gone from the files too
    assert len(after) < len(before)


def test_retention(store):
    writer = HistoryWriter(store)
    now = time.time()
    old, recent = HistorySession(profile="a"), HistorySession(profile="a")
    forever = HistorySession(profile="b")
    record(writer, old, ["sad"], start=now - 40 * 86400)
    record(writer, recent, ["sad"], start=now - 2 * 86400)
    record(writer, forever, ["sad"], start=now - 400 * 86400)
    writer.flush()
    store.set_retention("b", 0)
    assert store.retention_days("a") == 30 and store.retention_days("b") == 0
    assert store.purge(now) == 1
    assert [s["id"] for s in store.sessions_of("a")] == [recent.id]
    assert len(store.sessions_of("b")) == 1


def test_a_full_disk_keeps_the_data_for_later(sqlite_store, db):
    """SQLite's own "database or disk is full", provoked by capping the file's pages."""
    store = sqlite_store
    writer = HistoryWriter(store)
    session = HistorySession(profile="mei")
    record(writer, session, ["neutral"])
    writer.flush()
    with sqlite3.connect(db) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]

    def cap(dbapi_connection, _record):
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    from sqlalchemy import event

    store.engine.dispose()
    event.listen(store.engine, "connect", cap)
    record(writer, session, ["sad"] * 400, start=1_700_000_100)
    assert writer.flush() == 0 and writer.failures == 1  # failed, and kept
    event.remove(store.engine, "connect", cap)
    store.engine.dispose()
    assert writer.flush() == 400  # space again: everything is written, nothing lost
    assert len(store.export("mei")["samples"]) == 401


def test_many_sessions_at_once_lose_nothing(store):
    writer = HistoryWriter(store, flush_interval=0.05)
    flusher = threading.Thread(target=writer.run, daemon=True)
    flusher.start()
    errors = []

    start = time.time() - 3600  # within the retention, which the writer's purge applies as it runs

    def live(i):
        try:
            session = HistorySession(profile=f"p{i % 3}")
            for second in range(150):
                mood = EMOTIONS[second % 7]
                writer.sample(session, mood, 0.7, scores_for(mood, 0.7), start + second)
                if second % 25 == 0:
                    store.sessions_of(session.profile)  # readers at the same time
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=live, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert errors == [] and writer.failures == 0
    counts = store.counts()
    assert counts["sessions"] == 12 and counts["samples"] == 12 * 150


def test_one_bad_operation_does_not_poison_the_batch(store):
    """A row the database refuses (here a duplicate care id) is dropped alone; the rest lands."""
    writer = HistoryWriter(store)
    session = HistorySession(profile="mei")
    action = CareAction("message", "sad", "sad-01", 0.0)
    record(writer, session, ["sad"] * 3)
    writer.care(session, action, 1_700_000_001.0)
    writer.care(session, action, 1_700_000_002.0)  # the same id again: an IntegrityError
    record(writer, session, ["happy"] * 2, start=1_700_000_010.0)
    assert writer.flush() == 1 + 3 + 1 + 2 and writer.refused == 1
    exported = store.export("mei")
    assert len(exported["samples"]) == 5 and len(exported["care_actions"]) == 1
    record(writer, session, ["neutral"], start=1_700_000_020.0)
    assert writer.flush() == 1 and writer.failures == 0  # and the next flushes go on


def test_a_trimmed_backlog_keeps_the_session_rows(store):
    writer = HistoryWriter(store, max_backlog=50)
    session = HistorySession(profile="kai")
    record(writer, session, ["sad"] * 80)
    store.engine.dispose()
    with unwritable(store, "disk I/O error"):
        writer.flush()
    assert writer.flush() == 50
    exported = store.export("kai")
    assert len(exported["sessions"]) == 1 and len(exported["samples"]) == 49  # the newest ones
    assert exported["samples"][-1]["ts"] >= 1_700_000_079


def test_purge_keeps_a_session_that_is_still_going_on(store):
    writer = HistoryWriter(store)
    now = time.time()
    long_one = HistorySession(profile="a")
    record(writer, long_one, ["sad"], start=now - 31 * 86400)  # started 31 days ago…
    record(writer, long_one, ["happy"], start=now - 60)  # …and still live a minute ago
    writer.flush()
    assert store.purge(now) == 0 and len(store.sessions_of("a")) == 1


def test_delete_drops_late_writes_of_the_old_session(store):
    """A frame handler that still holds the deleted session must not bring it back."""
    writer = HistoryWriter(store)
    old, new = HistorySession(profile="mei"), HistorySession(profile="mei")
    record(writer, old, ["sad"] * 3)
    assert writer.delete_profile("mei", lambda: {old.id}) == 1
    assert store.sessions_of("mei") == []
    record(writer, old, ["sad"], start=1_700_000_100)  # late, for the deleted session
    record(writer, new, ["happy"], start=1_700_000_101)
    writer.flush()
    assert [s["id"] for s in store.sessions_of("mei")] == [new.id]
    assert len(store.export("mei")["samples"]) == 1 and writer.refused == 0  # dropped, not refused


def test_a_delete_that_cannot_flush_first_changes_nothing(store):
    writer = HistoryWriter(store)
    session = HistorySession(profile="mei")
    record(writer, session, ["sad"] * 3)
    writer.flush()
    record(writer, session, ["fear"] * 2, start=1_700_000_010)
    forgotten = []
    with unwritable(store), pytest.raises(sqlite3.OperationalError):
        writer.delete_profile("mei", lambda: forgotten.append(1) or {session.id})
    assert forgotten == [] and len(store.sessions_of("mei")) == 1  # nothing forgotten, nothing deleted
    assert writer.flush() == 2 and len(store.export("mei")["samples"]) == 5


def test_the_writer_says_when_it_fails_and_since_when(store):
    writer = HistoryWriter(store)
    session = HistorySession(profile="mei")
    assert writer.health()["ok"]
    with unwritable(store, "disk I/O error"):
        record(writer, session, ["sad"] * 3, start=time.time() - 10)
        before = time.time()
        assert writer.flush() == 0
        health = writer.health()
    assert not health["ok"] and health["failing_since"] >= before and "disk I/O error" in health["error"]
    assert health["waiting"] == 4  # the session row and three samples, kept
    assert writer.flush() == 4
    assert writer.health() == {"ok": True, "failing_since": None, "error": None, "waiting": 0}


def test_sessions_left_open_by_a_crash_are_closed_at_their_last_sample(store):
    writer = HistoryWriter(store)
    crashed, live, empty = HistorySession(profile="a"), HistorySession(profile="b"), HistorySession(profile="c")
    now = time.time()
    record(writer, crashed, ["sad"] * 5, start=now - 3600)  # samples at -3600 … -3596
    record(writer, live, ["sad"], start=now - 1)  # another process's session, still writing
    writer._open(empty, now - 600)  # opened, and nothing ever written into it
    writer.flush()
    assert store.close_dangling(idle_s=60, now=now) == 2
    [a], [b], [c] = store.sessions_of("a"), store.sessions_of("b"), store.sessions_of("c")
    assert a["ended_at"] == pytest.approx(now - 3596) and c["ended_at"] == pytest.approx(now - 600)
    assert b["ended_at"] is None


def test_delete_removes_every_row_of_the_profile(store):
    writer = HistoryWriter(store)
    keep, gone = HistorySession(profile="keep-me"), HistorySession(profile="gone")
    record(writer, keep, ["happy"] * 2)
    record(writer, gone, ["sad"] * 5)
    writer.care(gone, CareAction("message", "sad", "sad-01", 0.0), 1_700_000_002.0)
    writer.flush()
    store.set_retention("gone", 7)
    assert store.delete_profile("gone") == 1
    exported = store.export("gone")
    assert exported["sessions"] == exported["samples"] == exported["care_actions"] == []
    assert store.retention_days("gone") == 30  # its own choice went with it
    assert store.counts() == {"sessions": 1, "samples": 2, "care_actions": 0}


def legacy_database(url: str) -> None:
    """A history database as EmoCare's hand-rolled migrations left it: schema_version 1."""
    from sqlalchemy import create_engine, text

    from emocare.history.schema import care_actions, metadata, profiles, samples, sessions

    engine = create_engine(url)
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[profiles, sessions, samples, care_actions])
        conn.execute(text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO schema_version VALUES (1)"))
        conn.execute(sessions.insert().values(id="old-session", profile="mei", started_at=1_700_000_000.0))
        row = {"session_id": "old-session", "ts": 1_700_000_000.5, "emotion": "sad", "confidence": 0.8}
        conn.execute(samples.insert().values(**row, **scores_for("sad", 0.8)))
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_of_the_old_schema_is_taken_over_with_its_rows(backend, tmp_path, request):
    from sqlalchemy import inspect

    url = (
        f"sqlite:///{tmp_path / 'old.sqlite3'}"
        if backend == "sqlite"
        else fresh_database(request.getfixturevalue("postgres"))
    )
    legacy_database(url)
    store = HistoryStore(url)
    try:
        assert current_revision(store.engine) == head()
        tables = set(inspect(store.engine).get_table_names())
        assert "schema_version" not in tables and "preferences" in tables
        assert [s["id"] for s in store.sessions_of("mei")] == ["old-session"]
        assert len(store.export("mei")["samples"]) == 1
    finally:
        store.engine.dispose()


def test_processes_starting_at_once_migrate_one_postgresql_once(postgres):
    """Several servers start together on a new database: the advisory lock lets one create
    the schema while the others wait, and none fails on tables made under it."""
    import multiprocessing

    url = fresh_database(postgres)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        found = pool.map(_migrate, [url] * 4)
    assert found.count(None) == 1  # exactly one found the database empty and made the schema
    assert found.count(head()) == 3  # the others waited, and found it made


def _migrate(url: str) -> str | None:
    """In a process of its own, as a server at start: what the schema was before it migrated."""
    from emocare.history.schema import migrate
    from emocare.history.store import make_engine

    engine = make_engine(url)
    try:
        return migrate(engine)
    finally:
        engine.dispose()


def test_a_database_newer_than_this_code_is_refused(store):
    from sqlalchemy import text

    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(RuntimeError, match="newer than this EmoCare"):
        HistoryStore(store.url)
