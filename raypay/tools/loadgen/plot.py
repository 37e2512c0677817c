"""A run as a picture: latency over time (every request, coloured by status, with p50 and
p99 per second) above a latency histogram. ``.png``/``.svg`` via matplotlib (Agg);
``.html`` is one self-contained page with the PNG inline and the text summary."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from raypay.tools.loadgen.runner import LoadResult
from raypay.tools.loadgen.stats import time_series

COLOURS = {201: "#2e7d32", 200: "#00838f", 402: "#ef6c00", 429: "#ad1457", 503: "#c62828"}


def _colour(status: int) -> str:
    return COLOURS.get(status, "#616161" if status == 0 else "#6a1b9a")


def figure(result: LoadResult):  # -> matplotlib.figure.Figure
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from raypay.tools.loadgen.report import describe

    fig = Figure(figsize=(11, 7.5), layout="constrained")
    over_time, histogram = fig.subplots(2, 1, height_ratios=[3, 2])
    samples = result.samples
    by_status: dict[int, tuple[list[float], list[float]]] = {}
    for sample in samples:
        xs, ys = by_status.setdefault(sample.status, ([], []))
        xs.append(sample.started_s)
        ys.append(sample.latency_s * 1000)
    alpha = 0.6 if len(samples) < 5000 else 0.3
    for status, (xs, ys) in sorted(by_status.items()):
        label = f"{status or 'no answer'} ({len(xs)})"
        over_time.scatter(xs, ys, s=5, alpha=alpha, color=_colour(status), label=label, lw=0)
    rows = time_series(samples)
    if rows:
        ts = [row["t_s"] + 0.5 for row in rows]
        over_time.plot(ts, [row["p50_ms"] for row in rows], color="black", lw=1.2, label="p50/s")
        over_time.plot(ts, [row["p99_ms"] for row in rows], color="purple", lw=1.2, label="p99/s")
    over_time.set_yscale("log")
    over_time.set_xlabel("seconds since the first request")
    over_time.set_ylabel("latency (ms)")
    over_time.legend(loc="upper right", fontsize=8, markerscale=4)
    latency = result.latency
    over_time.set_title(
        f"{result.target['baseUrl']}: {result.payments_per_s:.0f} payments/s, "
        f"{result.requests_per_s:.0f} req/s, p50 {latency.p50_ms:.1f} ms, "
        f"p99 {latency.p99_ms:.1f} ms\n{describe(result)}",
        fontsize=9,
    )
    values = [sample.latency_s * 1000 for sample in samples] or [0.0]
    histogram.hist(values, bins=100, color="#1565c0")
    for name, value in (("p50", latency.p50_ms), ("p90", latency.p90_ms), ("p99", latency.p99_ms)):
        histogram.axvline(value, color="black", ls="--", lw=0.8)
        histogram.annotate(name, (value, 1), xycoords=("data", "axes fraction"), fontsize=8,
                           rotation=90, va="top", ha="right")  # fmt: skip
    histogram.set_xlabel("latency (ms)")
    histogram.set_ylabel("requests")
    return fig


def write_plot(result: LoadResult, path: str | Path) -> None:
    """Write ``path`` as PNG, SVG or HTML, by its suffix."""
    from raypay.tools.loadgen.report import summary_lines

    path = Path(path)
    fig = figure(result)
    suffix = path.suffix.lower()
    if suffix in (".png", ".svg"):
        fig.savefig(path, dpi=110)
        return
    if suffix not in (".html", ".htm"):
        raise ValueError(f"--plot writes .png, .svg or .html, not {path.suffix!r}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    image = base64.b64encode(buffer.getvalue()).decode()
    summary = html.escape("\n".join(summary_lines(result)))
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>raypay load {result.run_id}</title></head><body>"
        f"<h1>raypay load run {result.run_id}</h1><pre>{summary}</pre>"
        f"<img alt='latency over time and histogram' src='data:image/png;base64,{image}'>"
        "</body></html>\n"
    )
