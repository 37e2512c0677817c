"""The chaos run's fault schedule: seeded, every couple of seconds, a broker kill always,
and no server killed again before the supervisor could call it stable."""

from __future__ import annotations

import pytest

from raypay.tools import up
from raypay.tools.chaos.schedule import KINDS, make_schedule, summary

pytestmark = pytest.mark.unit


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    assert make_schedule(7, 120) == make_schedule(7, 120)
    assert make_schedule(7, 120) != make_schedule(8, 120)


@pytest.mark.parametrize("seed", range(20))
def test_a_fault_every_couple_of_seconds_over_the_whole_run(seed):
    faults = make_schedule(seed, 40)
    times = [f.at_s for f in faults]
    assert times[0] == 2.0 and times[-1] < 40 and times == sorted(times)
    assert all(1.5 <= b - a <= 2.5 for a, b in zip(times, times[1:], strict=False))
    assert {f.kind for f in faults} <= set(KINDS)


@pytest.mark.parametrize("seed", range(50))
def test_every_run_kills_the_broker_at_least_once(seed):
    assert summary(make_schedule(seed, 40)).get("kill-broker", 0) >= 1


@pytest.mark.parametrize("seed", range(20))
def test_a_server_is_killed_again_only_after_the_supervisor_counts_it_stable(seed):
    faults = make_schedule(seed, 300)
    for kind in ("kill-redis", "kill-broker"):
        times = [f.at_s for f in faults if f.kind == kind]
        assert all(b - a > up.STABLE_S for a, b in zip(times, times[1:], strict=False))


def test_a_long_run_has_every_kind_of_fault_and_pauses_are_brief():
    faults = make_schedule(1, 120)
    assert set(summary(faults)) == set(KINDS)
    assert all(0.5 <= f.pause_s <= 2.0 for f in faults if f.kind.startswith("pause-"))
