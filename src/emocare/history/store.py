"""The mood history store: SQLAlchemy over SQLite (or any URL), no Flask.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed batch survives a ``kill -9``
of the server (the log is in the OS's hands once written), readers never block the writer, and
a busy timeout absorbs short contention instead of raising "database is locked". Writes come in
batches from :class:`~.writer.HistoryWriter`; everything else here reads, exports or deletes.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, case, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from ..vision.types import EMOTIONS
from .schema import care_actions, migrate, preferences, profiles, samples, sessions

log = logging.getLogger(__name__)

DAY = 86400.0


@dataclass
class Sample:
    session_id: str
    ts: float
    emotion: str
    confidence: float
    scores: dict[str, float]

    def row(self) -> dict:
        return {
            "session_id": self.session_id,
            "ts": self.ts,
            "emotion": self.emotion,
            "confidence": self.confidence,
            **{name: float(self.scores.get(name, 0.0)) for name in EMOTIONS},
        }


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class HistoryStore:
    def __init__(self, url: str, default_retention_days: int | None = 30) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.default_retention_days = default_retention_days
        try:
            migrate(self.engine)
        except BaseException:
            self.engine.dispose()  # its pooled connection would be left to the garbage collector
            raise

    # --- writing (called by the writer, in batches) -----------------------------------------

    def write_batch(self, operations: Iterable[tuple[str, dict]]) -> int:
        """Apply queued operations in one transaction; returns how many were refused.

        An operation the database refuses for what it holds (a duplicate id, a malformed
        row) must not hold back the good ones: the batch is then replayed one operation per
        transaction and the bad ones are logged and dropped. Trouble with the database
        itself (``OperationalError``: a full disk, a lock, a lost server) is raised, so the
        caller keeps the whole batch and tries again later.
        """
        operations = list(operations)
        try:
            with self.engine.begin() as conn:
                for kind, data in operations:
                    self._apply(conn, kind, data)
            return 0
        except OperationalError:
            raise
        except Exception as exc:
            log.warning("a history batch was refused (%s); writing it one operation at a time", exc)
        refused = 0
        for kind, data in operations:
            try:
                with self.engine.begin() as conn:
                    self._apply(conn, kind, data)
            except OperationalError:
                raise
            except Exception as exc:
                refused += 1
                log.error("dropping a history %s operation the database refuses: %s", kind, exc)
        return refused

    @staticmethod
    def _apply(conn: Connection, kind: str, data: dict) -> None:
        if kind == "session":
            exists = conn.execute(select(sessions.c.id).where(sessions.c.id == data["id"])).first()
            if not exists:
                conn.execute(insert(sessions).values(**data))
        elif kind == "end":
            conn.execute(update(sessions).where(sessions.c.id == data["id"]).values(ended_at=data["ended_at"]))
        elif kind == "sample":
            conn.execute(insert(samples).values(**data))
        elif kind == "care":
            conn.execute(insert(care_actions).values(**data))
        elif kind == "feedback":
            conn.execute(
                update(care_actions)
                .where(care_actions.c.id == data["id"])
                .values(feedback=data["feedback"], feedback_ts=data["feedback_ts"])
            )
        else:  # pragma: no cover - a programming error, not bad input
            raise ValueError(f"unknown history operation {kind!r}")

    # --- reading ----------------------------------------------------------------------------

    def sessions_of(self, profile: str, since: float | None = None) -> list[dict]:
        """Sessions with their sample counts, newest first."""
        counts = (
            select(samples.c.session_id, func.count().label("n"), func.max(samples.c.ts).label("last"))
            .group_by(samples.c.session_id)
            .subquery()
        )
        query = (
            select(sessions, counts.c.n, counts.c.last)
            .join(counts, counts.c.session_id == sessions.c.id, isouter=True)
            .where(sessions.c.profile == profile)
            .order_by(sessions.c.started_at.desc())
        )
        if since is not None:
            query = query.where(sessions.c.started_at >= since)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def timeline(self, session_id: str, profile: str) -> dict | None:
        """One session's samples and care actions, for its chart."""
        with self.engine.connect() as conn:
            session = conn.execute(
                select(sessions).where(sessions.c.id == session_id, sessions.c.profile == profile)
            ).first()
            if session is None:
                return None
            rows = conn.execute(select(samples).where(samples.c.session_id == session_id).order_by(samples.c.ts))
            care = conn.execute(
                select(care_actions).where(care_actions.c.session_id == session_id).order_by(care_actions.c.ts)
            )
            return {
                "session": dict(session._mapping),
                "samples": [dict(r._mapping) for r in rows],
                "care": [dict(r._mapping) for r in care],
            }

    def summary(self, profile: str, since: float, until: float | None = None) -> dict:
        """Share of time in each emotion, and how each kind of care was received, in a period."""
        until = until or time.time()
        owned = select(sessions.c.id).where(sessions.c.profile == profile)
        with self.engine.connect() as conn:
            shares = conn.execute(
                select(samples.c.emotion, func.count())
                .where(samples.c.session_id.in_(owned), samples.c.ts >= since, samples.c.ts < until)
                .group_by(samples.c.emotion)
            ).all()
            care = conn.execute(
                select(care_actions.c.kind, care_actions.c.feedback, func.count())
                .where(care_actions.c.session_id.in_(owned), care_actions.c.ts >= since, care_actions.c.ts < until)
                .group_by(care_actions.c.kind, care_actions.c.feedback)
            ).all()
        total = sum(n for _, n in shares)
        kinds: dict[str, dict] = {}
        for kind, feedback, n in care:
            entry = kinds.setdefault(kind, {"shown": 0, "helpful": 0, "not_now": 0, "not_me": 0})
            entry["shown"] += n
            if feedback in entry:
                entry[feedback] += n
        ranked = sorted(kinds.items(), key=lambda kv: (kv[1]["helpful"], -kv[1]["not_now"]), reverse=True)
        return {
            "since": since,
            "until": until,
            "seconds": total,  # one sample is one second at most
            "share": {name: round(dict(shares).get(name, 0) / total, 4) if total else 0.0 for name in EMOTIONS},
            "care": dict(ranked),
            "most_helpful": next((k for k, v in ranked if v["helpful"]), None),
        }

    # --- your data --------------------------------------------------------------------------

    def export(self, profile: str) -> dict:
        """Everything stored for ``profile``, as plain data (the JSON export)."""
        with self.engine.connect() as conn:
            owned = select(sessions.c.id).where(sessions.c.profile == profile)
            return {
                "format": "emocare-history",
                "version": 1,
                "profile": profile,
                "exported_at": time.time(),
                "sessions": [
                    dict(r._mapping)
                    for r in conn.execute(
                        select(sessions).where(sessions.c.profile == profile).order_by(sessions.c.started_at)
                    )
                ],
                "samples": [
                    {k: v for k, v in r._mapping.items() if k != "id"}
                    for r in conn.execute(
                        select(samples).where(samples.c.session_id.in_(owned)).order_by(samples.c.ts, samples.c.id)
                    )
                ],
                "care_actions": [
                    dict(r._mapping)
                    for r in conn.execute(
                        select(care_actions).where(care_actions.c.session_id.in_(owned)).order_by(care_actions.c.ts)
                    )
                ],
            }

    def import_(self, data: dict) -> int:
        """Load an export back (sessions already present are skipped); returns sessions added."""
        if data.get("format") != "emocare-history":
            raise ValueError("not an EmoCare history export")
        added = 0
        with self.engine.begin() as conn:
            for row in data["sessions"]:
                if conn.execute(select(sessions.c.id).where(sessions.c.id == row["id"])).first():
                    continue
                added += 1
                conn.execute(insert(sessions).values(**row))
                conn.execute(insert(samples), [s for s in data["samples"] if s["session_id"] == row["id"]] or [])
                care = [c for c in data["care_actions"] if c["session_id"] == row["id"]]
                if care:
                    conn.execute(insert(care_actions), care)
        return added

    def export_csv(self, profile: str) -> str:
        """The samples as CSV, one row per second, with ISO times (what a spreadsheet wants)."""
        data = self.export(profile)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["session_id", "time_utc", "ts", "emotion", "confidence", *EMOTIONS])
        for s in data["samples"]:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s["ts"]))
            scores = (f"{s[name]:.4f}" for name in EMOTIONS)
            writer.writerow([s["session_id"], stamp, f"{s['ts']:.3f}", s["emotion"], f"{s['confidence']:.4f}", *scores])
        return out.getvalue()

    def delete_profile(self, profile: str) -> int:
        """Really delete everything of ``profile``, then VACUUM so the bytes leave the file."""
        with self.engine.begin() as conn:
            owned = select(sessions.c.id).where(sessions.c.profile == profile)
            conn.execute(delete(care_actions).where(care_actions.c.session_id.in_(owned)))
            conn.execute(delete(samples).where(samples.c.session_id.in_(owned)))
            removed = conn.execute(delete(sessions).where(sessions.c.profile == profile)).rowcount
            conn.execute(delete(profiles).where(profiles.c.profile == profile))
            conn.execute(delete(preferences).where(preferences.c.profile == profile))
        self.vacuum()
        return removed

    def close_dangling(self, idle_s: float = 0.0, now: float | None = None) -> int:
        """End the sessions a crash left open (``kill -9``, power loss) at their last sample.

        Only sessions with no sample or care card in the last ``idle_s`` seconds. One process
        (the default) owns every session, so at its start none is live and all are closed; where
        several processes share the database, a grace of a minute leaves the others' live
        sessions (which write every second) alone. Returns the sessions closed.
        """
        now = time.time() if now is None else now
        last_sample = select(func.max(samples.c.ts)).where(samples.c.session_id == sessions.c.id)
        last_care = select(func.max(care_actions.c.ts)).where(care_actions.c.session_id == sessions.c.id)
        last_sample, last_care = last_sample.scalar_subquery(), last_care.scalar_subquery()
        later = case((last_care > last_sample, last_care), else_=func.coalesce(last_sample, last_care))
        last = func.coalesce(later, sessions.c.started_at)  # portable: no two-argument max()
        with self.engine.begin() as conn:
            closed = conn.execute(
                update(sessions).where(sessions.c.ended_at.is_(None), last < now - idle_s).values(ended_at=last)
            ).rowcount
        if closed:
            log.info("closed %d history sessions left open by an earlier stop", closed)
        return closed

    def vacuum(self) -> None:
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- retention --------------------------------------------------------------------------

    def retention_days(self, profile: str) -> int | None:
        """Days of history kept for ``profile``; 0 or None: forever."""
        with self.engine.connect() as conn:
            row = conn.execute(select(profiles.c.retention_days).where(profiles.c.profile == profile)).first()
        return row[0] if row and row[0] is not None else self.default_retention_days

    def set_retention(self, profile: str, days: int | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(profiles).where(profiles.c.profile == profile))
            conn.execute(insert(profiles).values(profile=profile, retention_days=days))

    def purge(self, now: float | None = None) -> int:
        """Delete sessions older than their profile's retention; returns sessions removed."""
        now = now or time.time()
        removed = 0
        with self.engine.begin() as conn:
            chosen = dict(conn.execute(select(profiles.c.profile, profiles.c.retention_days)).all())
            for (profile,) in conn.execute(select(sessions.c.profile).distinct()).all():
                days = chosen.get(profile)
                days = self.default_retention_days if days is None else days
                if not days:  # 0 or None: keep forever
                    continue
                cutoff = now - days * DAY
                recent = select(samples.c.session_id).where(samples.c.ts >= cutoff)
                expired = (
                    sessions.c.profile == profile,
                    sessions.c.started_at < cutoff,
                    sessions.c.id.not_in(recent),  # a session still going on keeps its start
                )
                old = select(sessions.c.id).where(*expired)
                conn.execute(delete(care_actions).where(care_actions.c.session_id.in_(old)))
                conn.execute(delete(samples).where(samples.c.session_id.in_(old)))
                removed += conn.execute(delete(sessions).where(*expired)).rowcount
        return removed

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in (sessions, samples, care_actions)
            }
