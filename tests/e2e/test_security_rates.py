"""Rate limits through HTTP: per API key and per customer, 429 with Retry-After, and
nobody else slowed down. The defaults are generous: duplicate storms pass (test_duplicates)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from raystack import assert_problem, eventually

pytestmark = pytest.mark.e2e


async def test_one_customer_flooding_is_limited_while_others_pay(service):
    settings = service.settings
    flood = 3 * settings.rate_limit_per_customer_burst
    flooder = {
        "customerId": f"cus_flood_{uuid.uuid4().hex[:8]}",
        "amount": "25.00",
        "currency": "USD",
    }
    bystander = service.seed()
    started = time.monotonic()
    *responses, paid = await asyncio.gather(
        *(
            service.pay({**flooder, "orderId": f"ord_{n}_{uuid.uuid4().hex[:6]}"})
            for n in range(flood)
        ),
        service.pay(bystander),
    )
    elapsed = time.monotonic() - started
    assert paid.status_code == 201, paid.text
    limited = [r for r in responses if r.status_code == 429]
    admitted = [r for r in responses if r.status_code == 404]  # unknown orders, admitted
    assert len(limited) + len(admitted) == flood
    allowed = settings.rate_limit_per_customer_burst + settings.rate_limit_per_customer * elapsed
    assert limited and len(admitted) <= allowed + 1, (len(admitted), allowed)
    body = assert_problem(limited[0], 429, "rate_limited")
    assert "customer" in body["detail"]
    retry_after = int(limited[0].headers["Retry-After"])
    assert 1 <= retry_after <= 60
    # After Retry-After the customer is let in again.
    again = {**flooder, "orderId": "ord_after"}
    await eventually(
        lambda: service.pay(again), lambda r: r.status_code == 404, within=retry_after + 3
    )


async def test_a_key_over_its_own_limit_gets_429_and_other_keys_do_not(service):
    slow = service.create_key("checkout", label="slow", rate=1, burst=2)
    async with service.caller(slow) as client:
        statuses = [(await client.get("/v1/payments/pay_1")).status_code for _ in range(3)]
        assert statuses[:2] == [404, 404]
        limited = await client.get("/v1/payments/pay_1")
        body = assert_problem(limited, 429, "rate_limited")
        assert "API key" in body["detail"] and limited.headers["Retry-After"] == "1"
        # Everyone else goes on; this key is let in again as its bucket refills.
        assert (await service.http.get("/v1/payments/pay_1")).status_code == 404
        await eventually(
            lambda: client.get("/v1/payments/pay_1"), lambda r: r.status_code == 404, within=3
        )


async def test_rejected_requests_do_not_use_up_a_customers_budget(service):
    order = service.seed()
    burst = service.settings.rate_limit_per_customer_burst
    invalid = await asyncio.gather(*(service.pay(order, amount="-1") for _ in range(burst + 20)))
    assert {r.status_code for r in invalid} == {422}
    assert (await service.pay(order)).status_code == 201
