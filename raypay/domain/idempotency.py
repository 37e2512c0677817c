"""Final answers to a payment request, and the Idempotency-Key rules around them.

A ``Reply`` is what the client sees: an HTTP status and a body (the payment object,
or a problem). Every final answer (2xx, 402, 4xx) for an ``Idempotency-Key`` is stored
with a fingerprint of the request and replayed for the same key and request; the same
key with another request is ``idempotency_key_reused``. A 503 is not final: it is not
stored, so the retry it asks for runs for real.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from raypay.domain.errors import (
    IdempotencyKeyReused,
    PaymentDeclined,
    RaypayError,
    Rejected,
    Unavailable,
    problem_code,
    to_problem,
)
from raypay.domain.model import PaymentRequest
from raypay.domain.workflow import Deps, pay


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]
    replayed: bool = False
    fingerprint: str = field(default="", compare=False)


class ReplyStore(Protocol):
    async def get(self, key: str) -> Reply | None:
        """The reply stored for an Idempotency-Key, or None."""

    async def put(self, key: str, reply: Reply) -> None:
        """Store the first reply for a key (later ones never overwrite it); it expires."""


def fingerprint(request: PaymentRequest) -> str:
    """A digest of everything in the request that decides its outcome (not its
    ``request_id``: a retry under a new request id is the same request)."""
    parts = (
        request.order_id,
        request.customer_id,
        str(request.amount.minor),
        request.amount.currency,
        request.payment_method,
        request.reservation_id or "",
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


async def answer(
    request: PaymentRequest, deps: Deps, replies: ReplyStore, key: str | None = None
) -> Reply:
    """Run ``pay`` and turn its outcome into a Reply, honouring an Idempotency-Key."""
    digest = fingerprint(request)
    if key is not None and (stored := await replies.get(key)) is not None:
        if stored.fingerprint != digest:
            raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used with another request")
        return Reply(stored.status, stored.body, replayed=True, fingerprint=digest)
    try:
        outcome = await pay(request, deps)
        reply = Reply(
            200 if outcome.replayed else 201,
            outcome.payment.to_api(),
            outcome.replayed,
            digest,
        )
    except (Rejected, PaymentDeclined) as exc:
        reply = Reply(exc.status, to_problem(exc), fingerprint=digest)
    if key is not None:
        await replies.put(key, reply)
    return reply


SUCCEEDED, REPLAYED, DECLINED, REJECTED = "succeeded", "replayed", "declined", "rejected"
UNAVAILABLE, ERROR = "unavailable", "error"
OUTCOMES = (SUCCEEDED, REPLAYED, DECLINED, REJECTED, UNAVAILABLE, ERROR)


def outcome_of(answer: Reply | BaseException) -> tuple[str, str]:
    """How a payment request ended, as (outcome, code), for metrics and logs.

    ``succeeded`` and ``replayed`` (a stored answer: code is its problem code, if any);
    ``declined`` with the decline code; ``rejected`` with the problem code;
    ``unavailable`` with the dependency that was away (redis, gateway, shard);
    ``error`` for anything unexpected.
    """
    if isinstance(answer, Reply):
        code = answer.body.get("code", "") if answer.status >= 400 else ""
        if answer.replayed:
            return REPLAYED, code
        if answer.status < 300:
            return SUCCEEDED, ""
        return (DECLINED if answer.status == 402 else REJECTED), code
    if isinstance(answer, Unavailable):
        return UNAVAILABLE, answer.cause
    if isinstance(answer, PaymentDeclined):
        return DECLINED, answer.decline_code
    if isinstance(answer, RaypayError) and answer.status < 500:
        return REJECTED, problem_code(answer)
    return ERROR, "internal_error"
