"""Load-tool numbers: percentiles, latency summary, status mix, time series."""

from __future__ import annotations

import math

import pytest

from raypay.tools.loadgen.stats import Sample, percentile, rate, status_mix, summarize, time_series

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_closest_ranks_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile(values, 100) == 4.0


def test_percentile_does_not_need_sorted_input() -> None:
    assert percentile([9.0, 1.0, 5.0], 50) == 5.0


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


def test_percentile_outside_0_to_100_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_p99_of_a_hundred_values_sits_near_the_top() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == pytest.approx(99.01)


def test_summary_reports_milliseconds() -> None:
    summary = summarize([0.001 * v for v in range(1, 101)])
    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p90_ms == pytest.approx(90.1)
    assert summary.max_ms == pytest.approx(100.0)
    assert summary.mean_ms == pytest.approx(50.5)


def test_summary_of_no_samples_is_nan_not_an_error() -> None:
    summary = summarize([])
    assert summary.count == 0 and math.isnan(summary.p99_ms)


def test_status_mix_counts_codes_in_order() -> None:
    samples = [Sample(0, 0.01, code) for code in (201, 201, 503, 402, 0, 201)]
    assert status_mix(samples) == {"0": 1, "201": 3, "402": 1, "503": 1}


def test_rate_is_zero_without_elapsed_time() -> None:
    assert rate(10, 0.0) == 0.0
    assert rate(10, 2.0) == 5.0


def test_time_series_buckets_by_start_second() -> None:
    samples = [Sample(0.1, 0.010, 201), Sample(0.9, 0.030, 201), Sample(2.5, 0.020, 201)]
    rows = time_series(samples)
    assert [row["t_s"] for row in rows] == [0.0, 2.0]
    assert [row["requests"] for row in rows] == [2, 1]
    assert rows[0]["p50_ms"] == pytest.approx(20.0)
