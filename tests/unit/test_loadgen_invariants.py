"""Invariant checks of a load run, on fabricated facts."""

from __future__ import annotations

import pytest

from raypay.tools.loadgen.invariants import (
    EventFact,
    Evidence,
    PaymentFact,
    answers_agree,
    charged_at_most_once,
    charged_exactly_once,
    charges_match_outcomes,
    check_all,
    every_order_paid,
    no_payment_pending,
    one_event_per_outcome,
    outbox_drained,
)

pytestmark = pytest.mark.unit


def paid(order: str, payment: str) -> PaymentFact:
    return PaymentFact(payment, order, "succeeded")


def declined(order: str, payment: str, code: str = "card_declined") -> PaymentFact:
    return PaymentFact(payment, order, "failed", code)


def event(payment: PaymentFact, event_id: str | None = None) -> EventFact:
    kind = "payment-succeeded" if payment.status == "succeeded" else "payment-failed"
    return EventFact(
        event_id or f"evt-{payment.payment_id}", payment.payment_id, payment.order_id, kind
    )


def healthy() -> Evidence:
    """o1 paid at once; o2 declined once, then paid."""
    p1, p2a, p2b = paid("o1", "p1"), declined("o2", "p2a"), paid("o2", "p2b")
    return Evidence(
        order_ids=["o1", "o2"],
        payments={"o1": [p1], "o2": [p2a, p2b]},
        charges={"o1": 1, "o2": 2},
        events=[event(p1), event(p2a), event(p2b)],
        answered={"o1": {"p1"}, "o2": {"p2b"}},
    )


def test_a_healthy_run_passes_every_check() -> None:
    checks = check_all(healthy())
    assert [c.name for c in checks if not c.ok] == []
    assert len(checks) == 7


def test_two_succeeded_payments_for_one_order_is_a_double_charge() -> None:
    evidence = healthy()
    evidence.payments["o1"].append(paid("o1", "p1bis"))
    check = charged_at_most_once(evidence)
    assert not check.ok and "o1" in check.violations[0]


def test_a_charge_without_a_recorded_outcome_is_caught() -> None:
    evidence = healthy()
    evidence.charges["o1"] = 2
    check = charges_match_outcomes(evidence)
    assert not check.ok and check.violations == ("o1: 2 charges, 1 recorded outcomes",)


def test_an_abandoned_attempt_was_never_charged() -> None:
    evidence = healthy()
    evidence.payments["o1"].insert(0, declined("o1", "p0", "abandoned"))
    evidence.events.append(event(evidence.payments["o1"][0]))
    assert charges_match_outcomes(evidence).ok


def test_a_missing_event_is_caught() -> None:
    evidence = healthy()
    evidence.events = evidence.events[1:]
    check = one_event_per_outcome(evidence)
    assert not check.ok and "p1" in check.violations[0]


def test_two_event_ids_for_one_outcome_are_caught() -> None:
    evidence = healthy()
    evidence.events.append(event(evidence.payments["o1"][0], "evt-other"))
    assert not one_event_per_outcome(evidence).ok


def test_a_redelivered_event_id_is_allowed_and_counted() -> None:
    evidence = healthy()
    evidence.events.append(evidence.events[0])
    check = one_event_per_outcome(evidence)
    assert check.ok and "1 redeliveries" in check.detail


def test_an_event_of_the_wrong_type_is_caught() -> None:
    evidence = healthy()
    evidence.events[0] = EventFact("evt-p1", "p1", "o1", "payment-failed")
    assert not one_event_per_outcome(evidence).ok


def test_an_event_for_an_unknown_payment_is_caught() -> None:
    evidence = healthy()
    evidence.events.append(EventFact("evt-x", "px", "o1", "payment-succeeded"))
    assert not one_event_per_outcome(evidence).ok


def test_a_pending_payment_is_caught() -> None:
    evidence = healthy()
    evidence.payments["o1"].append(PaymentFact("p9", "o1", "pending"))
    assert not no_payment_pending(evidence).ok


def test_answers_naming_another_payment_are_caught() -> None:
    evidence = healthy()
    evidence.answered["o1"] = {"p1", "p-other"}
    assert not answers_agree(evidence).ok


def test_an_order_left_unpaid_is_caught() -> None:
    evidence = healthy()
    evidence.payments["o2"] = [declined("o2", "p2a")]
    assert not every_order_paid(evidence).ok


def test_events_still_in_the_outbox_fail_the_drain_check() -> None:
    evidence = healthy()
    evidence.outbox_depth = 3
    assert not outbox_drained(evidence).ok


def test_violations_shown_are_bounded() -> None:
    evidence = Evidence(order_ids=[f"o{i}" for i in range(50)])
    check = every_order_paid(evidence)
    assert not check.ok and len(check.violations) == 10 and check.detail.startswith("50 of 50")


def test_exactly_once_wants_one_succeeded_payment_and_one_charge_per_order() -> None:
    # A chaos run declines nothing: o2's decline-then-pay is two charges there.
    evidence = healthy()
    check = charged_exactly_once(evidence)
    assert not check.ok and check.violations == ("o2: 1 succeeded payments, 2 charges",)
    evidence.order_ids, evidence.charges = ["o1"], {"o1": 1}
    assert charged_exactly_once(evidence).ok
    evidence.payments["o1"] = [PaymentFact("p1", "o1", "pending")]
    assert not charged_exactly_once(evidence).ok
