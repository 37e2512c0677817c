"""Every row of DESIGN.md's status table, through HTTP on the real stack."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert (body["status"], body["code"]) == (status, code)
    return body


async def test_new_payment_succeeds_with_201_and_the_payment_object(service):
    order = service.seed(amount="42.50")
    response = await service.pay(order)
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["status"] == "succeeded"
    assert (payment["orderId"], payment["amount"], payment["currency"]) == (
        order["orderId"],
        "42.50",
        "USD",
    )
    assert payment["paymentId"].startswith("pay_") and payment["transactionId"]
    assert payment["isSimulated"] is True
    fetched = await service.http.get(f"/v1/payments/{payment['paymentId']}")
    assert fetched.json() == payment


async def test_paying_a_paid_order_replays_it_with_200(service):
    order = service.seed()
    first = (await service.pay(order)).json()
    again = await service.pay(order)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first
    assert service.charges(order["orderId"]) == 1


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("pm_card_chargeDeclined", "card_declined"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_declined_payment_is_402_with_the_failed_payment(service, token, code):
    order = service.seed()
    body = assert_problem(await service.pay(order, paymentMethod=token), 402, code)
    assert body["payment"]["status"] == "failed"
    assert body["payment"]["errorCode"] == code


async def test_unknown_order_is_404(service):
    order = service.seed()
    assert_problem(await service.pay(order, orderId="ord_nope"), 404, "order_not_found")


async def test_another_customers_order_is_404_and_creates_nothing(service):
    order = service.seed()
    assert_problem(await service.pay(order, customerId="cus_intruder"), 404, "order_not_found")
    listed = (await service.http.get(f"/v1/orders/{order['orderId']}/payments")).json()
    assert listed["payments"] == []
    assert service.charges(order["orderId"]) == 0


@pytest.mark.parametrize("whose", ["unknown", "other_customer", "other_order"])
async def test_unknown_or_foreign_reservation_is_404(service, whose):
    order = service.seed(reservation=True)
    if whose == "unknown":
        reservation_id = "res_nope"
    elif whose == "other_customer":
        reservation_id = service.seed(reservation=True)["reservationId"]
    else:
        other = service.seed(reservation=True, customer_id=order["customerId"])
        reservation_id = other["reservationId"]
    response = await service.pay(order, reservationId=reservation_id)
    assert_problem(response, 404, "reservation_not_found")


@pytest.mark.parametrize(
    "options",
    [{"reservation_ttl_s": -5}, {"reservation_status": "released"}],
    ids=["expired", "released"],
)
async def test_inactive_reservation_is_409(service, options):
    order = service.seed(reservation=True, **options)
    assert_problem(await service.pay(order), 409, "reservation_inactive")
    assert service.charges(order["orderId"]) == 0


async def test_active_reservation_is_accepted(service):
    order = service.seed(reservation=True)
    response = await service.pay(order)
    assert response.status_code == 201
    assert response.json()["reservationId"] == order["reservationId"]


@pytest.mark.parametrize("status", ["cancelled", "expired"])
async def test_order_not_payable_is_409(service, status):
    order = service.seed(status=status)
    assert_problem(await service.pay(order), 409, "order_not_payable")


@pytest.mark.parametrize(
    "change", [{"amount": "25.01"}, {"currency": "EUR"}], ids=["amount", "currency"]
)
async def test_amount_or_currency_differing_from_the_order_is_422(service, change):
    order = service.seed(amount="25.00")
    assert_problem(await service.pay(order, **change), 422, "amount_mismatch")
    assert service.charges(order["orderId"]) == 0


async def test_body_that_is_not_json_is_400(service):
    response = await service.http.post(
        "/v1/payments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "invalid_json")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "-1"}, "amount"),
        ({"amount": "1.001"}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"orderId": None}, "orderId"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(service, change, field):
    order = service.seed()
    body = assert_problem(await service.pay(order, **change), 422, "validation_error")
    assert any(error["field"] == field for error in body["errors"]), body


async def test_same_idempotency_key_with_another_body_is_422(service):
    order = service.seed()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert (await service.pay(order, headers=key)).status_code == 201
    other = service.seed()
    assert_problem(await service.pay(other, headers=key), 422, "idempotency_key_reused")
    assert service.charges(other["orderId"]) == 0


async def test_same_idempotency_key_and_body_replays_a_decline(service):
    order = service.seed()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await service.pay(order, headers=key, paymentMethod="pm_card_chargeDeclined")
    again = await service.pay(order, headers=key, paymentMethod="pm_card_chargeDeclined")
    assert (first.status_code, again.status_code) == (402, 402)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert service.charges(order["orderId"]) == 1


async def test_body_too_large_is_413(service):
    response = await service.http.post(
        "/v1/payments",
        content=b"{" + b" " * 20_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_gateway_unavailable_is_503_with_retry_after(service):
    order = service.seed()
    response = await service.pay(order, paymentMethod="pm_card_error")
    assert_problem(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) >= 1


async def test_unknown_payment_is_404(service):
    response = await service.http.get("/v1/payments/pay_nope")
    assert_problem(response, 404, "payment_not_found")


async def test_health_and_docs(service):
    assert (await service.http.get("/healthz")).json() == {"status": "ok"}
    ready = (await service.http.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert {"redis", "broker", "outbox", "shards", "gateways"} <= ready["checks"].keys()
    schema = (await service.http.get("/openapi.json")).json()
    assert "/v1/payments" in schema["paths"]
    assert (await service.http.get("/docs")).status_code == 200
