"""The Idempotency-Key rules around the payment and refund workflows.

Every final outcome (a payment or refund, a decline, a refusal) for an ``Idempotency-Key`` is
stored with a fingerprint of the request and given again for the same key and request;
the same key with another request is ``idempotency_key_reused``. A 503 is not final: it
is not stored, so the retry it asks for runs for real. A payment's retry is safe because
an order is paid at most once; a refund's, because the key also names the refund (its
refundId is derived from the key), so the retry settles that refund instead of making another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from raypay.domain.errors import IdempotencyKeyReused, PaymentDeclined, RefundDeclined, Rejected
from raypay.domain.model import PaymentRequest
from raypay.domain.outcomes import Outcome, refused
from raypay.domain.refunding import refund
from raypay.domain.refunds import RefundRequest, refund_id_for
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


def refund_fingerprint(request: RefundRequest) -> str:
    """A digest of a refund request (not its ``request_id``); it differs from every
    payment's, so a key used for a payment is refused for a refund."""
    parts = (
        "refund",
        request.payment_id,
        "" if request.amount is None else str(request.amount.normalize()),
        request.reason.value,
        json.dumps(dict(request.metadata), sort_keys=True),
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


async def pay_once(
    request: PaymentRequest, deps: Deps, store: IdempotencyStore, key: str | None = None
) -> Outcome:
    """Run ``pay`` and return its final Outcome, honouring an Idempotency-Key.

    Raises Unavailable (not final) and IdempotencyKeyReused (the key is not this request's).
    """
    return await _once(fingerprint(request), lambda: pay(request, deps), store, key)


async def refund_once(
    request: RefundRequest, deps: Deps, store: IdempotencyStore, key: str | None = None
) -> Outcome:
    """Run ``refund`` and return its final Outcome, honouring an Idempotency-Key."""
    refund_id = refund_id_for(request.payment_id, key) if key is not None else None
    return await _once(
        refund_fingerprint(request), lambda: refund(request, deps, refund_id), store, key
    )


async def _once(
    digest: str, run: Callable[[], Awaitable[Outcome]], store: IdempotencyStore, key: str | None
) -> Outcome:
    if key is not None and (stored := await store.get(key)) is not None:
        stored_digest, outcome = stored
        if stored_digest != digest:
            raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used with another request")
        return replace(outcome, key_replay=True)
    try:
        outcome = await run()
    except IdempotencyKeyReused:
        raise  # the key belongs to another request's refund: store nothing under it
    except (PaymentDeclined, RefundDeclined, Rejected) as exc:
        outcome = refused(exc)
    if key is not None:
        await store.put(key, digest, outcome)
    return outcome
