"""The Idempotency-Key rules around the payment workflow.

Every final outcome (a payment, a decline, a refusal) for an ``Idempotency-Key`` is
stored with a fingerprint of the request and given again for the same key and request;
the same key with another request is ``idempotency_key_reused``. A 503 is not final: it
is not stored, so the retry it asks for runs for real.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Protocol

from raypay.domain.errors import IdempotencyKeyReused, PaymentDeclined, Rejected
from raypay.domain.model import PaymentRequest
from raypay.domain.outcomes import Outcome
from raypay.domain.workflow import Deps, pay


class IdempotencyStore(Protocol):
    async def get(self, key: str) -> tuple[str, Outcome] | None:
        """The (fingerprint, outcome) stored for an Idempotency-Key, or None."""

    async def put(self, key: str, fingerprint: str, outcome: Outcome) -> None:
        """Store the first outcome for a key (later ones never overwrite it); it expires."""


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


async def pay_once(
    request: PaymentRequest, deps: Deps, store: IdempotencyStore, key: str | None = None
) -> Outcome:
    """Run ``pay`` and return its final Outcome, honouring an Idempotency-Key.

    Raises Unavailable (not final) and IdempotencyKeyReused (the key is not this request's).
    """
    digest = fingerprint(request)
    if key is not None and (stored := await store.get(key)) is not None:
        stored_digest, outcome = stored
        if stored_digest != digest:
            raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used with another request")
        return replace(outcome, key_replay=True)
    try:
        outcome = await pay(request, deps)
    except PaymentDeclined as exc:
        outcome = Outcome(exc.payment, error=exc)
    except Rejected as exc:
        outcome = Outcome(error=exc)
    if key is not None:
        await store.put(key, digest, outcome)
    return outcome
