"""The payment story and the refund story, step by step, against small ports
(DESIGN.md, "The request path").

A newcomer reads ``pay`` and ``refund`` top to bottom and knows the whole workflow.
Both run inside the PaymentActor shard that owns the order, under that order's lock;
the atomic ``PaymentStore.begin`` and ``RefundStore.begin`` make them safe even if two
shards ever ran them at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from raypay.domain.errors import PaymentDeclined, PaymentNotFound, RefundDeclined, Unavailable
from raypay.domain.events import event_for, refund_event_for
from raypay.domain.model import (
    Payment,
    PaymentRequest,
    PaymentStatus,
    Reservation,
    check_order,
    check_reservation,
)
from raypay.domain.outcomes import Outcome
from raypay.domain.ports import (
    ChargeRequest,
    ChargeResult,
    Clock,
    Gateway,
    OrderStore,
    PaymentStore,
    RefundCharge,
    RefundResult,
    RefundStore,
    ReservationStore,
)
from raypay.domain.refunds import (
    Refund,
    RefundRequest,
    RefundStatus,
    check_same_refund,
    refund_amount,
    with_refund,
)

log = logging.getLogger("raypay.domain.workflow")
# How many earlier attempts one request settles before it gives up with a 503.
MAX_PREDECESSORS = 3


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class Deps:
    orders: OrderStore
    reservations: ReservationStore
    payments: PaymentStore
    refunds: RefundStore
    gateway: Gateway
    clock: Clock
    ids: Callable[[str], str] = field(default=new_id)


async def pay(request: PaymentRequest, deps: Deps) -> Outcome:
    """Pay one order. Returns the succeeded payment; raises a RaypayError otherwise
    (PaymentDeclined carries the failed payment)."""
    # Steps 1-3 only read, so they read at once (one round trip with a pipelining
    # client) and are decided below in their order.
    done, order, reservation = await asyncio.gather(
        deps.payments.succeeded_for(request.order_id),
        deps.orders.get(request.order_id),
        _reservation(request, deps),
    )
    # 1. Idempotency: an order is paid at most once.
    if done:
        return Outcome(done, replayed=True)

    # 2. The order exists, is the customer's, has this amount and may be paid.
    check_order(order, request)

    # 3. The seat reservation, when given, is still the customer's and active.
    if request.reservation_id is not None:
        check_reservation(reservation, request, deps.clock.now())

    # 4. A pending payment record, atomically guarded against a concurrent or earlier one.
    payment = Payment.start(request, deps.ids("pay"), deps.clock.now())
    begun = await deps.payments.begin(payment)
    for _ in range(MAX_PREDECESSORS):
        if begun.created:
            break
        found = begun.payment
        if found.status is PaymentStatus.SUCCEEDED:
            return Outcome(found, replayed=True)
        if found.status is PaymentStatus.PENDING:
            # A predecessor (a crashed shard, a timed-out gateway call) left this
            # pending: settle it through the gateway's idempotency key first.
            settled = await charge_and_settle(found, deps, request.request_id)
            if settled.status is PaymentStatus.SUCCEEDED:
                # Not a replay: the client that retried never saw this payment before.
                return Outcome(settled, replayed=False)
        # Failed by now (settled here, or by whoever else ran it): start anew.
        begun = await deps.payments.begin(payment)
    if not begun.created:
        raise Unavailable(f"order {request.order_id} is being paid elsewhere; retry")

    # 5 and 6. Charge through the gateway, record the outcome and queue the event.
    settled = await charge_and_settle(begun.payment, deps, request.request_id)
    if settled.status is PaymentStatus.FAILED:
        raise PaymentDeclined(
            settled.error_message or "declined",
            settled,
            decline_code=settled.error_code or "card_declined",
        )
    return Outcome(settled, replayed=False)


async def _reservation(request: PaymentRequest, deps: Deps) -> Reservation | None:
    if request.reservation_id is None:
        return None
    return await deps.reservations.get(request.reservation_id)


async def charge_and_settle(payment: Payment, deps: Deps, request_id: str | None = None) -> Payment:
    """Steps 5 and 6: charge with the paymentId as idempotency key, then record the
    outcome and its event in one atomic store step. GatewayUnavailable leaves the
    payment pending, to be settled by the retry or the sweep."""
    result = await deps.gateway.charge(
        ChargeRequest(
            payment.payment_id,
            payment.amount,
            payment.payment_method,
            payment.order_id,
            request_id,
        )
    )
    return await settle(payment, result, deps, request_id)


async def settle(
    payment: Payment, result: ChargeResult, deps: Deps, request_id: str | None = None
) -> Payment:
    """Record a gateway result for a pending payment, with its event, atomically.
    ``request_id`` (of the request that settles it) goes with the event."""
    now = deps.clock.now()
    if result.approved:
        settled = payment.succeed(result.transaction_id or "", now, result.simulated)
    else:
        settled = payment.fail(
            result.decline_code or "card_declined",
            result.message or "The card was declined",
            now,
            result.simulated,
        )
    event = event_for(settled, deps.ids("evt"), now, request_id)
    settled = await deps.payments.settle(settled, event)
    if log.isEnabledFor(logging.DEBUG):  # the ingress logs every outcome at INFO
        log.debug(
            "payment settled",
            extra={
                "orderId": settled.order_id,
                "paymentId": settled.payment_id,
                "outcome": settled.status.value,
                "errorCode": settled.error_code,
                "requestId": request_id,
            },
        )
    return settled


async def settle_pending(payment: Payment, deps: Deps) -> Payment:
    """The sweep's step: settle a payment its shard left pending, without charging.

    The gateway is asked for the charge by idempotency key; with none, the gateway
    closes the key and the attempt is marked failed (``abandoned``), so the order
    can be paid again and a late charge with that key cannot happen.
    """
    return await settle(payment, await deps.gateway.resolve_charge(payment.payment_id), deps)


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
    refund_id = refund_id or deps.ids("re")

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
