"""Page routes: the live page, the help page and a health check."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, render_template

from ..care import content
from . import services, status_payload

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    return render_template("index.html", analysis=current_app.config["ANALYSIS"])


@bp.get("/help")
def help_page():
    """Where to reach a person. Linked from every page, whatever the model says."""
    disclaimer, lines = content.helplines(g.lang)
    return render_template("help.html", disclaimer=disclaimer, helplines=lines)


@bp.get("/healthz")
def healthz():
    """For scripts, monitors and tests: is the server up, is the model warm, is the history
    being written (``history.ok``; when not, since when and why), how many live sessions does
    this process hold (how a cluster is balanced), and how many of them are counted as analysed
    on their device (their own, larger cap: docs/deploy.md)? Answers 200 while it serves."""
    svc = services(current_app)
    counts = svc.live.counts()
    return jsonify(
        {
            **status_payload(current_app),
            "history": svc.history.health(),
            "sessions": sum(counts.values()),
            "device_sessions": counts["device"],
        }
    )
