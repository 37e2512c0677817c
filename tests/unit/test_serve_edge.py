"""What reaches the app, and how it is refused: the edge in front of Serve's own header
reading (deployments/edge.py) and an undeclared method's 405 (deployments/security.py),
on in-process ASGI apps: no Ray, no network."""

from __future__ import annotations

import importlib
from typing import Any

import fakeredis
import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from deployments import problems
from deployments.edge import ServeEdge, middlewares
from deployments.security import Admission, AdmissionConfig, Checkout
from raypay import bootstrap
from raypay.domain import auth
from raypay.settings import Settings
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


# --- 405 with Allow, on the app's own middleware -------------------------------------------

KEY = auth.new_key()


@pytest.fixture
async def app() -> Any:
    settings = Settings(key_prefix="u", api_keys=f"{auth.hash_key(KEY)}:admin")
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    api = FastAPI()
    problems.install(api)
    api.add_middleware(Admission)
    keyring = bootstrap.keyring(settings, redis)
    api.state.admission = AdmissionConfig(keyring, settings.max_body_bytes)

    @api.post("/v1/payments")
    async def pay(principal: Checkout) -> dict:
        return {}

    @api.get("/v1/payments/{paymentId}")
    async def get(paymentId: str, principal: Checkout) -> dict:  # noqa: N803
        return {}

    @api.get("/healthz")
    async def healthz() -> dict:
        return {}

    yield api
    await redis.aclose()


BEARER = {"Authorization": f"Bearer {KEY}"}


class TestUndeclaredMethods:
    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("PUT", "/v1/payments/pay_1", "GET"),
            ("PATCH", "/v1/payments/pay_1", "GET"),
            ("DELETE", "/v1/payments", "POST"),
            ("PUT", "/healthz", "GET"),
        ],
    )
    async def test_a_known_path_answers_405_with_allow_whatever_the_body(
        self, app, method, path, allow
    ):
        async with client(app) as http:
            response = await http.request(method, path, headers=BEARER)
        assert (response.status_code, response.headers.get("allow")) == (405, allow)
        assert response.headers["content-type"] == problems.PROBLEM_JSON
        assert response.json()["code"] == "method_not_allowed"

    async def test_an_unknown_path_is_404_not_415(self, app):
        async with client(app) as http:
            response = await http.patch("/nowhere", headers=BEARER, content=b"x")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")

    async def test_the_key_is_still_checked_first_and_a_route_still_wants_json(self, app):
        async with client(app) as http:
            anonymous = await http.put("/v1/payments/pay_1")
            not_json = await http.post("/v1/payments", headers=BEARER, content=b"x")
        assert anonymous.status_code == 401
        assert (not_json.status_code, not_json.json()["code"]) == (415, "unsupported_media_type")
