"""How a payment or refund request ended: the ``Outcome`` a shard returns, and its kind
for metrics and logs.

An Outcome is final: the payment (new or replayed) or the refund, or a refusal that
retrying the same request would meet again (a decline, an unknown order, ...). A dependency that is
away is not an outcome: it is raised (``Unavailable``, 503), and the retry runs for real.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from raypay.domain.errors import (
    PaymentDeclined,
    RaypayError,
    RefundDeclined,
    Rejected,
    Unavailable,
    problem_code,
)
from raypay.domain.model import Payment
from raypay.domain.pickling import by_fields
from raypay.domain.refunds import Refund

Refusal = Rejected | PaymentDeclined | RefundDeclined


@by_fields
@dataclass(frozen=True, slots=True)
class Outcome:
    """The succeeded payment (or refund: ``refund``, with its payment as it left it), or
    a final refusal (``error``; a declined payment or refund is here too).
    ``replayed``: the order was paid before, this is that payment. ``key_replay``: the
    outcome stored for the request's Idempotency-Key, given again."""

    payment: Payment | None = None
    replayed: bool = False
    error: Refusal | None = None
    key_replay: bool = False
    refund: Refund | None = None


def refused(error: Refusal) -> Outcome:
    """The final outcome of a refusal, with the payment or refund a decline carries."""
    return Outcome(
        payment=getattr(error, "payment", None), refund=getattr(error, "refund", None), error=error
    )


class OutcomeKind(StrEnum):
    """The ``outcome`` label of the payment metrics and the outcome log line."""

    SUCCEEDED = "succeeded"
    REPLAYED = "replayed"
    DECLINED = "declined"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"
    ERROR = "error"


def classify(result: Outcome | BaseException) -> tuple[OutcomeKind, str]:
    """(kind, code) of how a request ended: ``succeeded``; ``replayed`` (code: the stored
    refusal's, if any); ``declined`` with the decline code; ``rejected`` with the problem
    code; ``unavailable`` with the dependency that was away (redis, gateway, shard);
    ``error`` for anything unexpected."""
    if isinstance(result, Outcome):
        code = problem_code(result.error) if result.error is not None else ""
        if result.replayed or result.key_replay:
            return OutcomeKind.REPLAYED, code
        if result.error is None:
            return OutcomeKind.SUCCEEDED, ""
        result = result.error
    if isinstance(result, Unavailable):
        return OutcomeKind.UNAVAILABLE, result.cause
    if isinstance(result, PaymentDeclined):
        return OutcomeKind.DECLINED, result.decline_code
    if isinstance(result, RefundDeclined):
        return OutcomeKind.DECLINED, result.code
    if isinstance(result, RaypayError) and result.status < 500:
        return OutcomeKind.REJECTED, problem_code(result)
    return OutcomeKind.ERROR, "internal_error"
