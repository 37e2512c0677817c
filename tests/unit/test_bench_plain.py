"""The plain scenario's arithmetic (raypay.tools.bench): CPU per role between two
snapshots, and the lines it prints."""

from __future__ import annotations

import pytest

from raypay.tools.bench.plain import PlainReport
from raypay.tools.bench.run import plain_figures
from raypay.tools.bench.wrk import WrkResult, ticks_between

pytestmark = pytest.mark.unit


def test_cpu_is_counted_per_role_and_a_new_process_from_zero():
    before = {(1, 10): ("shards", 100), (2, 20): ("redis", 50)}
    after = {(1, 10): ("shards", 160), (2, 20): ("redis", 55), (3, 30): ("shards", 7)}
    assert ticks_between(before, after) == {"shards": 67, "redis": 5}


def test_a_reused_pid_is_a_new_process():
    before = {(1, 10): ("shards", 100)}
    after = {(1, 99): ("shards", 4)}  # same PID, later start time
    assert ticks_between(before, after) == {"shards": 4}


def test_the_lines_give_cpu_per_role_and_the_redis_ceiling():
    report = PlainReport(
        rest_cores=0.1,
        result=WrkResult(12_000, 10.0, 100.0, 150.0, 400.0, 900.0, 0, 0),
        cpu_ms_by_role={"ingress": 0.5, "shards": 0.3, "redis": 0.125},
    )
    report.checks = []
    lines = dict(plain_figures("raypay", report))
    assert lines["raypay_throughput_rps"] == "1200.0"
    assert lines["raypay_cpu_ms_per_payment"] == "0.925"
    assert lines["raypay_cpu_ms_per_payment[ingress]"] == "0.500"
    assert lines["raypay_redis_bound_rps"] == "8000"
    assert lines["raypay_cpu_cores_at_rest"] == "0.100"
    assert lines["raypay_invariants"] == "FAILED"  # no checks ran: never "ok"
