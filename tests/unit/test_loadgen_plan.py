"""Scenario planning: how many requests of which kind a scenario makes, deterministically."""

from __future__ import annotations

import random

import pytest

from raypay.tools.loadgen.client import RetryPolicy
from raypay.tools.loadgen.plan import (
    DECLINED_ONCE,
    VISA,
    Scenario,
    arrival_offsets,
    plan,
    share,
    traffic,
)

pytestmark = pytest.mark.unit


def test_ratios_pick_exact_counts_of_orders() -> None:
    scenario = Scenario(payments=1000, duplicates=0.05, duplicate_count=2, declines=0.1)
    planned = traffic(plan(scenario))
    assert planned.orders == planned.first == 1000
    assert planned.duplicate == 50 * 2
    assert planned.decline_once_orders == 100
    assert planned.reservation_orders == 300
    assert planned.requests_min == 1100
    assert planned.after_decline_max == 100


def test_the_same_seed_plans_the_same_traffic() -> None:
    scenario = Scenario(payments=500, duplicates=0.2, declines=0.3, seed=7)
    assert plan(scenario) == plan(scenario)


def test_another_seed_picks_other_orders() -> None:
    first = plan(Scenario(payments=500, declines=0.3, seed=1))
    second = plan(Scenario(payments=500, declines=0.3, seed=2))
    assert {p.index for p in first if p.decline_once} != {p.index for p in second if p.decline_once}


def test_declined_orders_carry_the_decline_once_card() -> None:
    plans = plan(Scenario(payments=10, declines=0.5))
    methods = [p.payment_method for p in plans]
    assert methods.count(DECLINED_ONCE) == 5 and methods.count(VISA) == 5


def test_zero_ratios_make_plain_traffic() -> None:
    planned = traffic(plan(Scenario(payments=20, reservations=0)))
    assert (planned.duplicate, planned.decline_once_orders, planned.reservation_orders) == (0, 0, 0)


def test_share_rounds_and_never_exceeds_the_count() -> None:
    rng = random.Random(0)
    assert len(share(3, 0.5, rng)) == 2
    assert share(5, 1.0, rng) == frozenset(range(5))


def test_burst_starts_everything_at_once() -> None:
    assert arrival_offsets(4, "burst") == [0.0] * 4


def test_rate_spaces_orders_evenly() -> None:
    assert arrival_offsets(4, "rate", rate=2.0) == [0.0, 0.5, 1.0, 1.5]


def test_ramp_rises_to_its_end_with_growing_density() -> None:
    offsets = arrival_offsets(100, "ramp", ramp_seconds=10.0)
    assert offsets == sorted(offsets) and offsets[0] == 0.0 and offsets[-1] < 10.0
    first_half = sum(1 for t in offsets if t < 5.0)
    assert first_half == 25  # (5/10)^2 of the orders


@pytest.mark.parametrize(
    "options",
    [
        {"payments": 0},
        {"concurrency": 0},
        {"arrival": "storm"},
        {"arrival": "rate"},
        {"declines": 1.5},
        {"duplicate_count": 0},
    ],
)
def test_impossible_scenarios_are_refused(options: dict) -> None:
    with pytest.raises(ValueError):
        Scenario(**options)


def test_retry_honours_retry_after_within_the_cap() -> None:
    policy, rng = RetryPolicy(base_s=0.1, cap_s=5.0), random.Random(0)
    assert 1.0 <= policy.delay(0, "1", rng) <= 1.1
    assert 5.0 <= policy.delay(0, "120", rng) <= 5.1


def test_retry_without_retry_after_backs_off_with_jitter() -> None:
    policy, rng = RetryPolicy(base_s=0.1, cap_s=5.0), random.Random(0)
    delays = [policy.delay(attempt, None, rng) for attempt in range(10)]
    assert all(0 <= d <= min(5.0, 0.1 * 2**n) for n, d in enumerate(delays))


def test_retry_after_as_a_date_falls_back_to_backoff() -> None:
    delay = RetryPolicy(base_s=0.1).delay(0, "Wed, 21 Oct 2026 07:28:00 GMT", random.Random(0))
    assert 0 <= delay <= 0.1
