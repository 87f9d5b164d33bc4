"""Interface strings in zh-CN and en, kept in JSON files beside this module.

The language comes from ``?lang=`` (remembered in a cookie), then the cookie, then the
browser's Accept-Language. Templates call ``t("key")``; the page's script gets the same
table as JSON so that the strings it writes at run time are translated too.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flask import Flask, current_app, g, request

TRANSLATIONS = Path(__file__).with_name("translations")
COOKIE = "emocare_lang"


@lru_cache(maxsize=8)
def load(lang: str) -> dict[str, str]:
    return json.loads((TRANSLATIONS / f"{lang}.json").read_text(encoding="utf-8"))


def pick_language() -> str:
    supported = current_app.config["LANGUAGES"]
    for candidate in (request.args.get("lang"), request.cookies.get(COOKIE)):
        if candidate in supported:
            return candidate
    best = request.accept_languages.best_match((*supported, "zh"))
    if best == "zh":
        return "zh-CN"
    return best or current_app.config["DEFAULT_LANGUAGE"]


def translate(key: str, **values) -> str:
    """The string for ``key`` in the current language, falling back to English, then the key."""
    text = load(g.lang).get(key) or load("en").get(key) or key
    return text.format(**values) if values else text


def init_app(app: Flask) -> None:
    @app.before_request
    def _choose_language():
        g.lang = pick_language()

    @app.after_request
    def _remember_language(response):
        chosen = request.args.get("lang")
        if chosen in app.config["LANGUAGES"]:
            response.set_cookie(COOKIE, chosen, max_age=365 * 24 * 3600, samesite="Lax")
        return response

    @app.context_processor
    def _inject():
        lang = getattr(g, "lang", app.config["DEFAULT_LANGUAGE"])
        strings = {**load("en"), **load(lang)}
        return {"t": translate, "lang": lang, "strings": strings, "languages": app.config["LANGUAGES"]}
