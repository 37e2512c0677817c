"""``raypay chaos``: kill and pause the stack's processes on a seeded schedule during a
paced burst, then check that nothing was lost, charged twice or left pending.

    raypay chaos --seed 7                       # 6,000 orders over 120 s (make chaos SEED=7)
    raypay chaos --seed 7 --orders 2000 --seconds 40

It starts its own `raypay up` (a fresh data folder under --workdir, removed afterwards
unless --keep), prints the schedule before the burst and each fault as it happens, and
the checks at the end. Exit code 0 when every check held.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


def cmd_chaos(args: argparse.Namespace) -> int:
    from raypay.tools.chaos.run import ChaosOptions, default_workdir, report_lines, run_chaos
    from raypay.tools.chaos.schedule import KINDS

    if args.only and not set(args.only.split(",")) <= set(KINDS):
        print(f"error: --only takes some of {','.join(KINDS)}", file=sys.stderr)
        return 2

    root = Path(args.workdir).resolve() if args.workdir else default_workdir()
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"seed{args.seed}-", dir=root))
    options = ChaosOptions(
        seed=args.seed, orders=args.orders, seconds=args.seconds,
        concurrency=args.concurrency, duplicates=args.duplicates, workdir=workdir,
        config=args.config, num_cpus=args.num_cpus,
        kinds=tuple(args.only.split(",")) if args.only else KINDS,
    )  # fmt: skip

    def say(message: str) -> None:
        print(message, flush=True)

    try:
        result = asyncio.run(run_chaos(options, say))
    except KeyboardInterrupt:
        print("chaos: interrupted; the stack it started is stopped", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    for line in report_lines(result):
        print(line, flush=True)
    return 0 if result.ok else 1


def add_chaos_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``chaos`` to the ``raypay`` command's subparsers."""
    parser = commands.add_parser(
        "chaos", help="a paced burst while processes are killed on a seeded schedule",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="of the schedule and traffic (1)")
    parser.add_argument("--orders", type=int, default=6000, help="orders in the burst (6000)")
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="the burst's length; orders arrive evenly over it (120)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=200, help="buyers at once (200)")
    parser.add_argument("--duplicates", type=float, default=0.05,
                        help="share of orders sent with two concurrent copies (0.05)")  # fmt: skip
    parser.add_argument("--only", metavar="KIND,...",
                        help="faults only of these kinds (a broker kill is added)")  # fmt: skip
    parser.add_argument("--config", help="Serve config (default: serve_config.yaml)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (2)")
    parser.add_argument("--workdir", help="where the run's data folder goes (.raypay-chaos)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs)")
    parser.set_defaults(func=cmd_chaos)
    return parser
