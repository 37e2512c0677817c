"""In-memory fakes of the ports in ``raypay.domain.ports``, for workflow tests without Redis.

Each fake keeps the semantics its Protocol documents, and no more.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from raypay.domain.errors import GatewayUnavailable, PaymentNotRefundable, RefundExceedsPayment
from raypay.domain.events import PaymentEvent, RefundEvent
from raypay.domain.model import Order, Payment, PaymentRequest, PaymentStatus, Reservation
from raypay.domain.money import Money
from raypay.domain.ports import (
    Begun,
    ChargeRequest,
    ChargeResult,
    RefundBegun,
    RefundCharge,
    RefundResult,
)
from raypay.domain.refunds import Refund, RefundStatus, with_refund
from raypay.domain.workflow import Deps


class FakeOrders:
    def __init__(self, *orders: Order) -> None:
        self.orders = {order.order_id: order for order in orders}

    def add(self, order: Order) -> None:
        self.orders[order.order_id] = order

    async def get(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)


class FakeReservations:
    def __init__(self, *reservations: Reservation) -> None:
        self.reservations = {r.reservation_id: r for r in reservations}

    def add(self, reservation: Reservation) -> None:
        self.reservations[reservation.reservation_id] = reservation

    async def get(self, reservation_id: str, order_id: str) -> Reservation | None:
        return self.reservations.get(reservation_id)


class FakePayments:
    """A PaymentStore: one pending-or-succeeded guard per order, and an outbox list."""

    def __init__(self) -> None:
        self.payments: dict[str, Payment] = {}
        self.by_order: dict[str, list[str]] = defaultdict(list)
        self.outbox: list[PaymentEvent | RefundEvent] = []
        self.released: set[str] = set()  # succeeded payments that no longer count for their order

    def _current(self, order_id: str) -> Payment | None:
        """The order's succeeded payment (unless released), else its pending one."""
        for wanted in (PaymentStatus.SUCCEEDED, PaymentStatus.PENDING):
            for payment_id in self.by_order[order_id]:
                if self.payments[payment_id].status is wanted and payment_id not in self.released:
                    return self.payments[payment_id]
        return None

    async def succeeded_for(self, order_id: str) -> Payment | None:
        current = self._current(order_id)
        return current if current and current.status is PaymentStatus.SUCCEEDED else None

    async def begin(self, payment: Payment) -> Begun:
        if (current := self._current(payment.order_id)) is not None:
            return Begun(current, created=False)
        self.payments[payment.payment_id] = payment
        self.by_order[payment.order_id].append(payment.payment_id)
        return Begun(payment, created=True)

    async def settle(self, payment: Payment, event: PaymentEvent) -> Payment:
        stored = self.payments[payment.payment_id]
        if stored.status is not PaymentStatus.PENDING:
            return stored
        self.payments[payment.payment_id] = payment
        self.outbox.append(event)
        return payment

    async def get(self, payment_id: str) -> Payment | None:
        return self.payments.get(payment_id)

    async def list_for_order(self, order_id: str) -> list[Payment]:
        return [self.payments[payment_id] for payment_id in self.by_order[order_id]]


class FakeRefunds:
    """A RefundStore over FakePayments: amounts set aside while pending, the payment's
    refunded amount kept on it, and the same outbox list."""

    def __init__(self, payments: FakePayments) -> None:
        self.payments = payments
        self.refunds: dict[str, Refund] = {}
        self.by_payment: dict[str, list[str]] = defaultdict(list)

    def _taken(self, payment_id: str) -> int:
        return sum(
            self.refunds[refund_id].amount.minor
            for refund_id in self.by_payment[payment_id]
            if self.refunds[refund_id].status is not RefundStatus.FAILED
        )

    async def begin(self, refund: Refund, release_order: bool = False) -> RefundBegun:
        if (existing := self.refunds.get(refund.refund_id)) is not None:
            return RefundBegun(existing, created=False)
        payment = self.payments.payments[refund.payment_id]
        if payment.status is not PaymentStatus.SUCCEEDED:
            raise PaymentNotRefundable(f"payment {payment.payment_id} is {payment.status}")
        if self._taken(payment.payment_id) + refund.amount.minor > payment.amount.minor:
            raise RefundExceedsPayment("more than is left")
        self.refunds[refund.refund_id] = refund
        self.by_payment[refund.payment_id].append(refund.refund_id)
        if release_order:
            self.payments.released.add(refund.payment_id)
        return RefundBegun(refund, created=True)

    async def settle(self, refund: Refund, event: RefundEvent) -> Refund:
        stored = self.refunds[refund.refund_id]
        if stored.status is not RefundStatus.PENDING:
            return stored
        self.refunds[refund.refund_id] = refund
        payment = self.payments.payments[refund.payment_id]
        self.payments.payments[refund.payment_id] = with_refund(payment, refund)
        self.payments.outbox.append(event)
        return refund

    async def get(self, refund_id: str) -> Refund | None:
        return self.refunds.get(refund_id)

    async def list_for_payment(self, payment_id: str) -> list[Refund]:
        return [self.refunds[refund_id] for refund_id in self.by_payment[payment_id]]


