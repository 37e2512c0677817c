"""The OpenAPI document says what the server enforces (deployments/models.py,
deployments/openapi.py): its JSON Schema and the models agree on every sample body, the
rules it cannot state are the written-down ones, problems are documented as they are
sent, and the links lead from a payment to where it can be read. No Ray: FastAPI builds
the document from the routes alone."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from deployments.app import api
from deployments.models import (
    AMOUNT_DECIMALS,
    AMOUNT_TOO_LARGE,
    ID_PATTERN,
    POSITIVE_DECIMAL_PATTERN,
    AdminOrdersBody,
    PaymentBody,
    PaymentOut,
)
from deployments.openapi import PROBLEM_JSON
from raypay.domain.money import currencies

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOC = api.openapi()
SCHEMAS = DOC["components"]["schemas"]
PAY = {
    "orderId": "ord_1",
    "customerId": "cus_1",
    "amount": "25.00",
    "currency": "USD",
    "paymentMethod": "pm_card_visa",
}


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", **DOC})


def operation(method: str, path: str) -> dict[str, Any]:
    return DOC["paths"][path][method]


def model_errors(model: type, body: Any) -> list[tuple[str, str]]:
    """(field, type) of each error the server's model gives; [] if it takes the body."""
    try:
        model.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        return [(".".join(map(str, e["loc"])), e["type"]) for e in exc.errors()]
    return []


# Bodies that once slipped between the document and the server, and their neighbours.
PAYMENT_BODIES = [
    PAY,
    {**PAY, "amount": 0.0},
    {**PAY, "amount": "0.00"},
    {**PAY, "amount": -5},
    {**PAY, "amount": "-5"},
    {**PAY, "amount": 1e24},
    {**PAY, "amount": "1" * 25},
    {**PAY, "amount": "1e3"},
    {**PAY, "amount": " 25"},
    {**PAY, "amount": True},
    {**PAY, "amount": 25},
    {**PAY, "currency": "usd"},
    {**PAY, "currency": "XXX"},
    {**PAY, "paymentMethod": 5},
    {**PAY, "reservationId": None},
    {**PAY, "reservationId": ".r"},
    {**PAY, "extra": 1},
]
ADMIN_BODIES = [
    {},
    {"reservationTtlSeconds": False},
    {"reservationTtlSeconds": "900"},
    {"reservationTtlSeconds": 900},
    {"count": True},
    {"count": "5"},
    {"count": 5.0},
    {"count": 5.5},
    {"reservation": 1},
    {"reservation": "true"},
    {"amount": 0.0},
    {"amount": 1e300},
    {"amount": "25.00", "currency": "JPY"},
    {"idPrefix": ".a"},
    {"idPrefix": "a.b"},
    {"status": "paid"},
    {"status": "PAID"},
]


@pytest.mark.parametrize(
    ("model", "body"),
    [(PaymentBody, body) for body in PAYMENT_BODIES]
    + [(AdminOrdersBody, body) for body in ADMIN_BODIES],
)
def test_the_document_and_the_server_agree_on_each_body(model, body):
    schema_valid = validator(model.__name__).is_valid(body)
    assert schema_valid == (model_errors(model, body) == []), (schema_valid, body)


def test_what_the_document_cannot_state_is_refused_with_its_own_type_and_described():
    decimals = {**PAY, "amount": "25.001"}
    assert validator("PaymentBody").is_valid(decimals)
    assert model_errors(PaymentBody, decimals) == [("amount", AMOUNT_DECIMALS)]
    described = SCHEMAS["PaymentBody"]["properties"]["amount"]["description"]
    assert AMOUNT_DECIMALS in described and AMOUNT_TOO_LARGE in described
    assert "raw_card_number" in SCHEMAS["PaymentBody"]["properties"]["paymentMethod"]["description"]


def test_each_rule_the_document_cannot_state_is_written_down_for_schemathesis():
    config = tomllib.loads((ROOT / "schemathesis.toml").read_text())
    written = {
        (r["operation"], r["status"], r.get("code"), tuple(r.get("errors", ())))
        for r in config["checks"]["written_down_refusals"]["refusals"]
    }
    decimals, too_large = (f"amount:{AMOUNT_DECIMALS}",), (f"amount:{AMOUNT_TOO_LARGE}",)
    assert {
        ("POST /v1/payments", 422, "validation_error", decimals),
        ("POST /v1/admin/orders", 422, "validation_error", decimals),
        ("POST /v1/payments", 422, "validation_error", too_large),
        ("POST /v1/payments", 422, "raw_card_number", ()),
    } <= written


