"""The refund story, step by step, against the same ports as the payment story
(workflow.py): refund (part of) a succeeded payment, and refund one at once when its
seat hold was lost while the card was charged.

``refund`` runs in the PaymentActor shard that owns the payment's order, under that
order's lock, so refunds are serialized with the order's payments; the atomic
``RefundStore.begin`` keeps a payment's refunds within its charge even if two shards
ever ran it at once.
"""

from __future__ import annotations

import asyncio

from raypay.domain.errors import PaymentNotFound, RefundDeclined, ReservationExpiredDuringPayment
from raypay.domain.events import refund_event_for
from raypay.domain.model import Payment
from raypay.domain.outcomes import Outcome
from raypay.domain.ports import Deps, RefundCharge, RefundResult
from raypay.domain.refunds import (
    Refund,
    RefundReason,
    RefundRequest,
    RefundStatus,
    check_same_refund,
    refund_amount,
    refund_id_for,
    with_refund,
)
from raypay.domain.sharding import vshard_in


async def refund(request: RefundRequest, deps: Deps, refund_id: str | None = None) -> Outcome:
    """Refund (part of) a succeeded payment. Returns the succeeded refund with the payment
    as it left it; raises a RaypayError otherwise (RefundDeclined carries the failed one).

    ``refund_id``: set when the request has an Idempotency-Key (derived from it), so the
    retry of a refund that ended in a 503 finds that refund and never pays back twice.
    """
    # 1. The payment and its refunds so far (one round trip with a pipelining client).
    payment, refunds = await asyncio.gather(
        deps.payments.get(request.payment_id), deps.refunds.list_for_payment(request.payment_id)
    )
    if payment is None:
        raise PaymentNotFound(f"payment {request.payment_id} not found")
    refund_id = refund_id or deps.ids("re", vshard_in(payment.payment_id))

    # 2. This very refund again (the retry of a 503): settle it if still pending, answer it.
    if (earlier := next((r for r in refunds if r.refund_id == refund_id), None)) is not None:
        check_same_refund(earlier, request)
        return await _refund_answer(earlier, payment, deps, request.request_id)

    # 3. Refunds a predecessor left pending (a crashed shard, a silent gateway) are settled
    # first, through the gateway's idempotency key, so what is left to refund is known.
    settled_before = []
    for earlier in refunds:
        if earlier.status is RefundStatus.PENDING:
            earlier = await refund_and_settle(earlier, payment, deps, request.request_id)
            payment = with_refund(payment, earlier)
        settled_before.append(earlier)

    # 4. The amount: what was asked, or all that is left; never more than is left.
    amount = refund_amount(payment, settled_before, request.amount)

    # 5. A pending refund; the store sets its amount aside on the payment in the same
    # atomic step, so refunds never sum above the charge, even from two shards at once.
    begun = await deps.refunds.begin(
        Refund.start(request, payment, refund_id, amount, deps.clock.now())
    )

    # 6. Refund through the gateway (the refundId is its idempotency key), then record
    # the outcome and queue its event in one atomic store step.
    return await _refund_answer(begun.refund, payment, deps, request.request_id)


async def _refund_answer(
    refund: Refund, payment: Payment, deps: Deps, request_id: str | None
) -> Outcome:
    if refund.status is RefundStatus.PENDING:
        refund = await refund_and_settle(refund, payment, deps, request_id)
        payment = with_refund(payment, refund)
    if refund.status is RefundStatus.FAILED:
        raise RefundDeclined(refund.error_message or "The refund was declined", refund)
    return Outcome(payment, refund=refund)


async def refund_and_settle(
    refund: Refund, payment: Payment, deps: Deps, request_id: str | None = None
) -> Refund:
    """Refund through the gateway with the refundId as idempotency key, then record the
    outcome and its event atomically. GatewayUnavailable leaves the refund pending (its
    amount set aside), for the retry or the sweep, which ask the gateway again."""
    result = await deps.gateway.refund(
        RefundCharge(
            refund.refund_id,
            payment.payment_id,
            payment.transaction_id or "",
            refund.amount,
            payment.payment_method,
            payment.order_id,
            request_id,
        )
    )
    return await settle_refund(refund, payment, result, deps, request_id)


async def settle_refund(
    refund: Refund,
    payment: Payment,
    result: RefundResult,
    deps: Deps,
    request_id: str | None = None,
) -> Refund:
    """Record a gateway result for a pending refund of ``payment``, with its event."""
    now = deps.clock.now()
    if result.succeeded:
        settled = refund.succeed(result.gateway_refund_id or "", now)
    else:
        settled = refund.fail(
            result.decline_code or "refund_declined",
            result.message or "The refund was declined",
            now,
        )
    event = refund_event_for(settled, payment, deps.ids("evt"), now, request_id)
    return await deps.refunds.settle(settled, event)


async def settle_pending_refund(refund: Refund, deps: Deps) -> Refund:
    """The sweep's step for a refund its shard left pending: the refund is owed, so the
    gateway is asked again with the same key (it refunds once, or gives the first result)."""
    payment = await deps.payments.get(refund.payment_id)
    if payment is None:
        raise PaymentNotFound(f"payment {refund.payment_id} of refund {refund.refund_id} is gone")
    return await refund_and_settle(refund, payment, deps)


async def refund_lost_hold(payment: Payment, deps: Deps, request_id: str | None = None) -> None:
    """Refund a just-succeeded payment whose seat hold expired or was released while the
    card was charged, in full, and release its order (it may be paid again once it holds
    seats again). Raises ReservationExpiredDuringPayment with both, whatever the refund's
    outcome (a declined one is in it, failed); GatewayUnavailable leaves it pending for the
    sweep. The order is released when the refund begins: the seats are gone either way."""
    request = RefundRequest(payment.payment_id, RefundReason.RESERVATION_EXPIRED)
    refund_id = refund_id_for(payment.payment_id, RefundReason.RESERVATION_EXPIRED.value)
    begun = await deps.refunds.begin(
        Refund.start(request, payment, refund_id, payment.amount, deps.clock.now()),
        release_order=True,
    )
    refund = begun.refund
    if refund.status is RefundStatus.PENDING:
        refund = await refund_and_settle(refund, payment, deps, request_id)
        payment = with_refund(payment, refund)
    raise ReservationExpiredDuringPayment(
        f"reservation {payment.reservation_id} expired or was released while payment "
        f"{payment.payment_id} was charged; it was refunded ({refund.status})",
        payment,
        refund,
    )
