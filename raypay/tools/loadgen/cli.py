"""``raypay load``: drive burst checkout traffic at a running raypay and check the result.

    raypay up &                                   # or point --url/--redis-url/--kafka elsewhere
    raypay load --payments 2000 --concurrency 200 --declines 0.1 --duplicates 0.05 \\
                --json run.json --plot run.html
    raypay load --scenario cancelled-event --payments 5000      # then refund them all

Exit code 0 when every invariant holds, 1 when one fails, 2 when no stack was found.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_CLIENT = "aiohttp"


def add_scenario_options(parser: argparse.ArgumentParser, payments: int, concurrency: int) -> None:
    """The traffic options, shared with ``raypay bench``."""
    group = parser.add_argument_group("traffic")
    group.add_argument("--payments", type=int, default=payments, help=f"orders to pay ({payments})")
    group.add_argument(
        "--concurrency", type=int, default=concurrency, help=f"buyers at once ({concurrency})"
    )
    group.add_argument("--arrival", choices=["burst", "ramp", "rate"], default="burst")
    group.add_argument("--rate", type=float, default=0.0, help="orders/s for --arrival rate")
    group.add_argument("--ramp-seconds", type=float, default=10.0, help="for --arrival ramp")
    group.add_argument(
        "--duplicates",
        type=float,
        default=0.0,
        metavar="RATIO",
        help="share of orders paid with extra concurrent copies",
    )
    group.add_argument(
        "--duplicate-count",
        type=int,
        default=2,
        metavar="K",
        help="extra copies per duplicated order (2)",
    )
    group.add_argument(
        "--declines",
        type=float,
        default=0.0,
        metavar="RATIO",
        help="share paid with pm_card_chargeDeclinedOnce, then again with pm_card_visa",
    )
    group.add_argument(
        "--reservations",
        type=float,
        default=0.3,
        metavar="RATIO",
        help="share of orders seeded with a reservation (0.3)",
    )
    group.add_argument("--seed", type=int, default=42, help="of the scenario's random choices")
    group.add_argument(
        "--client",
        choices=["aiohttp", "httpx"],
        default=DEFAULT_CLIENT,
        help=f"HTTP client ({DEFAULT_CLIENT}: cheaper per request)",
    )
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per request (30)")
    group.add_argument(
        "--attempts",
        type=int,
        default=8,
        help="tries per request on 503 / no answer, Retry-After honoured (8)",
    )
    group.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="send an Idempotency-Key per logical payment (copies share it)",
    )


def scenario_from(args: argparse.Namespace) -> Any:
    from raypay.tools.loadgen.plan import Scenario

    return Scenario(
        payments=args.payments,
        concurrency=args.concurrency,
        arrival=args.arrival,
        rate=args.rate,
        ramp_seconds=args.ramp_seconds,
        duplicates=args.duplicates,
        duplicate_count=args.duplicate_count,
        declines=args.declines,
        reservations=args.reservations,
        seed=args.seed,
    )


def stack_api_key(state: dict[str, Any]) -> str | None:
    """The key `raypay up` keeps in the file its state names (``api_key_file``), if any."""
    path = state.get("api_key_file")
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def _target(args: argparse.Namespace) -> Any:
    from raypay.settings import Settings
    from raypay.tools.loadgen.evidence import Target
    from raypay.tools.up import find_stack

    settings = Settings()
    state = find_stack(Path(args.data_dir or settings.data_dir).resolve()) or {}
    env_redis = os.environ.get("RAYPAY_REDIS_URL") or os.environ.get("REDIS_URL")
    env_kafka = os.environ.get("RAYPAY_KAFKA_BOOTSTRAP_SERVERS") or os.environ.get(
        "KAFKA_BOOTSTRAP_SERVERS"
    )
    api_key = args.api_key or (None if args.url else stack_api_key(state))
    url = args.url or state.get("api_url")
    redis_url = args.redis_url or state.get("redis_url") or env_redis
    kafka = args.kafka or state.get("kafka_bootstrap_servers") or env_kafka
    if not (url and redis_url and (kafka or args.no_verify)):
        return None
    return Target(
        base_url=url,
        redis_url=redis_url,
        kafka=kafka or "",
        key_prefix=args.key_prefix or settings.key_prefix,
        topics=(settings.topic_succeeded, settings.topic_failed),
        api_key=api_key,
        refund_topics=(settings.topic_refund_succeeded, settings.topic_refund_failed),
        fulfil_topics=(settings.topic_succeeded, settings.topic_refund_succeeded),
        redis_cluster=bool(state.get("redis_cluster", settings.redis_cluster)),
    )


def cmd_load(args: argparse.Namespace) -> int:
    from raypay.tools.loadgen.client import RetryPolicy
    from raypay.tools.loadgen.progress import make_progress
    from raypay.tools.loadgen.report import print_summary, write_json
    from raypay.tools.loadgen.runner import run_load

    target = _target(args)
    if target is None:
        print(
            "no raypay found: start `raypay up`, or give --url, --redis-url and --kafka",
            file=sys.stderr,
        )
        return 2
    try:
        scenario = scenario_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = asyncio.run(
        run_load(
            target,
            scenario,
            client=args.client,
            progress=make_progress(args.progress),
            policy=RetryPolicy(attempts=args.attempts),
            timeout_s=args.timeout,
            drain_timeout_s=args.drain_timeout,
            idempotency_keys=args.idempotency_keys,
            verify=not args.no_verify,
        )
    )
    if args.scenario == "cancelled-event" and not args.no_verify:
        from raypay.tools.loadgen.cancelled import refund_everything

        order_ids = [order.order_id for order in result.orders]
        checks, result.refund_phase = asyncio.run(
            refund_everything(
                target, result.run_id, order_ids, lambda m: print(m, flush=True), args.drain_timeout
            )
        )
        result.checks += checks
    print_summary(result)
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        from raypay.tools.loadgen.plot import write_plot

        write_plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0 if result.ok else 1


def add_load_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``load`` to the ``raypay`` command's subparsers."""
    parser = commands.add_parser(
        "load",
        help="fire burst checkout traffic at a running raypay, check invariants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("target (default: the stack `raypay up` runs)")
    where.add_argument("--url", help="API base URL, e.g. http://127.0.0.1:8000")
    where.add_argument("--redis-url", help="to seed orders and check payments")
    where.add_argument("--kafka", help="bootstrap servers, to read the events back")
    where.add_argument(
        "--key-prefix", help="Redis key prefix (default: RAYPAY_KEY_PREFIX or raypay)"
    )
    where.add_argument(
        "--api-key",
        default=os.environ.get("RAYPAY_API_KEY"),
        help="sent as Authorization: Bearer (default: $RAYPAY_API_KEY, else the key "
        "file of the stack `raypay up` runs)",
    )
    add_scenario_options(parser, payments=1000, concurrency=50)
    parser.add_argument(
        "--scenario",
        choices=["flash-sale", "cancelled-event"],
        default="flash-sale",
        help="cancelled-event: pay, then refund every paid order in refund batches while "
        "`raypay fulfill` voids the tickets, and check the refund invariants too",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="PATH", help="write every figure and sample as JSON")
    out.add_argument("--plot", metavar="PATH", help="latency picture: .png, .svg or .html")
    out.add_argument("--progress", choices=["auto", "rich", "plain", "none"], default="auto")
    out.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the outbox and the events (60)",
    )
    out.add_argument("--no-verify", action="store_true", help="skip the invariant checks")
    parser.set_defaults(func=cmd_load)
    return parser