ABANDONED = ChargeResult(approved=False, decline_code="abandoned", message="abandoned")


class FakeGateway:
    """Charges once per idempotency key; can be told to decline or be unavailable once."""

    def __init__(self) -> None:
        self.ledger: dict[str, ChargeResult] = {}
        self.counted: list[str] = []  # keys of real charge attempts, in order
        self.calls: list[ChargeRequest] = []
        self._next_decline: tuple[str, str] | None = None
        self._next_outage: bool | None = None  # None: no outage; True: charged first
        self._txn = itertools.count(1)
        self.refund_ledger: dict[str, RefundResult] = {}
        self.refunded: list[str] = []  # keys of refunds made, in order
        self.refund_calls: list[RefundCharge] = []
        self._next_refund_decline: tuple[str, str] | None = None
        self._next_refund_outage: bool | None = None

    def decline_next(self, code: str = "card_declined", message: str = "declined") -> None:
        self._next_decline = (code, message)

    def unavailable_next(self, charged: bool = False) -> None:
        """The next call raises GatewayUnavailable; ``charged``: after charging (a timeout)."""
        self._next_outage = charged

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        self.calls.append(request)
        if (earlier := self.ledger.get(request.idempotency_key)) is not None:
            return earlier
        outage, self._next_outage = self._next_outage, None
        if outage is False:
            raise GatewayUnavailable("gateway down, nothing charged")
        if self._next_decline is not None:
            code, message = self._next_decline
            self._next_decline = None
            result = ChargeResult(approved=False, decline_code=code, message=message)
        else:
            result = ChargeResult(approved=True, transaction_id=f"txn_{next(self._txn)}")
        self.ledger[request.idempotency_key] = result
        self.counted.append(request.idempotency_key)
        if outage is True:
            raise GatewayUnavailable("gateway timed out after charging")
        return result

    async def resolve_charge(self, idempotency_key: str) -> ChargeResult:
        return self.ledger.setdefault(idempotency_key, ABANDONED)

    def decline_next_refund(self, code: str = "expired_or_canceled_card", message: str = "no"):
        self._next_refund_decline = (code, message)

    def refund_unavailable_next(self, refunded: bool = False) -> None:
        """The next refund raises GatewayUnavailable; ``refunded``: after refunding."""
        self._next_refund_outage = refunded

    async def refund(self, request: RefundCharge) -> RefundResult:
        self.refund_calls.append(request)
        if (earlier := self.refund_ledger.get(request.idempotency_key)) is not None:
            return earlier
        outage, self._next_refund_outage = self._next_refund_outage, None
        if outage is False:
            raise GatewayUnavailable("gateway down, nothing refunded")
        if self._next_refund_decline is not None:
            code, message = self._next_refund_decline
            self._next_refund_decline = None
            result = RefundResult(succeeded=False, decline_code=code, message=message)
        else:
            result = RefundResult(succeeded=True, gateway_refund_id=f"gre_{next(self._txn)}")
        self.refund_ledger[request.idempotency_key] = result
        self.refunded.append(request.idempotency_key)
        if outage is True:
            raise GatewayUnavailable("gateway timed out after refunding")
        return result


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class SequentialIds:
    """``ids("pay")`` -> ``pay_1``, ``pay_2``, ...: one counter per prefix."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))

    def __call__(self, prefix: str, vshard: int | None = None) -> str:
        return f"{prefix}_{next(self._counters[prefix])}"


@dataclass
class FakeWorld:
    """All the fakes one workflow test needs, and the Deps that wire them."""

    clock: FixedClock
    orders: FakeOrders = field(default_factory=FakeOrders)
    reservations: FakeReservations = field(default_factory=FakeReservations)
    payments: FakePayments = field(default_factory=FakePayments)
    gateway: FakeGateway = field(default_factory=FakeGateway)
    ids: SequentialIds = field(default_factory=SequentialIds)
    refunds: FakeRefunds = field(init=False)

    def __post_init__(self) -> None:
        self.refunds = FakeRefunds(self.payments)

    @property
    def deps(self) -> Deps:
        return Deps(
            orders=self.orders,
            reservations=self.reservations,
            payments=self.payments,
            refunds=self.refunds,
            gateway=self.gateway,
            clock=self.clock,
            ids=self.ids,
        )


# A checkout: order ord_1 of cus_1 for USD 40.00 awaiting payment, with seat reservation res_1.
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
USD_40 = Money(4000, "USD")


def a_checkout(now: datetime = NOW) -> FakeWorld:
    world = FakeWorld(clock=FixedClock(now))
    world.orders.add(Order("ord_1", "cus_1", USD_40, "pending_payment"))
    expires_at = now + timedelta(minutes=15)
    world.reservations.add(Reservation("res_1", "ord_1", "cus_1", "active", expires_at))
    return world


def a_request(**changes: Any) -> PaymentRequest:
    """The customer's request to pay ord_1, with ``changes``."""
    return replace(PaymentRequest("ord_1", "cus_1", USD_40, "pm_card_visa", "res_1"), **changes)
