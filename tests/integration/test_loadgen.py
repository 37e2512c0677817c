"""The load tool's core against the session's Serve app: a small burst with declines
and duplicates, then every invariant read back from Redis and the broker."""

from __future__ import annotations

import json

import pytest

from raypay.tools.loadgen.cancelled import refund_everything
from raypay.tools.loadgen.evidence import Target
from raypay.tools.loadgen.plan import Scenario
from raypay.tools.loadgen.report import summary_lines, write_json
from raypay.tools.loadgen.runner import run_load

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
async def test_a_small_burst_keeps_every_invariant(service, broker, tmp_path):
    settings = service.settings
    target = Target(
        base_url=service.base_url,
        redis_url=settings.redis_url,
        kafka=broker.url,
        key_prefix=settings.key_prefix,
        topics=(settings.topic_succeeded, settings.topic_failed),
        api_key=getattr(service, "api_key", None),  # when the app asks for one
    )
    scenario = Scenario(
        payments=100, concurrency=20, declines=0.1, duplicates=0.1, duplicate_count=2, seed=3
    )

    result = await run_load(target, scenario, drain_timeout_s=20)

    assert result.ok, "\n".join(summary_lines(result))
    assert len(result.orders) == 100
    assert result.unexpected == []
    assert {check.name for check in result.checks} >= {
        "charged at most once", "charges match outcomes", "one event per outcome",
        "no payment pending", "every order paid",
    }  # fmt: skip
    statuses = {sample.status for sample in result.samples}
    assert 402 in statuses and 201 in statuses  # planned declines were declined, then paid
    assert len(result.samples) >= result.planned.requests_min == 120
    write_json(result, tmp_path / "run.json")
    written = json.loads((tmp_path / "run.json").read_text())
    assert written["ok"] is True and len(written["samples"]["latencyMs"]) == len(result.samples)


@pytest.mark.timeout(180)
async def test_a_cancelled_event_refunds_every_order_and_voids_every_ticket(service, broker):
    settings = service.settings
    target = Target(
        base_url=service.base_url,
        redis_url=settings.redis_url,
        kafka=broker.url,
        key_prefix=settings.key_prefix,
        api_key=getattr(service, "api_key", None),
    )
    result = await run_load(target, Scenario(payments=60, concurrency=20, seed=5))

    checks, figures = await refund_everything(
        target, result.run_id, [o.order_id for o in result.orders], lambda _: None, 30
    )

    result.checks += checks
    result.refund_phase = figures
    assert result.ok, "\n".join(summary_lines(result))
    assert (figures["ordersRefunded"], figures["batches"]) == (60, 1)
    assert {c.name for c in checks} == {
        "refunded within the charge", "one event per refund", "no refund pending",
        "every payment refunded", "every ticket voided",
    }  # fmt: skip
    assert any(line.lstrip().startswith("refunds") for line in summary_lines(result))
