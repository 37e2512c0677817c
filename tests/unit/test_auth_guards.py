"""Input guards (raypay.domain.cards, the body model, the problem table) and the ingress's trust
wiring (deployments.security) on an in-process ASGI app with fakeredis: no Ray, no network."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import fakeredis
import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from deployments import problems
from deployments.models import PaymentBody
from deployments.security import Admission, AdmissionConfig, Checkout, is_json_media_type
from raypay import bootstrap
from raypay.adapters import key_store
from raypay.domain import auth
from raypay.domain.auth import Principal, Role
from raypay.domain.cards import looks_like_card_number, luhn_ok, redact_card_numbers
from raypay.domain.errors import InvalidRequest, RateLimited
from raypay.domain.model import check_amount_cap
from raypay.domain.money import Money
from raypay.settings import Settings

pytestmark = pytest.mark.unit

VISA = "4242424242424242"


class TestCardNumbers:
    @pytest.mark.parametrize(
        "number",
        [VISA, "378282246310005", "6011111111111117", "5555555555554444", "4000056655665556"],
    )
    def test_test_cards_pass_luhn(self, number):
        assert luhn_ok(number) and not luhn_ok(number[:-1] + str((int(number[-1]) + 1) % 10))

    @pytest.mark.parametrize(
        "text",
        [
            VISA,
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "pm_4242424242424242",
            "card:4242424242424242;",
            "0000" + VISA,  # hidden in a longer run
            "1" * 70,  # no token has that many digits
        ],
    )
    def test_what_looks_like_a_card_number(self, text):
        assert looks_like_card_number(text)

    @pytest.mark.parametrize(
        "text",
        [
            "pm_card_visa",
            "4242424242424241",
            "424242424242",
            "4242  4242 4242 4242",
            "ord_2026_11_26",
            "",
        ],
    )
    def test_what_does_not(self, text):
        assert not looks_like_card_number(text)

    def test_redaction_masks_card_numbers_only(self):
        text = f"bad {VISA} and 4242-4242-4242-4242, order 12345"
        assert redact_card_numbers(text) == "bad [redacted] and [redacted], order 12345"
        assert redact_card_numbers("no digits") == "no digits"


class TestLimits:
    def test_the_amount_cap_is_in_major_units_of_the_currency(self):
        check_amount_cap(Money.parse("100000.00", "USD"), Decimal(100_000))
        with pytest.raises(InvalidRequest) as caught:
            check_amount_cap(Money.parse("100000.01", "USD"), Decimal(100_000))
        assert caught.value.code == "validation_error" and caught.value.status == 422
        assert caught.value.extra["errors"][0]["field"] == "amount"

    def test_a_currency_can_have_its_own_cap(self):
        yen = Money.parse("5000000", "JPY")
        check_amount_cap(yen, Decimal(100_000), {"JPY": Decimal(15_000_000)})
        with pytest.raises(InvalidRequest):
            check_amount_cap(yen, Decimal(100_000))

    @pytest.mark.parametrize(
        ("value", "ok"),
        [
            ("application/json", True),
            ("Application/JSON; charset=utf-8", True),
            ("text/plain", False),
            ("application/json-patch+json", False),
            ("", False),
            (None, False),
        ],
    )
    def test_json_media_types(self, value, ok):
        assert is_json_media_type(value) is ok


BODY = {
    "orderId": "ord_1",
    "customerId": "cus_1",
    "amount": "25.00",
    "currency": "USD",
    "paymentMethod": "pm_card_visa",
}


class TestPaymentBody:
    @pytest.mark.parametrize("method", [VISA, "4242 4242 4242 4242", int(VISA), "pm_" + VISA])
    def test_a_card_number_is_refused_as_such_before_any_other_check(self, method):
        with pytest.raises(ValidationError) as caught:
            PaymentBody.model_validate({**BODY, "paymentMethod": method})
        assert [e["type"] for e in caught.value.errors()] == ["raw_card_number"]

    @pytest.mark.parametrize("amount", ["1e3", " 25.00", "25_00", "+25", "25.", ".5", "0x10"])
    def test_amount_text_must_be_a_plain_decimal(self, amount):
        with pytest.raises(ValidationError):
            PaymentBody.model_validate({**BODY, "amount": amount})

    @pytest.mark.parametrize("method", ["1234", "_pm", "pm card", "pm_" + "x" * 62])
    def test_tokens_start_with_a_letter_and_are_short(self, method):
        with pytest.raises(ValidationError):
            PaymentBody.model_validate({**BODY, "paymentMethod": method})


# --- the wiring, on an in-process app ------------------------------------------------------

ADMIN_KEY = auth.new_key()


def build(settings: Settings, redis: Any) -> FastAPI:
    api = FastAPI()
    problems.install(api)
    api.add_middleware(Admission)
    api.state.admission = AdmissionConfig(
        bootstrap.keyring(settings, redis),
        settings.max_body_bytes,
        {"/v1/refund-batches": settings.max_batch_body_bytes},
    )
    limiter = bootstrap.rate_limiter(settings, redis)

    @api.post("/v1/refund-batches")
    async def batch(body: dict) -> dict:
        return {"size": len(body["orderIds"])}

    @api.post("/v1/payments")
    async def pay(body: PaymentBody, principal: Checkout) -> dict:
        await limiter.admit(principal, body.customer_id)
        return {"role": principal.role}

    @api.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return api


@pytest.fixture
def settings() -> Settings:
    return Settings(
        key_prefix="u",
        api_keys=f"{auth.hash_key(ADMIN_KEY)}:admin",
        max_body_bytes=1_000,
        max_batch_body_bytes=500_000,
        rate_limit_per_customer=1,
        rate_limit_per_customer_burst=3,
    )


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
async def redis(server) -> Any:
    client = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def client(settings, redis) -> Any:
    transport = httpx.ASGITransport(app=build(settings, redis))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestAdmission:
    async def test_a_refund_batch_has_its_own_larger_body_limit(self, client):
        ten_thousand = {"orderIds": [f"ord_{n:032d}" for n in range(10_000)]}  # ~400 KB
        accepted = await client.post(
            "/v1/refund-batches", json=ten_thousand, headers=bearer(ADMIN_KEY)
        )
        assert accepted.status_code == 200 and accepted.json() == {"size": 10_000}
        refused = await client.post("/v1/payments", json=ten_thousand, headers=bearer(ADMIN_KEY))
        assert (refused.status_code, refused.json()["code"]) == (413, "payload_too_large")

    async def test_no_key_is_401_and_health_is_open(self, client):
        response = await client.post("/v1/payments", json=BODY)
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert (await client.get("/healthz")).status_code == 200

    async def test_a_configured_key_gets_in(self, client):
        response = await client.post("/v1/payments", json=BODY, headers=bearer(ADMIN_KEY))
        assert response.json() == {"role": "admin"}

    async def test_a_key_stored_in_redis_gets_in_until_revoked(self, settings, redis, server):
        settings.api_key_cache_s = 0.0  # no caching: a revocation shows at once
        sync = fakeredis.FakeRedis(server=server, decode_responses=True)
        key, digest = key_store.create_key(sync, "u", "checkout")
        transport = httpx.ASGITransport(app=build(settings, redis))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            ok = await http.post("/v1/payments", json=BODY, headers=bearer(key))
            assert ok.json() == {"role": "checkout"}
            key_store.revoke_key(sync, "u", digest)
            gone = await http.post("/v1/payments", json=BODY, headers=bearer(key))
            assert gone.status_code == 401

    @pytest.mark.parametrize(
        ("headers", "content", "status", "code"),
        [
            ({"content-type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
            ({}, b"{}", 415, "unsupported_media_type"),
            ({"content-type": "application/json"}, b" " * 1_001, 413, "payload_too_large"),
            (
                {"content-type": "application/json", "content-length": "x"},
                b"{}",
                413,
                "payload_too_large",
            ),
            ({"content-type": "application/json"}, b"\xff\xfe", 400, "invalid_json"),
        ],
    )
    async def test_body_rules(self, client, headers, content, status, code):
        headers = {**headers, **bearer(ADMIN_KEY)}
        response = await client.post("/v1/payments", content=content, headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code)

    async def test_a_streamed_body_is_counted_too(self, client):
        async def chunks():
            for _ in range(5):
                yield b" " * 300

        headers = {"content-type": "application/json", **bearer(ADMIN_KEY)}
        response = await client.post("/v1/payments", content=chunks(), headers=headers)
        assert response.status_code == 413

    async def test_card_numbers_are_never_echoed_even_in_field_names(self, client):
        body = {**BODY, "paymentMethod": "4242 4242 4242 4242", VISA: 1}
        response = await client.post("/v1/payments", json=body, headers=bearer(ADMIN_KEY))
        assert response.status_code == 422 and response.json()["code"] == "raw_card_number"
        assert VISA not in response.text and "4242 4242" not in response.text


class TestRateLimiter:
    async def test_a_customer_gets_its_burst_then_429_with_retry_after(self, client):
        headers = bearer(ADMIN_KEY)
        statuses = [
            (await client.post("/v1/payments", json=BODY, headers=headers)).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        limited = await client.post("/v1/payments", json=BODY, headers=headers)
        assert limited.json()["code"] == "rate_limited" and limited.headers["retry-after"] == "1"
        other = await client.post(
            "/v1/payments", json={**BODY, "customerId": "cus_2"}, headers=headers
        )
        assert other.status_code == 200

    async def test_a_key_with_its_own_rate_refills_over_time(self, settings, redis):
        limiter = bootstrap.rate_limiter(settings, redis)
        slow = Principal("slow", Role.CHECKOUT, rate=20, burst=1)
        await limiter.admit(slow)
        with pytest.raises(RateLimited) as caught:
            await limiter.admit(slow)
        assert caught.value.retry_after_s == 1
        await asyncio.sleep(0.06)  # 20/s: a token every 50 ms
        await limiter.admit(slow)

    async def test_nothing_is_taken_when_one_bucket_is_empty(self, settings, redis):
        limiter = bootstrap.rate_limiter(settings, redis)
        key = Principal("k", Role.CHECKOUT, rate=1, burst=5)
        for _ in range(3):
            await limiter.admit(key, "cus_x")
        with pytest.raises(RateLimited, match="customer"):
            await limiter.admit(key, "cus_x")
        # The refused call took nothing from the key's bucket: two tokens are left.
        await limiter.admit(key)
        await limiter.admit(key)
        with pytest.raises(RateLimited, match="API key"):
            await limiter.admit(key)

    async def test_limits_can_be_turned_off(self, redis):
        settings = Settings(key_prefix="u", rate_limit_per_key=0, rate_limit_per_customer=0)
        limiter = bootstrap.rate_limiter(settings, redis)
        for _ in range(50):
            await limiter.admit(Principal("k", Role.CHECKOUT), "cus_1")
        assert await redis.keys("*") == []
