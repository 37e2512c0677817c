"""Property-based fuzzing of POST /v1/payments through HTTP on the real stack.

Hypothesis generates the requests: bodies built from seeded orders with up to three
fields replaced by something else (near misses, other orders' values, any text, any
JSON) or dropped, unknown fields, raw card numbers, bodies that are no object or no
JSON at all, other content types, Idempotency-Keys. They are sent in concurrent
batches. Every answer must be a documented status of the app's own OpenAPI schema,
never a 5xx, and valid against it (a payment, or a problem with a stable code); a card
number is never echoed; and only requests that were answered with a payment (201, or
402 for a decline) left a payment record or a charge behind.

The tokens that make the simulator fail on purpose (pm_card_error: 503,
pm_card_timeout: a held charge) are not generated: their 503 is the contract.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from raystack import PROBLEM_JSON

from deployments.models import ID_PATTERN, TOKEN_PATTERN, PaymentOut, Problem
from raypay.adapters.gateway_sim import DECLINES
from raypay.domain import errors
from raypay.domain.cards import looks_like_card_number, luhn_ok
from raypay.domain.money import _EXPONENTS

pytestmark = pytest.mark.e2e

EXAMPLES, BATCH = 2_000, 50
FIELDS = ("orderId", "customerId", "amount", "currency", "paymentMethod", "reservationId")
TOKENS = [
    "pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_chargeDeclinedOnce", *DECLINES,
]  # fmt: skip
CODES = (
    {cls.code for cls in vars(errors).values() if isinstance(cls, type) and hasattr(cls, "code")}
    | {code for code, _ in DECLINES.values()}
    | {"invalid_json"}
)


@dataclass
class Case:
    body: Any  # what was meant to be sent (for the report), or raw bytes
    content: bytes
    headers: dict[str, str]
    card: str | None = None
    response: Any = field(default=None, repr=False)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)


@st.composite
def card_numbers(draw: Any) -> str:
    digits = draw(st.from_regex(r"[3-6][0-9]{11,17}", fullmatch=True))
    number = next(digits + check for check in "0123456789" if luhn_ok(digits + check))
    separator = draw(st.sampled_from(["", " ", "-"]))
    grouped = separator.join(number[i : i + 4] for i in range(0, len(number), 4))
    return draw(st.sampled_from([grouped, f"pm_{number}", f"tok{number}x"]))


ANYTHING = st.one_of(ANY_TEXT, JSON_VALUES)
# Near misses per field, built once (building regex strategies per draw is slow).
NEAR = {
    "orderId": st.from_regex(ID_PATTERN, fullmatch=True),
    "customerId": st.from_regex(ID_PATTERN, fullmatch=True),
    "reservationId": st.from_regex(ID_PATTERN, fullmatch=True),
    "currency": st.sampled_from(sorted(_EXPONENTS))
    | st.from_regex(r"[A-Za-z]{0,4}", fullmatch=True),
    "paymentMethod": st.sampled_from(TOKENS)
    | st.from_regex(TOKEN_PATTERN, fullmatch=True)
    | card_numbers(),
    "amount": st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.from_regex(r"-?[0-9]{0,30}(\.[0-9]{0,30})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
        st.integers(),
        st.floats(),
        st.sampled_from(["25", "25.0", "25.000", "1500.0", "1.25", "1e3", " 1", "Infinity", "-0"]),
    ),
}


MUTATED = st.sets(st.sampled_from(FIELDS), max_size=3)
ONE_IN = {n: st.integers(0, n - 1) for n in (5, 10, 20)}
UNKNOWN_FIELDS = st.dictionaries(ANY_TEXT, JSON_VALUES, min_size=1, max_size=2)
CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 12
    + ["application/json; charset=utf-8", "text/plain", "", "application/xml"]
)
IDEMPOTENCY_KEYS = st.from_regex(r"[\x21-\x7e]{1,40}", fullmatch=True)


def cases(orders: list[dict[str, str]]) -> st.SearchStrategy[Case]:
    """A request built on a seeded order; strategies are built once (per draw is slow)."""
    any_order, tokens = st.sampled_from(orders), st.sampled_from(TOKENS)
    wrong = {  # near misses, other orders' values, anything
        name: st.one_of(
            NEAR[name], any_order.map(lambda o, n=name: o.get(n, o["orderId"])), ANYTHING
        )
        for name in FIELDS
    }

    @st.composite
    def case(draw: Any) -> Case:
        order = draw(any_order)
        body: Any = {
            "orderId": order["orderId"],
            "customerId": order["customerId"],
            "amount": order["amount"],
            "currency": order["currency"],
            "paymentMethod": draw(tokens),
        }
        if "reservationId" in order:
            body["reservationId"] = order["reservationId"]
        for name in draw(MUTATED):
            if draw(ONE_IN[5]) == 0:
                body.pop(name, None)
            else:
                body[name] = draw(wrong[name])
        if draw(ONE_IN[10]) == 0:
            body.update(draw(UNKNOWN_FIELDS))
        shape = draw(ONE_IN[20])
        if shape == 0:
            body = draw(JSON_VALUES)
        content = json.dumps(body).encode()
        if shape == 1:
            content = draw(st.binary(max_size=120) | st.just(content[: len(content) // 2]))
            body = content
        content_type = draw(CONTENT_TYPES)
        headers = {"content-type": content_type} if content_type else {}
        if draw(ONE_IN[5]) == 0:
            headers["Idempotency-Key"] = draw(IDEMPOTENCY_KEYS)
        method = body.get("paymentMethod") if isinstance(body, dict) else None
        card = method if isinstance(method, str) and looks_like_card_number(method) else None
        return Case(body, content, headers, card)

    return case()


def generate(orders: list[dict[str, str]], count: int) -> list[Case]:
    found: list[Case] = []

    @settings(
        max_examples=count, phases=[Phase.generate], database=None, deadline=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(cases(orders))
    def collect(case: Case) -> None:
        found.append(case)

    collect()
    return found


def seed_orders(service) -> list[dict[str, str]]:
    orders = []
    for n in range(60):
        orders.append(service.seed(amount="25.00", reservation=n % 3 == 0))
        orders.append(service.seed(amount="1500", currency="JPY"))
    orders += [service.seed(amount="1.250", currency="KWD") for _ in range(20)]
    orders += [service.seed(status="cancelled") for _ in range(5)]
    orders += [service.seed(reservation=True, reservation_ttl_s=-5) for _ in range(5)]
    return orders


def payment_records(service) -> set[str]:
    return set(
        service.redis.scan_iter(match=f"{service.settings.key_prefix}:*:payment:*", count=1000)
    )


def check(case: Case, documented: set[str]) -> None:
    response = case.response
    assert response.status_code < 500, (case.body, response.status_code, response.text)
    assert str(response.status_code) in documented, (case.body, response.status_code)
    if response.status_code in (200, 201):
        payment = PaymentOut.model_validate(response.json())
        assert payment.order_id == case.body["orderId"] and payment.status == "succeeded"
        return
    assert response.headers["content-type"].startswith(PROBLEM_JSON), (case.body, response.text)
    problem = Problem.model_validate(response.json())
    assert problem.status == response.status_code and problem.code in CODES, problem
    if response.status_code == 402:
        assert PaymentOut.model_validate(response.json()["payment"]).status == "failed"
    if case.card:
        digits = "".join(c for c in case.card if c.isdigit())
        assert case.card not in response.text and digits not in response.text, response.text


async def test_thousands_of_generated_payment_requests(service):
    orders = seed_orders(service)
    schema = (await service.http.get("/openapi.json")).json()
    documented = set(schema["paths"]["/v1/payments"]["post"]["responses"])
    before = payment_records(service)
    charges_before = {o["orderId"]: service.charges(o["orderId"]) for o in orders}

    generated = generate(orders, EXAMPLES)
    random.Random(11).shuffle(generated)
    for start in range(0, len(generated), BATCH):
        batch = generated[start : start + BATCH]
        responses = await asyncio.gather(
            *(
                service.http.post("/v1/payments", content=c.content, headers=c.headers)
                for c in batch
            )
        )
        for case, response in zip(batch, responses, strict=True):
            case.response = response
    failures = []
    for case in generated:
        try:
            check(case, documented)
        except AssertionError as exc:
            failures.append(f"{case.body!r:.300} -> {exc!s:.500}")
    assert not failures, f"{len(failures)} failed, e.g.:\n" + "\n".join(failures[:8])

    statuses = Counter(c.response.status_code for c in generated)
    codes = Counter(c.response.json().get("code", "payment") for c in generated)
    print(f"\n{len(generated)} generated requests: {dict(sorted(statuses.items()))}\n{dict(codes)}")
    assert len(generated) >= EXAMPLES * 0.9
    assert statuses[201] > 0 and statuses[422] > 0 and codes["raw_card_number"] > 0, statuses

    # Nothing was created for a rejected request: every new record and charge belongs to
    # a 201 or a 402 of a seeded order, one each (a replayed Idempotency-Key answer: none).
    created = Counter(
        c.body["orderId"]
        for c in generated
        if c.response.status_code in (201, 402)
        and c.response.headers.get("Idempotent-Replayed") != "true"
    )
    assert set(created) <= {o["orderId"] for o in orders}
    new_records = payment_records(service) - before
    assert len(new_records) == sum(created.values())
    for order in orders:
        order_id = order["orderId"]
        charged = service.charges(order_id) - charges_before[order_id]
        assert charged == created[order_id], (order_id, charged, created[order_id])
