"""``raypay bench``: start the embedded stack, run a fixed scenario against it and against
a FastAPI peer without Ray, print one line per figure.

    raypay bench                       # 20,000 payments, 200 concurrent buyers (minutes)
    raypay bench --payments 2000       # a quicker look
    raypay bench --only raypay --json bench.json
    raypay bench --project             # on paper: 1-8 nodes of 16 cores, from measured CPU

Lines (stdout, ``name value``): startup_seconds, stack_memory_mb_at_rest (PSS of every
process of the stack), stack_memory_mb_under_load (peak PSS), raypay_throughput_rps
(payments/s), raypay_p50/p90/p99/max_ms, raypay_errors, the same for peer_*, then
ratio_throughput (raypay/peer), ratio_p99, ratio_cpu_per_payment and invariants.
``*_cpu_ms_per_payment`` is the CPU the stack spent per payment; ``*_cpu_other_pct`` the
share of the machine that other processes took meanwhile (it skews every other figure).
Exit code 0 when both sides ran and every invariant held.

    raypay bench --soak 10m            # 70% of the measured maximum for ten minutes: RSS
                                       # per process at start and end, the outbox depth
                                       # over time, every error (raypay/tools/bench/soak.py)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def cmd_soak(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from raypay.tools.bench.soak import parse_duration, run_soak

    try:
        seconds = parse_duration(args.soak)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="raypay-soak-"))
    try:
        return run_soak(seconds, workdir, args.config, args.num_cpus)
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def cmd_project(args: argparse.Namespace) -> int:
    """Print the projection table (raypay/tools/bench/projection.py); starts nothing."""
    from raypay.tools.bench.projection import MEASURED, MEASURED_TOTAL, first_limit, project, table

    cpu = dict(MEASURED)
    for item in args.cpu or []:
        role, _, ms = item.partition("=")
        if role not in cpu:
            print(f"error: --cpu {item}: roles are {', '.join(cpu)}", file=sys.stderr)
            return 2
        cpu[role] = float(ms)
    total = args.total_ms or MEASURED_TOTAL
    rows = project(
        cpu,
        total,
        cores=args.cores,
        masters=args.masters,
        redis_cluster_ms=args.redis_cluster_ms,
        redis_wait_ms=args.redis_wait_ms,
    )
    print(f"CPU ms per payment: {cpu}, all {total}")
    print("\n".join(table(rows, args.masters)))
    print(f"stops scaling first: {first_limit(rows)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.soak:
        return cmd_soak(args)
    if args.project:
        return cmd_project(args)
    from raypay.tools.bench.run import BenchOptions, run
    from raypay.tools.bench.sides import Gateway
    from raypay.tools.loadgen.cli import scenario_from

    try:
        scenario = scenario_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = BenchOptions(
        scenario=scenario, warmup=args.warmup, client=args.client, config=args.config,
        num_cpus=args.num_cpus, workers=args.workers, json_path=args.json,
        sides=tuple(args.only) if args.only else ("raypay", "peer"), keep_dir=args.keep,
        kind=args.scenario, seconds=args.seconds,
        gateway=Gateway(args.gateway_latency_ms, args.gateway_jitter_ms)
        if args.gateway_latency_ms else None,
    )  # fmt: skip
    try:
        return run(options)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130


def add_bench_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the ``raypay`` command's subparsers."""
    from raypay.tools.loadgen.cli import add_scenario_options

    parser = commands.add_parser(
        "bench", help="raypay vs a FastAPI peer on this machine; one line per figure",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_scenario_options(parser, payments=20_000, concurrency=200)
    parser.set_defaults(declines=0.10, duplicates=0.05)
    parser.add_argument("--scenario", choices=["plain", "mixed"], default="plain",
                        help="plain: wrk, each request a new order paid with pm_card_visa "
                        "(--concurrency connections, --seconds long); mixed: the load tool "
                        "with duplicates, declines and reservations")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="the plain scenario's measured window (20)")  # fmt: skip
    parser.add_argument("--gateway-latency-ms", type=float, default=0.0,
                        help="the realistic scenario: each simulated charge takes this long "
                        "(e.g. 150), on both sides")  # fmt: skip
    parser.add_argument("--gateway-jitter-ms", type=float, default=0.0,
                        help="... plus or minus this, uniformly (e.g. 100)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=500, help="payments before measuring")
    parser.add_argument("--only", action="append", choices=["raypay", "peer"],
                        help="measure one side only (repeatable)")  # fmt: skip
    parser.add_argument("--config", help="Serve config for raypay (default: serve_config.yaml)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of raypay's local Ray")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn workers of the peer (default: one per core)")  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="write figures and results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--soak", metavar="DURATION",
                        help="instead: hold 70%% of the measured maximum for DURATION (10m, "
                        "90s, 1h) and print memory per process, the outbox depth over time "
                        "and every error (raypay only)")  # fmt: skip
    project = parser.add_argument_group("projection (--project: on paper, nothing started)")
    project.add_argument(
        "--project",
        action="store_true",
        help="project 1, 2, 4, 8 nodes from the CPU per payment measured",
    )
    project.add_argument(
        "--cpu",
        action="append",
        metavar="ROLE=MS",
        help="a role's ms per payment (ingress, shards, redis, gateway, "
        "producer); default: docs/benchmark.md's medians",
    )
    project.add_argument("--total-ms", type=float, help="all CPU per payment (1.654)")
    project.add_argument("--cores", type=int, default=16, help="cores per node (16)")
    project.add_argument("--masters", type=int, default=3, help="Redis Cluster masters (3)")
    project.add_argument(
        "--redis-cluster-ms",
        type=float,
        help="Redis CPU per payment on a cluster master, without WAIT",
    )
    project.add_argument("--redis-wait-ms", type=float, help="... with WAIT")  # fmt: skip
    parser.set_defaults(func=cmd_bench)
    return parser
