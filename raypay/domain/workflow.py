"""The payment story, step by step, against small ports (DESIGN.md, "The request path").

A newcomer reads ``pay`` top to bottom and knows the whole workflow (the refund story,
``refund``, is told beside it in refunding.py). It runs inside the PaymentActor shard
that owns the order, under that order's lock; the atomic ``PaymentStore.begin`` makes it
safe even if two shards ever ran it at once.
"""

from __future__ import annotations

import asyncio
import logging

from raypay.domain.errors import PaymentDeclined, ReservationExpiredDuringPayment, Unavailable
from raypay.domain.events import event_for
from raypay.domain.model import (
    Payment,
    PaymentRequest,
    PaymentStatus,
    Reservation,
    check_order,
    check_reservation,
    hold_lost,
)
from raypay.domain.outcomes import Outcome
from raypay.domain.ports import ChargeRequest, ChargeResult, Deps, new_id
from raypay.domain.refunding import refund_lost_hold
from raypay.domain.sharding import vshard_of

__all__ = ["Deps", "charge_and_settle", "new_id", "pay", "settle", "settle_pending"]

log = logging.getLogger("raypay.domain.workflow")
# How many earlier attempts one request settles before it gives up with a 503.
MAX_PREDECESSORS = 3


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
    payment_id = deps.ids("pay", vshard_of(request.order_id))  # carries the order's vshard
    payment = Payment.start(request, payment_id, deps.clock.now())
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
            settled = await _charge_for_held_seats(found, deps, request.request_id)
            if settled.status is PaymentStatus.SUCCEEDED:
                # Not a replay: the client that retried never saw this payment before.
                return Outcome(settled, replayed=False)
        # Failed by now (settled here, or by whoever else ran it): start anew.
        begun = await deps.payments.begin(payment)
    if not begun.created:
        raise Unavailable(f"order {request.order_id} is being paid elsewhere; retry")

    # 5-7. Charge through the gateway, record the outcome and queue the event, and keep
    # no money for seats the buyer no longer holds (see _charge_for_held_seats).
    settled = await _charge_for_held_seats(begun.payment, deps, request.request_id)
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
    return await deps.reservations.get(request.reservation_id, request.order_id)


async def _charge_for_held_seats(
    payment: Payment, deps: Deps, request_id: str | None = None
) -> Payment:
    """Steps 5 and 6 (charge, then record the outcome with its event), then 7: if the
    seat hold expired or was released while the card was charged, the buyer no longer
    holds the seats, so the payment is refunded at once and releases its order
    (ReservationExpiredDuringPayment, 409, with both). The hold is read again beside the
    record (one round trip with a pipelining client), only after an approval."""
    result = await deps.gateway.charge(_charge_request(payment, request_id))
    if not result.approved or payment.reservation_id is None:
        return await settle(payment, result, deps, request_id)
    settled, hold = await asyncio.gather(
        settle(payment, result, deps, request_id),
        deps.reservations.get(payment.reservation_id, payment.order_id),
    )
    if settled.status is PaymentStatus.SUCCEEDED and hold_lost(hold, deps.clock.now()):
        await refund_lost_hold(settled, deps, request_id)  # raises
    return settled


def _charge_request(payment: Payment, request_id: str | None) -> ChargeRequest:
    return ChargeRequest(
        payment.payment_id, payment.amount, payment.payment_method, payment.order_id, request_id
    )


async def charge_and_settle(payment: Payment, deps: Deps, request_id: str | None = None) -> Payment:
    """Steps 5 and 6: charge with the paymentId as idempotency key, then record the
    outcome and its event in one atomic store step. GatewayUnavailable leaves the
    payment pending, to be settled by the retry or the sweep."""
    result = await deps.gateway.charge(_charge_request(payment, request_id))
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
    can be paid again and a late charge with that key cannot happen. A charge found
    for a payment whose seat hold is gone by now is refunded at once, as in ``pay``.
    """
    settled = await settle(payment, await deps.gateway.resolve_charge(payment.payment_id), deps)
    if settled.status is PaymentStatus.SUCCEEDED and payment.reservation_id is not None:
        hold = await deps.reservations.get(payment.reservation_id, payment.order_id)
        if hold_lost(hold, deps.clock.now()):
            try:
                await refund_lost_hold(settled, deps)
            except ReservationExpiredDuringPayment as lost:
                return lost.payment or settled
    return settled
