"""The profile cookie and the CSRF token of the history forms.

A profile id is the only key to a person's mood history (there are no accounts), so the
server issues it, and scripts never see it: an HttpOnly, ``SameSite=Strict`` cookie (Secure
over HTTPS). The page asks for it (``POST /profile``) before it opens its Socket.IO
connection; the connection's handshake carries it, so the live session knows whose history
it writes without the page ever sending an id.

``SameSite=Strict`` means a page reached from a link on another site arrives without the
cookie; that request must not be taken for a new visitor (issuing a new id would orphan the
person's history), so only ``POST /profile`` from this origin issues one, and it keeps a valid
id it is sent.

The history forms also carry a CSRF token: an HMAC of the profile id under the app's secret
key, so it needs no server-side state and is different for every profile.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Blueprint, Flask, Response, abort, current_app, request

from ..care.preferences import PROFILE_RE

COOKIE = "emocare_profile"
MAX_AGE_S = 365 * 86400

bp = Blueprint("profile", __name__)


def from_cookies(cookies) -> str | None:
    """The request's profile id, or None when it has none (or a malformed one)."""
    profile = cookies.get(COOKIE)
    return profile if profile and PROFILE_RE.match(profile) else None


def current_profile() -> str | None:
    return from_cookies(request.cookies)


def new_profile_id() -> str:
    """Random and unguessable: 96 bits, the same form the page used to make itself."""
    return "p-" + secrets.token_hex(12)


def sent_by_another_site() -> bool:
    """The browser says (``Sec-Fetch-Site``) that another site's page sent this request; a
    client that says nothing is not taken for one."""
    site = request.headers.get("Sec-Fetch-Site")
    return site is not None and site not in ("same-origin", "none")


@bp.post("/profile")
def issue():
    """Issue this browser's profile cookie, or renew the one it has (made HttpOnly if a page of
    an older version wrote it from JavaScript). Another site's page may not ask."""
    if sent_by_another_site():
        abort(403)
    profile = current_profile() or new_profile_id()
    response = Response(status=204)
    response.set_cookie(
        COOKIE,
        profile,
        max_age=MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def csrf_token() -> str:
    """The token the history forms carry for this request's profile ("" without one)."""
    profile = current_profile()
    if profile is None:
        return ""
    key = current_app.config["SECRET_KEY"]
    key = key.encode() if isinstance(key, str) else key
    return hmac.new(key, b"csrf:" + profile.encode(), hashlib.sha256).hexdigest()[:32]


def check_csrf() -> None:
    """Abort with 403 unless the submitted form carries this profile's token."""
    expected = csrf_token()
    sent = request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(403)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals["csrf_token"] = csrf_token
