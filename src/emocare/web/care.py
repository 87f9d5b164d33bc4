"""Care routes: the spoken replies and the person's own music, served by name."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, send_file

from . import services

bp = Blueprint("care", __name__, url_prefix="/care")


@bp.get("/audio/<name>")
def audio(name: str):
    """A rendered reply from the speech cache; names are content hashes, nothing else."""
    path = services(current_app).care.speech.cached(name)
    if path is None:
        abort(404)
    return send_file(path, mimetype="audio/wav", max_age=86400)


@bp.get("/music/<name>")
def user_music(name: str):
    """A clip the person added to the instance folder's music/ (listed in its manifest)."""
    path = services(current_app).care.music.user_file(name)
    if path is None:
        abort(404)
    return send_file(path, conditional=True)