@given(st.text(alphabet="0123456789.-+e _ ", max_size=30))
def test_the_amount_pattern_is_the_servers_rule_for_amount_text(text):
    matches = re.fullmatch(POSITIVE_DECIMAL_PATTERN, text) is not None
    # Decimal places and the cap depend on the currency and the deployment (written down).
    errors = [
        e for e in model_errors(PaymentBody, {**PAY, "amount": text}) if e[1] != "amount_decimals"
    ]
    assert matches == (errors == [])


@given(
    st.from_regex(SCHEMAS["AdminOrdersBody"]["properties"]["idPrefix"]["pattern"], fullmatch=True)
)
def test_a_seeded_id_with_any_prefix_the_document_allows_is_an_id(prefix):
    # Seeding makes "<prefix>order-<16 hex>" (raypay/adapters/seeding.py): payable and listable.
    assert re.fullmatch(ID_PATTERN, f"{prefix}order-0123456789abcdef")


def test_the_amount_states_its_bounds_and_the_currency_its_codes():
    number, text = SCHEMAS["PaymentBody"]["properties"]["amount"]["anyOf"]
    assert number == {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1e24}
    assert text == {"type": "string", "pattern": POSITIVE_DECIMAL_PATTERN}
    for name in ("PaymentBody", "AdminOrdersBody"):
        assert SCHEMAS[name]["properties"]["currency"]["enum"] == currencies()
    ttl = SCHEMAS["AdminOrdersBody"]["properties"]["reservationTtlSeconds"]
    assert ttl["type"] == "number"


def test_problems_are_documented_as_sent_and_every_route_takes_a_request_id():
    for path, methods in DOC["paths"].items():
        for method, op in methods.items():
            names = [p["name"] for p in op.get("parameters", [])]
            assert "X-Request-ID" in names, (method, path)
            for parameter in op.get("parameters", []):
                assert "anyOf" not in parameter["schema"], parameter  # HTTP has no null
            for status, response in op["responses"].items():
                content = response.get("content", {})
                if int(status) >= 400:
                    assert list(content) == [PROBLEM_JSON], (method, path, status)
                    problem = content[PROBLEM_JSON]["schema"]
                    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "code" in SCHEMAS["Problem"]["required"]


def test_a_payment_links_to_itself_and_to_its_orders_payments():
    pay = operation("post", "/v1/payments")
    get = operation("get", "/v1/payments/{paymentId}")
    listing = operation("get", "/v1/orders/{orderId}/payments")
    fields = {f.alias for f in PaymentOut.model_fields.values()}
    for status, at in (("201", ""), ("200", ""), ("402", "/payment")):
        links = pay["responses"][status]["links"]
        assert links["GetPayment"] == {
            "operationId": get["operationId"],
            "parameters": {"paymentId": f"$response.body#{at}/paymentId"},
            "description": links["GetPayment"]["description"],
        }
        assert links["ListOrderPayments"]["operationId"] == listing["operationId"]
        assert links["ListOrderPayments"]["parameters"] == {
            "orderId": f"$response.body#{at}/orderId"
        }
    assert {"paymentId", "orderId"} <= fields
    assert {p["name"] for p in get["parameters"]} >= {"paymentId"}
    assert {p["name"] for p in listing["parameters"]} >= {"orderId"}


def test_a_seeded_order_links_to_paying_it_with_its_own_fields():
    link = operation("post", "/v1/admin/orders")["responses"]["201"]["links"]["PayOrder"]
    assert link["operationId"] == operation("post", "/v1/payments")["operationId"]
    body = link["requestBody"]
    assert set(body) <= set(SCHEMAS["PaymentBody"]["properties"])
    assert {"orderId", "customerId", "amount", "currency"} <= set(body)
    assert all(value == f"$response.body#/orders/0/{name}" for name, value in body.items())
