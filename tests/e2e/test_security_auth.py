"""API keys and roles through HTTP: who gets in, what each role may do and read."""

from __future__ import annotations

import json
import time

import pytest
from raystack import ADMIN_KEY, assert_problem, eventually, payment_body

from raypay.domain import auth
from raypay.tools import cli

pytestmark = pytest.mark.e2e

A_PAYMENT = "/v1/payments/pay_0000"


@pytest.fixture(scope="module")
def checkout_key(service) -> str:
    return service.create_key("checkout", label="e2e checkout")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer  x y",
        "Basic dXNlcjpwYXNz",
        f"Token {ADMIN_KEY}",
        "Bearer rpk_nope",
    ],
    ids=["none", "empty", "no-token", "two-tokens", "basic", "other-scheme", "unknown-key"],
)
async def test_without_a_valid_key_every_route_is_401(service, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    async with service.caller(None) as client:
        for method, path in [
            ("POST", "/v1/payments"),
            ("GET", A_PAYMENT),
            ("GET", "/v1/orders/ord_1/payments"),
            ("POST", "/v1/admin/orders"),
            ("GET", "/v1/no-such-route"),  # closed by default: nothing to probe
        ]:
            response = await client.request(method, path, headers=headers, json={})
            body = assert_problem(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert ADMIN_KEY not in response.text and "rpk_nope" not in body["detail"]


async def test_a_valid_key_gets_in_and_the_configured_admin_key_too(service, checkout_key):
    for key in (checkout_key, ADMIN_KEY):  # one stored in Redis, one in RAYPAY_API_KEYS
        async with service.caller(key) as client:
            assert_problem(await client.get(A_PAYMENT), 404, "payment_not_found")


async def test_a_checkout_key_pays_and_reads_its_payment(service, checkout_key):
    order = service.seed()
    async with service.caller(checkout_key) as client:
        created = await client.post("/v1/payments", json=payment_body(order))
        assert created.status_code == 201, created.text
        payment = created.json()
        fetched = await client.get(f"/v1/payments/{payment['paymentId']}")
        assert fetched.json() == payment
        mine = await client.get(
            f"/v1/payments/{payment['paymentId']}", params={"customerId": order["customerId"]}
        )
        assert mine.json() == payment
        theirs = await client.get(
            f"/v1/payments/{payment['paymentId']}", params={"customerId": "cus_someone_else"}
        )
        assert_problem(theirs, 404, "payment_not_found")


async def test_a_checkout_key_lists_an_orders_payments_only_for_its_customer(service, checkout_key):
    order = service.seed()
    assert (await service.pay(order)).status_code == 201
    path = f"/v1/orders/{order['orderId']}/payments"
    async with service.caller(checkout_key) as client:
        assert_problem(await client.get(path), 403, "forbidden")
        own = await client.get(path, params={"customerId": order["customerId"]})
        assert [p["status"] for p in own.json()["payments"]] == ["succeeded"]
        other = await client.get(path, params={"customerId": "cus_intruder"})
        unknown = await client.get(
            "/v1/orders/ord_unknown/payments", params={"customerId": order["customerId"]}
        )
    # Someone else's order looks exactly like an order that does not exist.
    assert assert_problem(other, 404, "order_not_found") == assert_problem(
        unknown, 404, "order_not_found"
    )
    # An admin key reads any order.
    listed = await service.http.get(path)
    assert [p["orderId"] for p in listed.json()["payments"]] == [order["orderId"]]


async def test_only_an_admin_key_seeds_orders(service, checkout_key):
    request = {"count": 2, "amount": "12.50", "currency": "EUR", "reservation": True}
    async with service.caller(checkout_key) as client:
        assert_problem(await client.post("/v1/admin/orders", json=request), 403, "forbidden")
        seeded = await service.http.post("/v1/admin/orders", json=request)
        assert seeded.status_code == 201, seeded.text
        orders = seeded.json()["orders"]
        assert len(orders) == 2 and all(o["reservationId"] for o in orders)
        paid = await client.post("/v1/payments", json=payment_body(orders[0]))
    assert paid.status_code == 201, paid.text
    assert (paid.json()["amount"], paid.json()["currency"]) == ("12.50", "EUR")
    invalid = await service.http.post("/v1/admin/orders", json={**request, "currency": "XYZ"})
    assert_problem(invalid, 422, "validation_error")


async def test_health_and_docs_are_open_and_readyz_details_need_a_key(service):
    async with service.caller(None) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        assert (await anonymous.get("/readyz")).json() == {"status": "ready"}
        bad = await anonymous.get("/readyz", headers={"Authorization": "Bearer rpk_nope"})
        assert bad.json() == {"status": "ready"}
        assert (await anonymous.get("/docs")).status_code == 200
        assert (await anonymous.get("/redoc")).status_code == 200
        schema = (await anonymous.get("/openapi.json")).json()
    detailed = (await service.http.get("/readyz")).json()
    assert detailed["status"] == "ready" and "redis" in detailed["checks"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_a_key_revoked_while_running_is_refused_within_the_cache_ttl(
    service, monkeypatch, capsys
):
    monkeypatch.setenv("RAYPAY_REDIS_URL", service.settings.redis_url)
    monkeypatch.setenv("RAYPAY_KEY_PREFIX", service.settings.key_prefix)
    assert cli.main(["keys", "create", "--role", "checkout", "--label", "to revoke"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["role"] == "checkout" and created["key"].startswith(auth.KEY_PREFIX)
    assert cli.main(["keys", "list"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"id": created["id"], "role": "checkout"}.items() <= next(
        row for row in listed if row["id"] == created["id"]
    ).items()
    assert all(created["key"] not in json.dumps(row) for row in listed)

    async with service.caller(created["key"]) as client:
        assert_problem(await client.get(A_PAYMENT), 404, "payment_not_found")  # it works
        assert cli.main(["keys", "revoke", created["id"]]) == 0
        revoked_at = time.monotonic()
        ttl = service.settings.api_key_cache_s
        refused = await eventually(
            lambda: client.get(A_PAYMENT), lambda r: r.status_code == 401, within=ttl + 2.0
        )
        assert_problem(refused, 401, "unauthorized")
        assert time.monotonic() - revoked_at <= ttl + 2.0
        # Stays refused: the replica does not fall back on what it knew.
        assert_problem(await client.get(A_PAYMENT), 401, "unauthorized")
    assert cli.main(["keys", "revoke", created["id"]]) == 2  # no such key any more
