"""POST /v1/payments without FastAPI's per-request machinery: the route every payment takes.

FastAPI matches the route, solves its dependencies, validates the headers, reads and
decodes the body and renders the response for every request; on the payment route
that was about a quarter of the ingress replica's CPU (py-spy, under wrk). This ASGI
middleware, inside ``Admission`` (which has checked size, key and media type), answers
the route itself with the same model (``PaymentBody``), the same header constraints,
the same role rule and the same problems, then hands over to the same
``PaymentIngress.pay_http`` the FastAPI route calls.

The FastAPI route stays declared: it is what the OpenAPI document describes, and it
serves the route when the setting ``lean_payment_route`` is off.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from deployments import problems
from deployments.models import IdempotencyKey, PaymentBody, RequestId
from deployments.security import PRINCIPAL, check_role
from raypay.domain.auth import Role
from raypay.domain.errors import RaypayError

# The FastAPI route's own header types: the same constraints, checked by pydantic.
IDEMPOTENCY_KEY = TypeAdapter(IdempotencyKey)
REQUEST_ID = TypeAdapter(RequestId)
BODY = TypeAdapter(PaymentBody)


class LeanPaymentRoute:
    """ASGI middleware: POST /v1/payments, when the replica registered itself in
    ``app.state.lean_payments``; every other request goes on to FastAPI."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        ingress = getattr(scope["app"].state, "lean_payments", None) if "app" in scope else None
        if ingress is None or scope["type"] != "http" or not problems.is_payment_request(scope):
            return await self.app(scope, receive, send)
        response = await answer(ingress, scope, receive)
        await response(scope, receive, send)


async def answer(ingress: Any, scope: dict[str, Any], receive: Any) -> Any:
    """The response to one payment request, as the FastAPI route would give it."""
    raw = await _body(receive)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:  # not JSON, or not UTF-8: FastAPI says so before anything else
        return problems.refusal(scope, problems.validation_problem([{"type": "json_invalid"}]))
    try:
        principal = check_role(scope.get(PRINCIPAL), Role.CHECKOUT)
    except RaypayError as exc:
        return problems.refusal(scope, problems.problem_body(exc), exc.headers() or None)
    headers = dict(scope["headers"])
    errors: list[dict[str, Any]] = []
    key = _header(headers, b"idempotency-key", IDEMPOTENCY_KEY, "idempotency-key", errors)
    request_id = _header(headers, b"x-request-id", REQUEST_ID, "X-Request-ID", errors)
    payment = None
    if not raw:  # FastAPI treats an empty body as a missing one
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required"})
    else:
        try:  # as FastAPI validates a body (from_attributes: its own choice)
            payment = BODY.validate_python(body, from_attributes=True)
        except ValidationError as exc:
            errors += [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
    if errors or payment is None:
        return problems.refusal(scope, problems.validation_problem(errors))
    return await ingress.pay_http(payment, principal, key, request_id)


def _header(
    headers: dict[bytes, bytes], name: bytes, rule: TypeAdapter, field: str, errors: list
) -> str | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return rule.validate_python(raw.decode("latin-1"))
    except ValidationError as exc:
        errors += [{**e, "loc": ("header", field)} for e in exc.errors()]
        return None


async def _body(receive: Any) -> bytes:
    """The whole body (Admission has read it already and replays it in one message)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
