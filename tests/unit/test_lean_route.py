"""The lean payment route (deployments/lean_route.py) answers exactly as the FastAPI route
it stands in for: the same app twice, lean on and off, the same requests, the same answers."""

from __future__ import annotations

from typing import Any

import fakeredis
import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from deployments import problems
from deployments.lean_route import LeanPaymentRoute
from deployments.models import IdempotencyKey, PaymentBody, RequestId
from deployments.security import Admission, AdmissionConfig, Checkout
from raypay import bootstrap
from raypay.domain import auth
from raypay.settings import Settings

pytestmark = pytest.mark.unit

KEY = auth.new_key()
BODY = {
    "orderId": "ord_1",
    "customerId": "cus_1",
    "amount": "25.00",
    "currency": "USD",
    "paymentMethod": "pm_card_visa",
}


class EchoIngress:
    """Stands in for PaymentIngress.pay_http: says what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def pay_http(self, body: PaymentBody, principal, key, request_id) -> JSONResponse:
        self.calls.append((body, principal.role, key, request_id))
        content = {"body": body.model_dump(mode="json"), "key": key, "requestId": request_id}
        return JSONResponse(content, 201)


def build(lean: bool, ingress: EchoIngress) -> FastAPI:
    settings = Settings(key_prefix="l", api_keys=f"{auth.hash_key(KEY)}:checkout")
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    api = FastAPI()
    problems.install(api)
    api.add_middleware(LeanPaymentRoute)
    api.add_middleware(Admission)
    api.state.admission = AdmissionConfig(bootstrap.keyring(settings, redis), 16_384)
    api.state.lean_payments = ingress if lean else None

    @api.post("/v1/payments", status_code=201)
    async def pay(
        body: PaymentBody,
        principal: Checkout,
        idempotency_key: IdempotencyKey = None,
        request_id: RequestId = None,
    ) -> Any:
        return await ingress.pay_http(body, principal, idempotency_key, request_id)

    return api


async def both(content: bytes | None, headers: dict[str, str]) -> list[httpx.Response]:
    answers = []
    for lean in (True, False):
        transport = httpx.ASGITransport(app=build(lean, EchoIngress()))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            answers.append(await http.post("/v1/payments", content=content, headers=headers))
    return answers


HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
CASES = {
    "valid": (BODY, {}),
    "with keys": (BODY, {"Idempotency-Key": "k-1", "X-Request-ID": "req-1"}),
    "missing field": ({k: v for k, v in BODY.items() if k != "orderId"}, {}),
    "unknown field": ({**BODY, "extra": 1}, {}),
    "zero amount": ({**BODY, "amount": "0.00"}, {}),
    "float amount": ({**BODY, "amount": 25.5}, {}),
    "three decimals": ({**BODY, "amount": "25.001"}, {}),
    "exponent": ({**BODY, "amount": "1e3"}, {}),
    "lowercase currency": ({**BODY, "currency": "usd"}, {}),
    "card number": ({**BODY, "paymentMethod": "4242 4242 4242 4242"}, {}),
    "card number as int": ({**BODY, "paymentMethod": 4242424242424242}, {}),
    "long id": ({**BODY, "orderId": "o" * 65}, {}),
    "not an object": ([BODY], {}),
    "null": (None, {}),
    "key too long": (BODY, {"Idempotency-Key": "k" * 256}),
    "key with a space": (BODY, {"Idempotency-Key": "a b"}),
    "request id too long": (BODY, {"X-Request-ID": "r" * 129}),
    "request id and body both bad": ({**BODY, "currency": "XXX"}, {"X-Request-ID": "a b"}),
}


@pytest.mark.parametrize("case", CASES)
async def test_the_same_answer_as_the_fastapi_route(case):
    import json

    body, extra = CASES[case]
    lean, routed = await both(json.dumps(body).encode(), {**HEADERS, **extra})
    assert (lean.status_code, lean.json()) == (routed.status_code, routed.json())


@pytest.mark.parametrize(
    "content", [b"", b"{", b"\xff\xfe{}", b'{"orderId": NaN}', b"[1, 2", b'"text"']
)
async def test_bodies_that_are_no_json_object_get_the_same_answer(content):
    lean, routed = await both(content, HEADERS)
    assert (lean.status_code, lean.json()) == (routed.status_code, routed.json())
    assert lean.status_code in (400, 422)


async def test_a_valid_request_reaches_the_ingress_with_its_headers():
    ingress = EchoIngress()
    transport = httpx.ASGITransport(app=build(True, ingress))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        headers = {**HEADERS, "Idempotency-Key": "k-1", "X-Request-ID": "req-1"}
        response = await http.post("/v1/payments", json=BODY, headers=headers)
    assert response.status_code == 201
    [(body, role, key, request_id)] = ingress.calls
    assert (body.order_id, role, key, request_id) == ("ord_1", "checkout", "k-1", "req-1")


async def test_other_routes_and_methods_go_on_to_fastapi():
    ingress = EchoIngress()
    transport = httpx.ASGITransport(app=build(True, ingress))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        response = await http.get("/v1/payments", headers=HEADERS)
    assert response.status_code == 405 and ingress.calls == []
