"""Security headers on every response: what a page may load, who may frame it, what it leaks.

The pages load only their own files (scripts, styles, the vendored socket.io client and
Chart.js, the music and the spoken replies) and talk only to their own server, so the policy
can be strict: no inline script or style, no other origin, and no framing by any site (a
framed camera page could be made to look like something else).

``'wasm-unsafe-eval'`` lets a page compile WebAssembly, which analysis on the device needs
(onnxruntime-web; docs/device.md); without it Chromium refuses the runtime ("CompileError:
WebAssembly.instantiate(): ... 'unsafe-eval' is not an allowed source"). It allows no
``eval`` of JavaScript: that would need ``'unsafe-eval'``, which stays out.
"""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def add_security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
