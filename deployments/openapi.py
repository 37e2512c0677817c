"""The OpenAPI document's parts that FastAPI does not derive from a route on its own: the
problem+json responses, the links that let a client (or schemathesis's stateful phase)
follow a payment from the call that made it, and X-Request-ID on every route.

Everything here is built from the models' field aliases and the routes' operation ids, so
a renamed field or route changes the document with it. A route that replaces one of
these (the lean POST /v1/payments) keeps its operation id and passes the same
``responses`` (``payment_responses()``) through ``openapi_extra`` if it is not a FastAPI
route.
"""

# No `from __future__ import annotations`: FastAPI reads request_id_header's signature.
from typing import Any

from fastapi import FastAPI

from deployments.models import PaymentOut, Problem, RequestId, SeededOrder

PROBLEM_JSON = "application/problem+json"
# Operation ids: what links name (stable across path or function renames).
CREATE_PAYMENT, GET_PAYMENT = "createPayment", "getPayment"
LIST_ORDER_PAYMENTS, SEED_ORDERS = "listOrderPayments", "seedOrders"
# Path parameters, camelCase like every JSON field.
PAYMENT_ID, ORDER_ID = "paymentId", "orderId"


async def request_id_header(request_id: RequestId = None) -> str | None:
    """X-Request-ID, on every route: Serve takes the client's (or makes one), returns it
    and logs it, for any path. Under Serve, deployments/edge.py refuses a malformed one
    before Serve reads it; this declares it in the document and checks it without Serve."""
    return request_id


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Responses that are RFC 9457 problems (``document`` files the schema under
    application/problem+json, the media type they are sent with)."""
    return {status: {"model": Problem, "content": {PROBLEM_JSON: {}}} for status in statuses}


def _field(model: type, name: str) -> str:
    return model.model_fields[name].alias or name


def _payment_links(at: str) -> dict[str, Any]:
    """From a response whose body holds a payment object at JSON pointer ``at``."""
    return {
        "GetPayment": {
            "operationId": GET_PAYMENT,
            "parameters": {PAYMENT_ID: f"$response.body#{at}/{_field(PaymentOut, 'payment_id')}"},
            "description": "The payment, by its id",
        },
        "ListOrderPayments": {
            "operationId": LIST_ORDER_PAYMENTS,
            "parameters": {ORDER_ID: f"$response.body#{at}/{_field(PaymentOut, 'order_id')}"},
            "description": "Every payment of the payment's order",
        },
    }


def payment_responses(statuses: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    """POST /v1/payments: 201 (new) and 200 (replayed) are a payment, 402 a problem that
    carries the declined payment; each links to the payment and to its order's list."""
    responses: dict[int | str, dict[str, Any]] = {
        201: {"links": _payment_links("")},
        200: {"model": PaymentOut, "description": "Replayed", "links": _payment_links("")},
        **problems(*statuses),
    }
    if 402 in responses:
        responses[402]["links"] = _payment_links("/payment")
    return responses


def seeded_order_responses(statuses: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    """POST /v1/admin/orders: 201 links to paying the first order it wrote, and to its
    (empty) list of payments."""
    first = "$response.body#/orders/0/"
    fields = [
        _field(SeededOrder, name)
        for name in ("order_id", "customer_id", "amount", "currency", "reservation_id")
    ]
    pay = {
        "operationId": CREATE_PAYMENT,
        "requestBody": {field: first + field for field in fields},
        "description": "Pay the first order written, as its customer, for its amount",
    }
    orders = {
        "operationId": LIST_ORDER_PAYMENTS,
        "parameters": {ORDER_ID: first + _field(SeededOrder, "order_id")},
        "description": "The first order's payments",
    }
    return {201: {"links": {"PayOrder": pay, "ListOrderPayments": orders}}, **problems(*statuses)}


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, said as the server reads and answers:

    * every problem response's schema under application/problem+json only (FastAPI files
      a response model under the route's media type, application/json, which a problem
      is never sent as);
    * an optional header or query parameter without FastAPI's ``null`` branch: HTTP
      has no null, a client that sends ``null`` sends the text "null".
    """
    schema = FastAPI.openapi(app)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _without_null(parameter.get("schema", {}))
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if PROBLEM_JSON in content and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" not in schema or len(branches) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**branches[0], **rest}
