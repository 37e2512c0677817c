"""The invariants of a cancelled-event run (every paid order refunded in batches), checked
over plain facts, like invariants.py; :mod:`raypay.tools.loadgen.cancelled` gathers them.

    refunded within the charge   each payment: refunded <= charged, refunded == the sum
                                 of its succeeded refunds, nothing set aside any more
    one event per refund         each settled refund has exactly one eventId, of its type;
                                 no event for an unknown refund (redeliveries allowed)
    no refund pending            every refund of the run is settled
    every payment refunded       each paid payment is refunded in full
    every ticket voided          `raypay fulfill`'s ticket of each paid payment is void
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from raypay.tools.loadgen.invariants import Check, _check

REFUND_EVENTS = {"succeeded": "refund-succeeded", "failed": "refund-failed"}


@dataclass(frozen=True, slots=True)
class PaymentMoney:
    payment_id: str
    order_id: str
    amount_minor: int
    refunded_minor: int
    set_aside_minor: int  # amountRefundingMinor: pending refunds' amounts


@dataclass(frozen=True, slots=True)
class RefundFact:
    refund_id: str
    payment_id: str
    status: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class RefundEventFact:
    event_id: str
    refund_id: str
    event_type: str


@dataclass
class RefundEvidence:
    payments: list[PaymentMoney]
    refunds: list[RefundFact] = field(default_factory=list)
    events: list[RefundEventFact] = field(default_factory=list)
    tickets: dict[str, str | None] = field(default_factory=dict)  # paymentId -> status


def refunded_within_charge(evidence: RefundEvidence) -> Check:
    succeeded: dict[str, int] = defaultdict(int)
    for refund in evidence.refunds:
        if refund.status == "succeeded":
            succeeded[refund.payment_id] += refund.amount_minor
    violations = []
    for p in evidence.payments:
        if p.refunded_minor > p.amount_minor:
            violations.append(f"{p.payment_id}: refunded {p.refunded_minor} > {p.amount_minor}")
        if p.refunded_minor != succeeded[p.payment_id]:
            violations.append(
                f"{p.payment_id}: refunded {p.refunded_minor}, its refunds sum to "
                f"{succeeded[p.payment_id]}"
            )
        if p.set_aside_minor:
            violations.append(f"{p.payment_id}: {p.set_aside_minor} still set aside")
    return _check("refunded within the charge", violations, len(evidence.payments), "payments")


def one_event_per_refund(evidence: RefundEvidence) -> Check:
    refunds = {r.refund_id: r for r in evidence.refunds}
    event_ids: dict[str, set[str]] = defaultdict(set)
    violations = []
    for event in {e.event_id: e for e in evidence.events}.values():
        refund = refunds.get(event.refund_id)
        if refund is None:
            violations.append(f"event {event.event_id}: unknown refund {event.refund_id}")
            continue
        if REFUND_EVENTS.get(refund.status) != event.event_type:
            violations.append(f"event {event.event_id}: {event.event_type}, refund {refund.status}")
        event_ids[event.refund_id].add(event.event_id)
    settled = [r for r in evidence.refunds if r.status in REFUND_EVENTS]
    for refund in settled:
        found = event_ids.get(refund.refund_id, set())
        if len(found) != 1:
            violations.append(f"{refund.refund_id} ({refund.status}): {len(found)} events")
    deliveries = Counter(e.event_id for e in evidence.events)
    redelivered = sum(n - 1 for n in deliveries.values() if n > 1)
    note = f"; {redelivered} redeliveries of an eventId" if redelivered else ""
    return _check("one event per refund", violations, len(settled), "settled refunds", note)


def no_refund_pending(evidence: RefundEvidence) -> Check:
    violations = [
        f"{r.payment_id} {r.refund_id} is {r.status}"
        for r in evidence.refunds
        if r.status not in REFUND_EVENTS
    ]
    return _check("no refund pending", violations, len(evidence.refunds), "refunds")


def every_payment_refunded(evidence: RefundEvidence) -> Check:
    violations = [
        f"{p.order_id} {p.payment_id}: {p.refunded_minor} of {p.amount_minor} refunded"
        for p in evidence.payments
        if p.refunded_minor != p.amount_minor
    ]
    return _check("every payment refunded", violations, len(evidence.payments), "payments")


def every_ticket_voided(evidence: RefundEvidence) -> Check:
    violations = [
        f"{p.order_id} {p.payment_id}: ticket {evidence.tickets.get(p.payment_id)}"
        for p in evidence.payments
        if evidence.tickets.get(p.payment_id) != "void"
    ]
    return _check("every ticket voided", violations, len(evidence.payments), "payments")


CHECKS = (
    refunded_within_charge,
    one_event_per_refund,
    no_refund_pending,
    every_payment_refunded,
    every_ticket_voided,
)


def check_all(evidence: RefundEvidence) -> list[Check]:
    return [check(evidence) for check in CHECKS]
