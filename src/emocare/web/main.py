"""Page routes: the live page and a health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from . import status_payload

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/healthz")
def healthz():
    """For scripts and tests: is the server up, and is the model warm?"""
    return jsonify(status_payload(current_app))
