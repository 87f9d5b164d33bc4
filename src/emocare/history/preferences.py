"""Care preferences in the history database, for servers that share one (``DATABASE_URL``).

One process keeps them in a JSON file per profile (:class:`~emocare.care.preferences.PreferenceStore`);
several processes, perhaps on several machines, share only the database, and a person's
feedback given on one must steer care on all. Same interface, same validation, same JSON.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from ..care.preferences import Preferences, checked_profile, from_json
from .schema import preferences

log = logging.getLogger(__name__)


class DatabasePreferenceStore:
    """``load``/``save``/``delete`` of :class:`Preferences` as one row a profile."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, profile: str) -> Preferences:
        query = select(preferences.c.data).where(preferences.c.profile == checked_profile(profile))
        try:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
            return from_json(json.loads(row[0])) if row else Preferences()
        except (SQLAlchemyError, ValueError, TypeError, AttributeError) as exc:
            # an unreachable database must not keep a page from starting: care starts fresh
            log.warning("preferences for %s unreadable (%s); starting fresh", profile, exc)
            return Preferences()

    def save(self, profile: str, prefs: Preferences) -> None:
        row = {
            "profile": checked_profile(profile),
            "data": json.dumps(asdict(prefs), sort_keys=True),
            "updated_at": time.time(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(preferences).where(preferences.c.profile == profile))
                conn.execute(insert(preferences).values(**row))
        except SQLAlchemyError:
            # as with a full disk for the files: the weights live on in this session's memory
            log.exception("could not save preferences for %s", profile)

    def delete(self, profile: str) -> None:
        """Forget what this profile's feedback taught (part of "delete all my data")."""
        with self.engine.begin() as conn:
            conn.execute(delete(preferences).where(preferences.c.profile == checked_profile(profile)))
