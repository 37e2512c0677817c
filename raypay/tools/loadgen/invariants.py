"""The invariants a load run must leave intact, checked over plain facts.

The facts come from Redis (payments per order, the simulator's charge counter), the
broker (every event on both topics) and the client (the paymentIds its 2xx answers
named); :mod:`raypay.tools.loadgen.evidence` gathers them. Here they are only compared, so
the logic is unit-tested on fabricated data.

    charged at most once      no order has more than one succeeded payment
    charges match outcomes    simulator charges of an order == its succeeded + failed
                              payments (an ``abandoned`` attempt was never charged)
    one event per outcome     each settled payment has exactly one eventId, of its
                              type; no event for a pending or unknown payment
                              (redeliveries of one eventId are allowed: at-least-once)
    no payment pending        every payment of the run is settled
    answers agree             every 2xx answer for an order names its succeeded payment
    every order paid          each order ends with a succeeded payment
    outbox drained            nothing of the run waits in the outbox
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

ABANDONED = "abandoned"
EVENT_TYPES = {"succeeded": "payment-succeeded", "failed": "payment-failed"}
SHOWN = 10


@dataclass(frozen=True, slots=True)
class PaymentFact:
    payment_id: str
    order_id: str
    status: str
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class EventFact:
    event_id: str
    payment_id: str
    order_id: str
    event_type: str


@dataclass
class Evidence:
    order_ids: list[str]
    payments: dict[str, list[PaymentFact]] = field(default_factory=dict)
    charges: dict[str, int] = field(default_factory=dict)
    events: list[EventFact] = field(default_factory=list)
    answered: dict[str, set[str]] = field(default_factory=dict)  # paymentIds in 2xx answers
    outbox_depth: int = 0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    violations: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "ok": self.ok, "detail": self.detail,
            "violations": list(self.violations),
        }  # fmt: skip


def _check(name: str, violations: list[str], checked: int, what: str, note: str = "") -> Check:
    detail = f"{checked} {what} checked" if not violations else f"{len(violations)} of {checked}"
    detail += f" {what} violate it" if violations else ""
    return Check(name, not violations, detail + note, tuple(violations[:SHOWN]))


def charged_at_most_once(evidence: Evidence) -> Check:
    violations = []
    for order_id in evidence.order_ids:
        paid = [
            p.payment_id for p in evidence.payments.get(order_id, []) if p.status == "succeeded"
        ]
        if len(paid) > 1:
            violations.append(f"{order_id}: {len(paid)} succeeded payments {paid}")
    return _check("charged at most once", violations, len(evidence.order_ids), "orders")


def charges_match_outcomes(evidence: Evidence) -> Check:
    violations = []
    for order_id in evidence.order_ids:
        payments = evidence.payments.get(order_id, [])
        outcomes = sum(
            1
            for p in payments
            if p.status == "succeeded" or (p.status == "failed" and p.error_code != ABANDONED)
        )
        charges = evidence.charges.get(order_id, 0)
        if charges != outcomes:
            violations.append(f"{order_id}: {charges} charges, {outcomes} recorded outcomes")
    return _check("charges match outcomes", violations, len(evidence.order_ids), "orders")


def one_event_per_outcome(evidence: Evidence) -> Check:
    payments = {p.payment_id: p for ps in evidence.payments.values() for p in ps}
    event_ids: dict[str, set[str]] = defaultdict(set)
    deliveries = Counter(event.event_id for event in evidence.events)
    violations = []
    for event in {e.event_id: e for e in evidence.events}.values():
        payment = payments.get(event.payment_id)
        if payment is None:
            violations.append(f"event {event.event_id}: unknown payment {event.payment_id}")
            continue
        if EVENT_TYPES.get(payment.status) != event.event_type:
            violations.append(
                f"event {event.event_id}: {event.event_type} for a {payment.status} payment"
            )
        event_ids[event.payment_id].add(event.event_id)
    settled = [p for p in payments.values() if p.status in EVENT_TYPES]
    for payment in settled:
        found = event_ids.get(payment.payment_id, set())
        if len(found) != 1:
            violations.append(
                f"{payment.order_id} {payment.payment_id} ({payment.status}): "
                f"{len(found)} events {sorted(found)}"
            )
    redelivered = sum(count - 1 for count in deliveries.values() if count > 1)
    note = f"; {redelivered} redeliveries of an eventId" if redelivered else ""
    return _check("one event per outcome", violations, len(settled), "settled payments", note)


def no_payment_pending(evidence: Evidence) -> Check:
    every = [p for ps in evidence.payments.values() for p in ps]
    violations = [
        f"{p.order_id} {p.payment_id} is {p.status}" for p in every if p.status not in EVENT_TYPES
    ]
    return _check("no payment pending", violations, len(every), "payments")


def answers_agree(evidence: Evidence) -> Check:
    violations = []
    for order_id in evidence.order_ids:
        answered = evidence.answered.get(order_id, set())
        paid = {
            p.payment_id for p in evidence.payments.get(order_id, []) if p.status == "succeeded"
        }
        if answered and answered != paid:
            violations.append(f"{order_id}: answers named {sorted(answered)}, paid {sorted(paid)}")
    return _check("answers agree", violations, len(evidence.order_ids), "orders")


def every_order_paid(evidence: Evidence) -> Check:
    violations = [
        f"{order_id}: no succeeded payment"
        for order_id in evidence.order_ids
        if not any(p.status == "succeeded" for p in evidence.payments.get(order_id, []))
    ]
    return _check("every order paid", violations, len(evidence.order_ids), "orders")


def outbox_drained(evidence: Evidence) -> Check:
    ok = evidence.outbox_depth == 0
    return Check("outbox drained", ok, f"{evidence.outbox_depth} events left in the outbox")


CHECKS = (
    charged_at_most_once,
    charges_match_outcomes,
    one_event_per_outcome,
    no_payment_pending,
    answers_agree,
    every_order_paid,
    outbox_drained,
)


def check_all(evidence: Evidence) -> list[Check]:
    return [check(evidence) for check in CHECKS]


def charged_exactly_once(evidence: Evidence) -> Check:
    """Stricter than ``charged at most once``, for runs whose every order must end paid
    (a chaos run): each order exactly one succeeded payment and one charge."""
    violations = []
    for order_id in evidence.order_ids:
        paid = sum(1 for p in evidence.payments.get(order_id, []) if p.status == "succeeded")
        charges = evidence.charges.get(order_id, 0)
        if (paid, charges) != (1, 1):
            violations.append(f"{order_id}: {paid} succeeded payments, {charges} charges")
    return _check("charged exactly once", violations, len(evidence.order_ids), "orders")
