"""What reaches the app, and how it is refused: the edge in front of Serve's own header
reading (deployments/edge.py), on in-process ASGI apps: no Ray, no network."""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse

from deployments import problems
from deployments.edge import ServeEdge, middlewares
from raypay.tools.launch import EDGE_ENV

from .test_compose import dockerfile_env

pytestmark = pytest.mark.unit

CALLBACK = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"


async def serve_like(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads X-Request-ID as Serve's HTTP server does (UTF-8), then echoes the headers."""
    headers = dict(scope["headers"])
    request_id = headers.get(b"x-request-id", b"").decode("utf-8")
    body = {"requestId": request_id, "headers": sorted(n.decode() for n in headers)}
    await JSONResponse(body)(scope, receive, send)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


class TestServeEdge:
    @pytest.mark.parametrize(
        "value",
        [b"caf\xe9", "café".encode(), b"\xd7\xf8\xc2\x9b", b"x" * 129, b"a b", b""],
        ids=["latin-1", "utf-8", "fuzzer's bytes", "too long", "space", "empty"],
    )
    async def test_a_malformed_request_id_is_a_422_problem_before_serve_reads_it(self, value):
        async with client(ServeEdge(serve_like)) as http:
            response = await http.get("/v1/payments/pay_1", headers=[(b"x-request-id", value)])
        assert response.status_code == 422
        assert response.headers["content-type"] == problems.PROBLEM_JSON
        body = response.json()
        assert body["code"] == "validation_error"
        assert body["errors"][0]["field"] == "header.X-Request-ID"

    async def test_without_the_edge_serve_fails_on_such_a_byte(self):
        with pytest.raises(UnicodeDecodeError):  # what was a plain-text 500
            async with client(serve_like) as http:
                await http.get("/", headers=[(b"x-request-id", b"caf\xe9")])

    async def test_a_well_formed_request_id_passes_and_one_is_not_required(self):
        async with client(ServeEdge(serve_like)) as http:
            sent = await http.get("/", headers={"X-Request-ID": "r" * 128})
            none = await http.get("/")
        assert sent.json()["requestId"] == "r" * 128
        assert none.status_code == 200 and none.json()["requestId"] == ""

    async def test_the_request_id_is_sent_once(self):
        headers = [(b"x-request-id", b"a"), (b"x-request-id", b"b")]
        async with client(ServeEdge(serve_like)) as http:
            response = await http.get("/", headers=headers)
        assert response.status_code == 422

    @pytest.mark.parametrize(
        "name",
        [
            "x-request-timeout-seconds",
            "X-Request-Disconnect-Disabled",
            "serve_multiplexed_model_id",
            "Serve-Multiplexed-Model-Id",
            "x-session-id",
        ],
    )
    async def test_serves_own_controls_are_no_clients_to_set(self, name):
        async with client(ServeEdge(serve_like)) as http:
            response = await http.get("/", headers=[(name.encode(), b"\xe9 0.001")])
        assert response.status_code == 200
        assert name.lower() not in response.json()["headers"]
        assert "user-agent" in response.json()["headers"]  # the others pass

    def test_serve_finds_the_edge_where_the_stack_and_the_image_say(self):
        for path in (EDGE_ENV[CALLBACK], dockerfile_env()[CALLBACK]):
            module, _, name = path.partition(":")
            callback = getattr(importlib.import_module(module), name)
            assert [m.cls for m in callback()] == [ServeEdge]
        assert [m.cls for m in middlewares()] == [ServeEdge]
