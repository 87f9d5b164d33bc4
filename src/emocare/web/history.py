"""History pages: timeline and summaries, export, delete, retention.

The person is known only by the random profile id their browser keeps (the HttpOnly cookie
the server issued, :mod:`.profile`); nothing here needs an account. A browser without one
sees an empty history.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, url_for

from . import profile as profile_cookie
from . import services

log = logging.getLogger(__name__)

bp = Blueprint("history", __name__, url_prefix="/history")

DAY = 86400
RETENTION_CHOICES = (7, 30, 90, 365, 0)


def current_profile() -> str:
    """This browser's profile id; "" (which no history has) when it has none yet."""
    return profile_cookie.current_profile() or ""


@bp.before_request
def same_origin_only():
    """The history's POST forms change data: refuse them when another site submits them.

    Browsers say where a request comes from (``Sec-Fetch-Site``, ``Origin``); a page on
    another site must not be able to delete someone's history or shorten its retention. The
    forms carry a CSRF token too, for clients that say neither.
    """
    if request.method != "POST":
        return
    profile_cookie.check_csrf()
    if profile_cookie.sent_by_another_site():
        abort(403)
    origin = request.headers.get("Origin")
    if origin == "null" and request.headers.get("Sec-Fetch-Site") == "same-origin":
        return  # our own form under Referrer-Policy: no-referrer, which hides the origin
    if origin is not None and urlsplit(origin).netloc != request.host:
        abort(403)


def _local_time(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")


def _store():
    writer = services(current_app).history
    writer.flush()  # show what the live page sent a moment ago, too
    return writer.store


@bp.get("/")
def index():
    store, profile = _store(), current_profile()
    health = services(current_app).history.health()
    now = time.time()
    midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    return render_template(
        "history.html",
        profile=profile,
        today=store.summary(profile, midnight, now),
        week=store.summary(profile, now - 7 * DAY, now),
        sessions=store.sessions_of(profile)[:50],
        retention=store.retention_days(profile),
        retention_choices=RETENTION_CHOICES,
        deleted=request.args.get("deleted"),
        health=health,
        failing_since=_local_time(health["failing_since"]),
        refused=request.args.get("refused"),
    )


@bp.get("/sessions/<session_id>.json")
def session_json(session_id: str):
    timeline = _store().timeline(session_id, current_profile())
    if timeline is None:
        abort(404)
    return jsonify(timeline)


@bp.get("/export.json")
def export_json():
    profile = current_profile()
    data = _store().export(profile)
    care = services(current_app).live.care
    if care is not None:  # kept with the care preferences, exported with the history
        data["calibration"] = care.store.load(profile).baseline
    body = json.dumps(data, ensure_ascii=False, indent=1)
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="emocare-history-{profile}.json"'},
    )


@bp.get("/export.csv")
def export_csv():
    profile = current_profile()
    return Response(
        _store().export_csv(profile),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="emocare-history-{profile}.csv"'},
    )


@bp.post("/delete")
def delete_all():
    """Delete all of this profile's history and learned preferences, for real."""
    if request.form.get("confirm") != "yes":
        abort(400)
    profile = current_profile()
    svc = services(current_app)
    try:
        # what is queued is written first, so nothing deleted can come back after the delete
        svc.live.forget_profile(profile)
    except Exception:
        log.exception("delete refused: the queued history could not be written first")
        return redirect(url_for("history.index", refused=1))
    return redirect(url_for("history.index", deleted=1))


@bp.post("/retention")
def set_retention():
    try:
        days = int(request.form.get("days", ""))
    except ValueError:
        abort(400)
    if days not in RETENTION_CHOICES:
        abort(400)
    store = _store()
    store.set_retention(current_profile(), days)
    store.purge()
    return redirect(url_for("history.index"))
