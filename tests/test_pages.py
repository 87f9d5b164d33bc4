"""Page routes: the live page and the help page in both languages, and the health check."""

import json
import re
from pathlib import Path

import pytest

from .conftest import close_app, make_app


def test_pages_in_both_languages(app, client):
    english = client.get("/?lang=en")
    assert english.status_code == 200
    assert b"Start camera" in english.data
    assert "emocare_lang=en" in english.headers["Set-Cookie"]
    chinese = app.test_client().get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "开启摄像头" in chinese.get_data(as_text=True)
    assert b"vendor/socket.io.min.js" in english.data
    assert b"cdn" not in english.data.lower()
    # the cookie remembers the choice over the browser's language
    again = client.get("/", headers={"Accept-Language": "zh-CN"})
    assert b"Start camera" in again.data


def test_healthz(client):
    status = client.get("/healthz").get_json()
    assert status["state"] == "ready" and status["backend"] == "emocare"


def test_help_page_is_linked_and_localised(client):
    page = client.get("/?lang=en").get_data(as_text=True)
    assert 'href="/help"' in page
    english = client.get("/help?lang=en").get_data(as_text=True)
    assert "988" in english and "116 123" in english and "not a medical service" in english
    chinese = client.get("/help?lang=zh-CN").get_data(as_text=True)
    assert "12356" in chinese and "找人聊聊" in chinese


@pytest.mark.parametrize("path", ["/", "/help", "/history/", "/healthz", "/static/js/app.js", "/nowhere"])
def test_every_response_says_what_the_browser_may_do(client, path):
    """No framing by another site, no sniffing, no referrer, the camera for this origin only,
    and no script or style from anywhere but this server (and none inline, and no eval)."""
    with client.get(path) as response:  # a static file is streamed: close it
        headers = response.headers
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["frame-ancestors"] == "'none'"
    # WebAssembly may be compiled (analysis on the device), JavaScript never evaluated
    assert policy["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert policy["style-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "camera=(self)" in headers["Permissions-Policy"]


def test_the_pages_hold_no_inline_script_or_style(client):
    for path in ("/", "/help", "/history/"):
        html = client.get(path).text
        assert " style=" not in html and " onsubmit=" not in html and " onclick=" not in html
        for tag in html.split("<script")[1:]:
            opening = tag.split(">", 1)[0]
            assert "src=" in opening or 'type="application/json"' in opening, f"inline script on {path}"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:5000", "[::1]:5000", "LOCALHOST"])
def test_local_names_are_served(client, host):
    assert client.get("/healthz", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/history/export.json", "/socket.io/?EIO=4&transport=polling"])
def test_a_foreign_host_is_refused_even_with_a_matching_origin(client, path):
    """DNS rebinding: another site's name in Host and Origin alike."""
    foreign = {"Host": "rebind.attacker.example", "Origin": "http://rebind.attacker.example"}
    answer = client.get(path, headers=foreign)
    assert answer.status_code == 400 and "TRUSTED_HOSTS" in answer.text


def test_trusted_hosts_are_configurable_with_subdomains(tmp_path):
    from emocare.web.hosts import host_is_trusted

    app = make_app(tmp_path, TRUSTED_HOSTS=[".care.example.org"])
    try:
        client = app.test_client()
        assert client.get("/healthz", headers={"Host": "room-3.care.example.org"}).status_code == 200
        assert client.get("/healthz", headers={"Host": "care.example.org.evil"}).status_code == 400
    finally:
        close_app(app)
    assert not host_is_trusted("localhost.evil", ["localhost"])


def test_the_server_issues_the_profile_cookie_httponly(client):
    first = client.post("/profile", headers={"Sec-Fetch-Site": "same-origin"})
    assert first.status_code == 204
    cookie = first.headers["Set-Cookie"]
    assert re.match(r"emocare_profile=p-[0-9a-f]{24};", cookie)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP on localhost; over HTTPS it is Secure
    profile = cookie.split(";")[0].split("=")[1]
    again = client.post("/profile")  # renewed, never replaced: the history stays the person's
    assert again.headers["Set-Cookie"].startswith(f"emocare_profile={profile};")
    assert client.post("/profile", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/profile").status_code == 405
    secure = client.post("/profile", base_url="https://localhost")
    assert "Secure" in secure.headers["Set-Cookie"]


def test_a_page_of_an_older_version_keeps_its_profile(client):
    client.set_cookie("emocare_profile", "p-0123456789abcdef01234567")  # written by its script
    answer = client.post("/profile")
    assert answer.headers["Set-Cookie"].startswith("emocare_profile=p-0123456789abcdef01234567;")
    assert "HttpOnly" in answer.headers["Set-Cookie"]
    client.set_cookie("emocare_profile", "../../etc")  # malformed: a new one
    assert re.match(r"emocare_profile=p-[0-9a-f]{24};", client.post("/profile").headers["Set-Cookie"])


def test_every_interface_string_is_in_both_languages():
    """The page's strings (the relaxed-face step and what "not how I feel" taught among them)
    exist in English and in Chinese, and the Chinese ones are written in Chinese."""
    folder = Path(__file__).resolve().parents[1] / "src" / "emocare" / "web" / "translations"
    en = json.loads((folder / "en.json").read_text(encoding="utf-8"))
    zh = json.loads((folder / "zh-CN.json").read_text(encoding="utf-8"))
    assert set(en) == set(zh)
    for key in [k for k in en if k.startswith(("learned.", "care.felt", "calib."))]:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh[key]), f"{key} is not in Chinese: {zh[key]!r}"
        assert en[key].count("{emotion}") == (1 if key in ("learned.a_little", "learned.more") else 0)
