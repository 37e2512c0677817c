"""The soak's arithmetic: durations, the RSS slope, the figures it prints."""

from __future__ import annotations

import math

import pytest

from raypay.tools.bench.soak import Reading, SoakReport, parse_duration, slope

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), ("1.5m", 90)]
)
def test_a_duration_in_seconds_minutes_or_hours(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10 minutes", "-1m", "m"])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_slope_of_a_line_and_of_too_few_points():
    assert slope([(0, 100.0), (1, 102.0), (2, 104.0)]) == pytest.approx(2.0)
    assert slope([(0, 5.0), (1, 5.0)]) == 0.0
    assert math.isnan(slope([(3, 1.0)]))


def reading(at_s: float, paid: int, grow: float) -> Reading:
    rss = {"ingress": 300.0, "shards": 400.0, "gateway": 150.0, "producer": 150.0,
           "redis": 50.0 + grow, "broker": 30.0 + grow / 2}  # fmt: skip
    return Reading(at_s, paid, rss, {role: 1 for role in rss}, 10.0 + grow, 0)


def test_the_figures_say_flat_for_raypay_and_growth_per_thousand_for_the_data():
    report = SoakReport(max_rps=1000.0, rate_rps=700.0, seconds=120.0)
    report.readings = [reading(0, 0, 0.0), reading(60, 42_000, 21.0), reading(120, 84_000, 42.0)]
    report.checks = []
    figures = dict(report.figures())
    assert figures["soak_rss_slope_mb_per_min[ingress]"] == "0.000"
    assert figures["soak_rss_growth_mb_per_1k_payments[redis]"] == "0.500"
    assert figures["soak_rss_growth_mb_per_1k_payments[broker]"] == "0.250"
    assert figures["soak_redis_used_growth_mb_per_1k_payments"] == "0.500"
    assert (figures["soak_payments"], figures["soak_errors"]) == ("84000", "0")
    assert figures["soak_achieved_rps"] == "700.0"
