"""The one table that maps errors to problem+json responses, and the payment outcome
as an HTTP answer.

A POST /v1/payments refused before its route runs (by the admission middleware, body
validation or the role check) is recorded here, through :func:`refusal`; once the route
runs, the route records its own outcome and turns its own errors into responses, so
every handler below sees only refusals from before the route.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from deployments.models import payment_body, refund_body
from raypay.domain.cards import redact_card_numbers
from raypay.domain.errors import (
    PaymentDeclined,
    RawCardNumber,
    RaypayError,
    RefundDeclined,
    ReservationExpiredDuringPayment,
    problem_code,
)
from raypay.domain.outcomes import Outcome

log = logging.getLogger("raypay.ingress")
PROBLEM_JSON = "application/problem+json"


class JSONBody(JSONResponse):
    """JSON rendered by orjson: the same compact UTF-8 as Starlette's, a fraction of the
    CPU (every payment answer is one)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


PAYMENTS_PATH = "/v1/payments"


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem+json body with raypay's stable ``code``."""
    return {
        "type": f"urn:raypay:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_body(error: RaypayError) -> dict[str, Any]:
    """The problem for an error; a decline carries its failed payment or refund, a hold
    lost during the payment both the payment and its refund."""
    body = problem(error.status, problem_code(error), error.title, error.detail, **error.extra)
    if isinstance(error, PaymentDeclined | ReservationExpiredDuringPayment) and error.payment:
        body["payment"] = payment_body(error.payment)
    if isinstance(error, RefundDeclined | ReservationExpiredDuringPayment) and error.refund:
        body["refund"] = refund_body(error.refund)
    return body


def problem_response(body: dict, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONBody(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


def error_response(error: RaypayError, headers: dict[str, str] | None = None) -> JSONResponse:
    return problem_response(problem_body(error), {**error.headers(), **(headers or {})} or None)


def outcome_response(outcome: Outcome, headers: dict[str, str]) -> JSONResponse:
    """201 for a new payment, 200 for the order's earlier one, the problem of a refusal;
    ``Idempotent-Replayed: true`` on every answer given again."""
    if outcome.replayed or outcome.key_replay:
        headers["Idempotent-Replayed"] = "true"
    if outcome.error is not None:
        return error_response(outcome.error, headers)
    assert outcome.payment is not None
    status = 200 if outcome.replayed else 201
    return JSONBody(payment_body(outcome.payment), status, headers or None)


def refund_response(outcome: Outcome, headers: dict[str, str]) -> JSONResponse:
    """201 with the refund (also for the retry that finds its refund settled since: the
    client never saw it), the problem of a refusal; ``Idempotent-Replayed: true`` on an
    answer given again for its Idempotency-Key."""
    if outcome.key_replay:
        headers["Idempotent-Replayed"] = "true"
    if outcome.error is not None:
        return error_response(outcome.error, headers)
    assert outcome.refund is not None
    return JSONResponse(refund_body(outcome.refund), 201, headers or None)


def route_path(scope: dict[str, Any]) -> str:
    """The path the app routes on (without the app's route prefix)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def is_payment_request(scope: dict[str, Any]) -> bool:
    """POST /v1/payments: the request the lean route answers and the recorder counts."""
    return scope.get("method") == "POST" and route_path(scope) == PAYMENTS_PATH


def refusal(
    scope: dict[str, Any], body: dict, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The response to a request refused before its route ran; a POST /v1/payments
    counts as a ``rejected`` payment request with the problem's code."""
    if is_payment_request(scope):
        recorder = getattr(scope["app"].state, "recorder", None)
        if recorder is not None:
            recorder.refused(body["code"])
    return problem_response(body, headers)


async def on_raypay_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RaypayError)
    return refusal(request.scope, problem_body(error), error.headers() or None)


def validation_problem(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The problem for pydantic's errors of a request (``loc`` as FastAPI gives it):
    400 invalid_json, 422 raw_card_number, or 422 validation_error with the fields."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem(400, "invalid_json", "Request body is not valid JSON", "Send a JSON object")
    # Never the input (pydantic's "input" and "ctx"), and no card number even in a name.
    fields = [
        {
            "field": redact_card_numbers(
                ".".join(str(part) for part in e["loc"] if part != "body")
            ),
            "message": redact_card_numbers(str(e["msg"])),
            "type": e["type"],
        }
        for e in errors
    ]
    detail = "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in fields)
    if any(f["type"] == RawCardNumber.code for f in fields):
        return problem_body(RawCardNumber(detail, {"errors": fields}))
    return problem(422, "validation_error", "Request body is invalid", detail, errors=fields)


async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return refusal(request.scope, validation_problem(list(error.errors())))


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    if error.status_code == 400:  # FastAPI's "error parsing the body", e.g. not UTF-8
        return refusal(
            request.scope,
            problem(400, "invalid_json", "Request body is not valid JSON", "Send a JSON object"),
        )
    code = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}.get(
        error.status_code, "http_error"
    )
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(
        problem(error.status_code, code, str(error.detail), str(error.detail)), headers
    )


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on this path: Starlette's 405 names only the first
    route that matched the path, and a path may have several (GET and POST of refunds).
    Asked of each route as the router asks it (``matches``), method by method."""
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def on_unexpected(_: Request, error: Exception) -> JSONResponse:
    # Never a stack trace or an internal host name in a response; the log has it.
    log.exception("unexpected error", exc_info=error)
    return problem_response(
        problem(500, "internal_error", "Internal error", "An unexpected error occurred")
    )


def install(api: FastAPI) -> None:
    api.add_exception_handler(RaypayError, on_raypay_error)
    api.add_exception_handler(RequestValidationError, on_validation_error)
    api.add_exception_handler(HTTPException, on_http_error)
    api.add_exception_handler(Exception, on_unexpected)
