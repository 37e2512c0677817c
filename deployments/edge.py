"""Serve's HTTP edge: the request headers Ray Serve reads itself, checked before it does.

Serve's HTTP server (its proxy, or with the fast ingress each replica's own server behind
HAProxy) reads a few headers before the app sees the request, and decodes them as UTF-8:
one byte it cannot decode (latin-1 ``é`` in X-Request-ID) was a plain-text 500 that no
handler of the app could turn into a problem. And some of them steer Serve itself
(``x-request-timeout-seconds: 0.001`` was a plain-text 408), which is no client's to
choose. ``ServeEdge`` is the outermost layer of that server, installed through Serve's
HTTP proxy callback (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=deployments.edge:
middlewares``, set by ``raypay up``, the tests and the Dockerfile):

* X-Request-ID must be what the contract says (visible ASCII, 1-128 characters, sent
  once), else 422 ``validation_error``, the problem the app gives for it, on every path
  and before the API key is looked at (like a malformed request uvicorn refuses);
* Serve's own per-request controls (its timeout, disconnect, multiplexing and session
  headers) are removed: raypay's deadlines are its settings, and it routes by orderId.

Serve decodes ``traceparent`` and ``tracestate`` only when tracing is configured, which
raypay does not do; they pass untouched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from starlette.middleware import Middleware

from deployments.models import REQUEST_ID_MAX_LENGTH, VISIBLE_ASCII
from deployments.problems import problem, problem_response

REQUEST_ID = b"x-request-id"
# Header names as Serve compares them: lower case, "-" and "_" alike.
SERVE_CONTROLS = frozenset(
    {
        "x_request_timeout_seconds",
        "x_request_disconnect_disabled",
        "serve_multiplexed_model_id",
        os.environ.get("RAY_SERVE_SESSION_ID_HEADER_KEY", "x-session-id").lower().replace("-", "_"),
    }
)


def is_serve_control(name: bytes) -> bool:
    return name.decode("latin-1").lower().replace("-", "_") in SERVE_CONTROLS


def request_id_error(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why the request's X-Request-ID is refused, or None (absent or well-formed)."""
    values = [value for name, value in headers if name.lower() == REQUEST_ID]
    if len(values) > 1:
        return "send X-Request-ID once"
    text = values[0].decode("latin-1") if values else None
    if text is not None and not (
        re.fullmatch(VISIBLE_ASCII, text) and len(text) <= REQUEST_ID_MAX_LENGTH
    ):
        return f"must be 1 to {REQUEST_ID_MAX_LENGTH} visible ASCII characters"
    return None


def refusal(message: str) -> Any:
    """The app's own answer to a malformed X-Request-ID (deployments/problems.py)."""
    field = {"field": "header.X-Request-ID", "message": message, "type": "request_id"}
    body = problem(
        422,
        "validation_error",
        "Request body is invalid",
        f"header.X-Request-ID: {message}",
        errors=[field],
    )
    return problem_response(body)


class ServeEdge:
    """ASGI middleware around Serve's own HTTP handling (see the module docstring)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = [(n, v) for n, v in scope["headers"] if not is_serve_control(n)]
            error = request_id_error(headers)
            if error is not None:
                if scope["type"] == "http":
                    return await refusal(error)(scope, receive, send)
                headers = [(n, v) for n, v in headers if n.lower() != REQUEST_ID]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def middlewares() -> list[Middleware]:
    """Serve's HTTP proxy callback: the middlewares it puts around its HTTP handling."""
    return [Middleware(ServeEdge)]
