"""The small interfaces the payment and refund workflows talk to. Adapters implement them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from raypay.domain.events import PaymentEvent, RefundEvent
from raypay.domain.model import Order, Payment, Reservation
from raypay.domain.money import Money
from raypay.domain.pickling import by_fields
from raypay.domain.refunds import Refund
from raypay.domain.sharding import scoped_id


class OrderStore(Protocol):
    async def get(self, order_id: str) -> Order | None:
        """The order as the upstream order service wrote it, or None."""


class ReservationStore(Protocol):
    async def get(self, reservation_id: str, order_id: str) -> Reservation | None:
        """The seat reservation as the upstream service wrote it, or None. ``order_id``:
        the order it is asked for (the store finds a reservation beside its order)."""


@dataclass(frozen=True, slots=True)
class Begun:
    """What ``PaymentStore.begin`` found: the new pending payment, or what blocks it."""

    payment: Payment
    created: bool


class PaymentStore(Protocol):
    async def succeeded_for(self, order_id: str) -> Payment | None:
        """The order's succeeded payment, if there is one."""

    async def begin(self, payment: Payment) -> Begun:
        """Atomically record ``payment`` as the order's pending payment.

        If the order already has a succeeded or a pending payment, nothing is written
        and that payment is returned with ``created=False``. This is the guard that
        keeps two shards from ever paying one order twice.
        """

    async def settle(self, payment: Payment, event: PaymentEvent) -> Payment:
        """Atomically record the outcome and queue its event in the outbox.

        Settling an already settled payment writes nothing and returns the stored one,
        so each payment has one recorded outcome and one event.
        """

    async def get(self, payment_id: str) -> Payment | None: ...

    async def list_for_order(self, order_id: str) -> list[Payment]: ...


@by_fields
@dataclass(frozen=True, slots=True)
class RefundBegun:
    """What ``RefundStore.begin`` found: the new pending refund, or the one with its id."""

    refund: Refund
    created: bool


class RefundStore(Protocol):
    async def begin(self, refund: Refund, release_order: bool = False) -> RefundBegun:
        """Atomically record ``refund`` as pending and set its amount aside on its payment.

        ``release_order``: in the same step the payment stops being its order's succeeded
        payment, so the order can be paid again (a payment whose seat hold was lost).

        Raises PaymentNotRefundable unless the payment succeeded, and RefundExceedsPayment
        if the amount is more than is left (charged, less refunded, less set aside): the
        guard that keeps a payment's refunds within its charge, concurrent ones included.
        A refund with this refundId already recorded is returned with ``created=False``,
        and nothing is written.
        """

    async def settle(self, refund: Refund, event: RefundEvent) -> Refund:
        """Atomically record the outcome, move the set-aside amount to the payment's
        refunded amount (succeeded) or back (failed), and queue the event in the outbox.

        Settling an already settled refund writes nothing and returns the stored one.
        """

    async def get(self, refund_id: str) -> Refund | None: ...

    async def list_for_payment(self, payment_id: str) -> list[Refund]:
        """The payment's refunds, oldest first."""


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    idempotency_key: str
    amount: Money
    payment_method: str
    reference: str = ""  # the orderId, as a real gateway's metadata
    request_id: str | None = None  # the client's request id, for the gateway's logs


@by_fields
@dataclass(frozen=True, slots=True)
class ChargeResult:
    approved: bool
    transaction_id: str | None = None
    decline_code: str | None = None
    message: str | None = None
    simulated: bool = True


@dataclass(frozen=True, slots=True)
class RefundCharge:
    """A refund of (part of) an earlier charge."""

    idempotency_key: str  # the refundId
    charge_key: str  # the charge's idempotency key: the paymentId
    transaction_id: str  # the charge's id at the gateway
    amount: Money
    payment_method: str
    reference: str = ""  # the orderId
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    succeeded: bool
    gateway_refund_id: str | None = None
    decline_code: str | None = None
    message: str | None = None


class Gateway(Protocol):
    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge once per idempotency key: a repeated key returns the first result.

        Raises GatewayUnavailable on timeout or error; the charge may or may not
        have happened, and a retry with the same key settles it.
        """

    async def resolve_charge(self, idempotency_key: str) -> ChargeResult:
        """The result of the charge made with this key; if none was made, the key is
        closed with a declined ``abandoned`` result, so a late charge cannot happen."""

    async def refund(self, request: RefundCharge) -> RefundResult:
        """Refund once per idempotency key (the refundId): a repeated key returns the
        first result, so a retried refund never pays back twice.

        Raises GatewayUnavailable on timeout or error; the refund may or may not have
        happened, and a retry with the same key settles it. A refund is owed, so the
        retry (or the sweep) asks again rather than closing the key.
        """


class Clock(Protocol):
    def now(self) -> datetime: ...


def new_id(prefix: str, vshard: int | None = None) -> str:
    """A new unique id; with ``vshard``, one that carries it (``pay_vs17_<hex>``)."""
    unique = uuid.uuid4().hex
    return f"{prefix}_{unique}" if vshard is None else scoped_id(prefix, vshard, unique)


@dataclass
class Deps:
    """Every port the payment and refund workflows talk to."""

    orders: OrderStore
    reservations: ReservationStore
    payments: PaymentStore
    refunds: RefundStore
    gateway: Gateway
    clock: Clock
    ids: Callable[..., str] = field(default=new_id)
    """``ids(prefix, vshard=None)``: a new id (new_id)."""
