"""Security headers on every response: what a page may load, who may frame it, what it leaks.

The pages load only their own files (scripts, styles, the vendored socket.io client and
Chart.js, the music and the spoken replies) and talk only to their own server, so the policy
can be strict: no inline script or style, no other origin, and no framing by any site (a
framed camera page could be made to look like something else).

``'wasm-unsafe-eval'`` lets a page compile WebAssembly, which analysis on the device needs
(onnxruntime-web; docs/device.md); without it Chromium refuses the runtime ("CompileError:
WebAssembly.instantiate(): ... 'unsafe-eval' is not an allowed source"). It allows no
``eval`` of JavaScript: that would need ``'unsafe-eval'``, which stays out.

``CROSS_ORIGIN_ISOLATION`` (config) adds ``Cross-Origin-Embedder-Policy: require-corp``: with
the ``Cross-Origin-Opener-Policy: same-origin`` always sent, the page is then cross-origin
isolated, which is what lets onnxruntime-web run more than one wasm thread
(``SharedArrayBuffer``). It is off by default because it was measured not to pay: under load
two threads analysed a frame slower than one (docs/device.md, docs/security.md). Everything
the pages load is their own origin's, so ``require-corp`` refuses nothing of theirs; each
response also says ``Cross-Origin-Resource-Policy: same-origin``, so that no other site's
isolated page may embed ours.
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


#: Added with ``CROSS_ORIGIN_ISOLATION``.
ISOLATION_HEADERS = {
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def add_security_headers(response: Response, headers: dict[str, str] = HEADERS) -> Response:
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    headers = {**HEADERS, **ISOLATION_HEADERS} if app.config["CROSS_ORIGIN_ISOLATION"] else HEADERS
    app.after_request(lambda response: add_security_headers(response, headers))
