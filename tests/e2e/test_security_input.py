"""Bad input through HTTP: refused clearly, charged never, stored nowhere, echoed never."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest
from raystack import ADMIN_KEY, assert_problem, eventually

from raypay.domain.cards import luhn_ok

pytestmark = pytest.mark.e2e


def card_number(rng: random.Random) -> str:
    """A random Luhn-valid 16-digit number: a new "card" every run, found nowhere before."""
    body = "4" + "".join(rng.choice("0123456789") for _ in range(14))
    return next(body + check for check in "0123456789" if luhn_ok(body + check))


def stored_text(service) -> str:
    """Every key and value under the test prefix in Redis, as one text to search."""
    r, parts = service.redis, []
    read = {
        "string": r.get,
        "hash": r.hgetall,
        "list": lambda key: r.lrange(key, 0, -1),
        "set": r.smembers,
        "zset": lambda key: r.zrange(key, 0, -1, withscores=True),
        "stream": r.xrange,
    }
    for key in r.scan_iter(match=f"{service.settings.key_prefix}:*", count=1000):
        parts.append(f"{key} {read.get(r.type(key), lambda _: '')(key)}")
    return "\n".join(parts)


def ray_logs(logs_dir: Path) -> bytes:
    """Everything this session's Ray processes logged, from the session's own log folder
    (``ray_local.logs_dir``; not /tmp/ray/session_latest: another Ray may own that)."""
    return b"".join(p.read_bytes() for p in sorted(logs_dir.rglob("*")) if p.is_file())


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("text/plain", 415), ("application/x-www-form-urlencoded", 415), (None, 415)],
)
async def test_a_body_that_is_not_declared_json_is_415(service, content_type, status):
    order = service.seed()
    headers = {"content-type": content_type} if content_type else {}
    body = (
        f'{{"orderId": "{order["orderId"]}", "customerId": "{order["customerId"]}", '
        f'"amount": "25.00", "currency": "USD", "paymentMethod": "pm_card_visa"}}'
    )
    response = await service.http.post("/v1/payments", content=body, headers=headers)
    assert_problem(response, status, "unsupported_media_type")
    assert service.charges(order["orderId"]) == 0
    with_charset = {"content-type": "application/json; charset=utf-8"}
    assert (
        await service.http.post("/v1/payments", content=body, headers=with_charset)
    ).status_code == 201


async def test_a_streamed_body_over_the_limit_is_413_without_a_declared_length(service):
    async def chunks():
        for _ in range(40):
            yield b" " * 1024

    response = await service.http.post(
        "/v1/payments", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"orderId": "o" * 65}, "orderId"),
        ({"orderId": "ord 1"}, "orderId"),
        ({"orderId": "ord/../1"}, "orderId"),
        ({"orderId": "-ord"}, "orderId"),
        ({"customerId": "cüs_1"}, "customerId"),
        ({"customerId": ""}, "customerId"),
        ({"customerId": "cus_1\n"}, "customerId"),
        ({"reservationId": "res;1"}, "reservationId"),
        ({"paymentMethod": "pm card"}, "paymentMethod"),
        ({"paymentMethod": "p" * 65}, "paymentMethod"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "USDX"}, "currency"),
        ({"amount": "1e3"}, "amount"),
        ({"amount": " 25.00"}, "amount"),
        ({"amount": "25_00"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": 25.001}, "amount"),
        ({"cardNumber": "x"}, "cardNumber"),
    ],
)
async def test_malformed_fields_are_422_naming_the_field_and_charge_nothing(service, change, field):
    order = service.seed()
    body = assert_problem(await service.pay(order, **change), 422, "validation_error")
    assert any(error["field"] == field for error in body["errors"]), body
    assert service.charges(order["orderId"]) == 0


async def test_amounts_up_to_the_cap_pass_and_beyond_it_are_422(service):
    cap = service.settings.max_amount
    at_cap = service.seed(amount=f"{cap:.2f}")
    assert (await service.pay(at_cap)).status_code == 201
    over = service.seed(amount=f"{cap + 1:.2f}")
    body = assert_problem(await service.pay(over), 422, "validation_error")
    assert body["errors"] == [
        {
            "field": "amount",
            "message": f"amount must be at most {cap} USD",
            "type": "amount_too_large",
        }
    ]
    assert service.charges(over["orderId"]) == 0
    yen = service.seed(amount="1500", currency="JPY")
    assert_problem(await service.pay(yen, amount="1500.5"), 422, "validation_error")


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "0.01"},
        {"amount": "2500"},
        {"currency": "EUR"},
        {"amount": "25", "currency": "JPY"},
    ],
    ids=["lower", "higher", "currency", "yen"],
)
async def test_a_tampered_amount_is_422_and_charges_nothing(service, change):
    order = service.seed(amount="25.00")
    assert_problem(await service.pay(order, **change), 422, "amount_mismatch")
    assert service.charges(order["orderId"]) == 0
    assert service.redis.llen(service.keys.order_payments(order["orderId"])) == 0
    assert (await service.pay(order)).status_code == 201  # the order itself is still payable


async def test_another_customers_order_is_404_and_leaves_no_record(service):
    order = service.seed()
    response = await service.pay(order, customerId="cus_intruder")
    body = assert_problem(response, 404, "order_not_found")
    unknown = assert_problem(
        await service.pay(order, orderId="ord_nope", customerId="cus_intruder"),
        404,
        "order_not_found",
    )
    # Nothing tells "exists, but not yours" from "no such order".
    assert body["title"] == unknown["title"]
    assert not list(service.redis.scan_iter(match=service.keys.order(order["orderId"]) + ":*"))
    assert service.charges(order["orderId"]) == 0


async def test_a_card_number_as_payment_method_is_refused_and_kept_nowhere(service, ray_local):
    rng = random.Random()
    number = card_number(rng)
    spaced = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    marker = str(uuid.uuid4())
    order = service.seed()
    for method in (number, spaced, spaced.replace(" ", "-"), f"pm_{number}", int(number)):
        response = await service.pay(
            order,
            paymentMethod=method,
            headers={"Idempotency-Key": uuid.uuid4().hex, "X-Request-ID": marker},
        )
        body = assert_problem(response, 422, "raw_card_number")
        assert body["errors"][0]["field"] == "paymentMethod"
        assert number not in response.text and number[-12:] not in response.text
    # Luhn-invalid digits are no card, but no token either: refused, and not echoed.
    not_luhn = number[:-1] + str((int(number[-1]) + 1) % 10)
    refused = await service.pay(order, paymentMethod=not_luhn)
    assert_problem(refused, 422, "validation_error")
    assert not_luhn not in refused.text
    # An unknown field is not a way around it either.
    sneaky = await service.pay(order, cardNumber=number)
    assert_problem(sneaky, 422, "validation_error")
    assert number not in sneaky.text

    assert service.charges(order["orderId"]) == 0
    stored = stored_text(service)
    assert number not in stored and spaced not in stored and number[-12:] not in stored
    # The requests above were logged (their request id shows up) but the number never was.
    logs = await eventually(
        lambda: ray_logs(ray_local.logs_dir), lambda text: marker.encode() in text, within=20
    )
    for form in (number, spaced, spaced.replace(" ", "-")):
        assert form.encode() not in logs
    assert ADMIN_KEY.encode() not in logs  # nor any API key


async def test_errors_are_problems_without_traces_or_hosts(service):
    responses = [
        await service.http.get("/v1/nowhere"),
        await service.http.delete("/v1/payments/pay_1"),
        await service.http.post(
            "/v1/payments", content=b'{"a": [', headers={"content-type": "application/json"}
        ),
        await service.http.post("/v1/payments", json=[1, 2, 3]),
        await service.http.get("/v1/payments/pay%20x"),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert {"type", "title", "status", "detail", "code"} <= response.json().keys()
        for leak in ("Traceback", "127.0.0.1", "localhost", "redis", 'File "'):
            assert leak not in response.text, (leak, response.text)
