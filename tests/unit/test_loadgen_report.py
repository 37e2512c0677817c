"""What a load run shows: the text summary, the JSON, the picture (fabricated results)."""

from __future__ import annotations

import json

import pytest

from raypay.tools.loadgen.client import OrderResult
from raypay.tools.loadgen.invariants import Check
from raypay.tools.loadgen.plan import Scenario, plan, traffic
from raypay.tools.loadgen.report import summary_lines, write_json
from raypay.tools.loadgen.runner import LoadResult
from raypay.tools.loadgen.stats import Sample

pytestmark = pytest.mark.unit


def fabricated(ok: bool = True) -> LoadResult:
    scenario = Scenario(payments=4, concurrency=2, declines=0.25)
    samples = [Sample(0.0, 0.010, 201), Sample(0.1, 0.020, 402, "first"), Sample(0.2, 0.030, 503)]
    samples += [Sample(0.5, 0.015, 201, "after_decline"), Sample(0.6, 0.012, 201)]
    orders = [OrderResult(f"o{i}", {f"p{i}"}, [201]) for i in range(4)]
    orders[1].unexpected.append("402 b'{}'")
    checks = [Check("charged at most once", True, "4 orders checked")]
    checks.append(Check("every order paid", ok, "ok" if ok else "1 of 4 orders violate it"))
    return LoadResult(
        "lt0001", scenario, traffic(plan(scenario)), {"baseUrl": "http://x"}, "aiohttp",
        2.0, 0.1, 0.5, samples, orders, checks,
    )  # fmt: skip


def test_summary_shows_throughput_percentiles_mix_and_checks() -> None:
    text = "\n".join(summary_lines(fabricated()))
    assert "2.0 payments/s" in text and "2.5 requests/s" in text
    assert "p50 15.0" in text and "max 30.0" in text
    assert "201: 3  402: 1  503: 1" in text
    assert "ok   charged at most once" in text and text.rstrip().endswith("ok")


def test_errors_count_503s_and_unplanned_402s() -> None:
    assert fabricated().errors == 2


def test_a_failed_check_fails_the_run() -> None:
    result = fabricated(ok=False)
    assert not result.ok
    assert "INVARIANT VIOLATED" in "\n".join(summary_lines(result))


def test_json_holds_figures_and_every_sample(tmp_path) -> None:
    write_json(fabricated(), tmp_path / "run.json")
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["paymentsPerSecond"] == 2.0 and data["statusMix"]["503"] == 1
    assert data["samples"]["status"] == [201, 402, 503, 201, 201]


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_plot_writes_a_picture(tmp_path, suffix: str) -> None:
    pytest.importorskip("matplotlib")
    from raypay.tools.loadgen.plot import write_plot

    write_plot(fabricated(), tmp_path / f"run{suffix}")
    written = (tmp_path / f"run{suffix}").read_bytes()
    assert written.startswith(b"\x89PNG") if suffix == ".png" else b"data:image/png" in written
