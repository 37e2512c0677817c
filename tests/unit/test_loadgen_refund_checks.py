"""The cancelled-event run's invariants (raypay.tools.loadgen.refund_checks) on fabricated
facts: each holds on a clean run and names the violation when broken."""

from __future__ import annotations

from dataclasses import replace

import pytest

from raypay.tools.loadgen.refund_checks import (
    PaymentMoney,
    RefundEventFact,
    RefundEvidence,
    RefundFact,
    check_all,
)

pytestmark = pytest.mark.unit


def clean() -> RefundEvidence:
    payments = [PaymentMoney(f"pay_{n}", f"ord_{n}", 2500, 2500, 0) for n in range(3)]
    refunds = [RefundFact(f"re_{n}", f"pay_{n}", "succeeded", 2500) for n in range(3)]
    events = [RefundEventFact(f"evt_{n}", f"re_{n}", "refund-succeeded") for n in range(3)]
    tickets = {f"pay_{n}": "void" for n in range(3)}
    return RefundEvidence(payments, refunds, events, tickets)


def verdicts(evidence: RefundEvidence) -> dict[str, bool]:
    return {check.name: check.ok for check in check_all(evidence)}


def test_a_clean_run_keeps_every_invariant():
    assert verdicts(clean()) == dict.fromkeys(
        [
            "refunded within the charge",
            "one event per refund",
            "no refund pending",
            "every payment refunded",
            "every ticket voided",
        ],
        True,
    )


def test_a_redelivered_event_is_allowed():
    evidence = clean()
    evidence.events.append(evidence.events[0])
    assert all(verdicts(evidence).values())


@pytest.mark.parametrize(
    ("breakage", "broken"),
    [
        (lambda e: e.payments.__setitem__(0, replace(e.payments[0], refunded_minor=2600)),
         {"refunded within the charge", "every payment refunded"}),
        (lambda e: e.refunds.append(RefundFact("re_x", "pay_0", "succeeded", 100)),
         {"refunded within the charge", "one event per refund"}),
        (lambda e: e.events.append(RefundEventFact("evt_9", "re_0", "refund-succeeded")),
         {"one event per refund"}),
        (lambda e: e.events.append(RefundEventFact("evt_9", "re_nope", "refund-succeeded")),
         {"one event per refund"}),
        (lambda e: e.refunds.__setitem__(0, replace(e.refunds[0], status="pending")),
         {"no refund pending", "refunded within the charge", "one event per refund"}),
        (lambda e: e.payments.__setitem__(1, replace(e.payments[1], set_aside_minor=100)),
         {"refunded within the charge"}),
        (lambda e: e.tickets.__setitem__("pay_2", "issued"), {"every ticket voided"}),
    ],
    ids=["over-refunded", "refund-not-counted", "two-events", "unknown-refund", "pending",
         "set-aside", "ticket-issued"],
)  # fmt: skip
def test_each_violation_is_named(breakage, broken):
    evidence = clean()
    breakage(evidence)
    assert {name for name, ok in verdicts(evidence).items() if not ok} == broken
