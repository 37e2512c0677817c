"""The one table that maps errors to problem+json responses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from raypay.domain.cards import redact_card_numbers
from raypay.domain.errors import RawCardNumber, RaypayError, problem, to_problem

log = logging.getLogger("raypay.ingress")
PROBLEM_JSON = "application/problem+json"


PAYMENTS_PATH = "/v1/payments"
# Set in the scope by the payment route when it starts: from there on the route and
# the shard count the outcome (actors/metrics.py); before it, count_refused does.
ROUTED = "raypay.routed"


def problem_response(body: dict, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


def route_path(scope: dict[str, Any]) -> str:
    """The path the app routes on (without the app's route prefix)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def count_refused(scope: dict[str, Any], body: dict) -> None:
    """A POST /v1/payments refused before its route ran (by the Guard, validation or the
    role check) counts as a ``rejected`` payment request with the problem's code."""
    if scope.get("method") != "POST" or ROUTED in scope or route_path(scope) != PAYMENTS_PATH:
        return
    refused = getattr(scope["app"].state, "payment_refused", None)
    if refused is not None:
        refused(body["code"])


def refusal(request: Request, body: dict, headers: dict[str, str] | None = None) -> JSONResponse:
    count_refused(request.scope, body)
    return problem_response(body, headers)


async def on_raypay_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RaypayError)
    return refusal(request, to_problem(error), error.headers() or None)


async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return refusal(
            request,
            problem(400, "invalid_json", "Request body is not valid JSON", "Send a JSON object"),
        )
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
        return refusal(request, to_problem(RawCardNumber(detail, {"errors": fields})))
    return refusal(
        request, problem(422, "validation_error", "Request body is invalid", detail, errors=fields)
    )


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    if error.status_code == 400:  # FastAPI's "error parsing the body", e.g. not UTF-8
        return refusal(
            request,
            problem(400, "invalid_json", "Request body is not valid JSON", "Send a JSON object"),
        )
    code = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}.get(
        error.status_code, "http_error"
    )
    return problem_response(
        problem(error.status_code, code, str(error.detail), str(error.detail)),
        dict(error.headers or {}),
    )


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
