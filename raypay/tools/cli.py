"""The ``raypay`` command.

    raypay up [--nodes N]     start Redis, broker, Ray and the Serve app; Ctrl-C stops all
                              (--nodes N: Ray as a local cluster of N nodes)
    raypay where [--json]     URLs of the running stack (exit 1 if none runs)
    raypay seed [options]     write orders / reservations into the stack's Redis
    raypay keys create --role checkout|refunds|admin [--label L] [--rate R --burst B]
                              a new API key: printed once, only its hash is stored
    raypay keys revoke ID     delete a key (its id, hash, or the key); 401 within ~1 s
    raypay keys list          ids, roles and labels of the stored keys
    raypay load [options]     burst checkout traffic at the running stack, invariants checked
                              (--scenario cancelled-event: then refund every order in batches)
    raypay fulfill            the reference consumer: a ticket per payment, void on full refund
    raypay bench [options]    raypay against a FastAPI peer on this machine, one line per figure
                              (--soak 10m: 70% of the maximum held, memory and outbox watched)
    raypay chaos --seed N     a paced burst while processes are killed on a seeded schedule

Options before the command: ``--data-dir`` (default ``Settings().data_dir``, ``.raypay``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from raypay.settings import Settings
from raypay.tools.up import find_stack, print_where

__all__ = ["build_parser", "find_stack", "main"]


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or Settings().data_dir).resolve()


def cmd_up(args: argparse.Namespace) -> int:
    from raypay.tools.up import UpOptions, run

    options = UpOptions(
        data_dir=_data_dir(args), config=args.config, num_cpus=args.num_cpus,
        nodes=args.nodes, partitions=args.partitions, ready_timeout=args.ready_timeout,
        redis_cluster=args.redis_cluster,
    )  # fmt: skip
    return run(options)


def cmd_where(args: argparse.Namespace) -> int:
    state = find_stack(_data_dir(args))
    if state is None:
        print(
            f"no raypay stack runs from {_data_dir(args)} (start one: raypay up)", file=sys.stderr
        )
        return 1
    if args.json:
        print(json.dumps(state))
    else:
        print_where(state)
    return 0


def _redis_url(args: argparse.Namespace) -> str | None:
    for name in ("RAYPAY_REDIS_URL", "REDIS_URL"):
        if os.environ.get(name):
            return os.environ[name]
    state = find_stack(_data_dir(args))
    return state["redis_url"] if state else None


def _sync_client(url: str, **options: Any) -> Any:
    """A blocking client of the stack's Redis, or of a Redis Cluster (RAYPAY_REDIS_CLUSTER)."""
    import redis

    if Settings().redis_cluster:
        return redis.RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def cmd_seed(args: argparse.Namespace) -> int:
    import redis

    from raypay.adapters.seeding import seed
    from raypay.domain.money import MoneyError

    url = _redis_url(args)
    if url is None:
        print("no Redis: start `raypay up` or set REDIS_URL", file=sys.stderr)
        return 1
    client = _sync_client(url)
    try:
        created = seed(
            client, Settings().key_prefix, count=args.count, amount=args.amount,
            currency=args.currency, status=args.status, reservation=args.reservation,
            reservation_status=args.reservation_status, reservation_ttl_s=args.reservation_ttl,
            customer_id=args.customer, id_prefix=args.prefix,
        )  # fmt: skip
    except MoneyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"error: Redis at {url}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    for item in created:
        print(json.dumps(item))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from raypay.tools.migrate import NotDrained, migrate

    url = _redis_url(args)
    if url is None:
        print("no Redis: start `raypay up` or set REDIS_URL", file=sys.stderr)
        return 1
    if Settings().redis_cluster:
        print("migrate-keys runs on one Redis (then `redis-cli --cluster import`)", file=sys.stderr)
        return 2
    client = _sync_client(url, decode_responses=True)
    try:
        done = migrate(client, Settings().key_prefix, dry_run=args.dry_run)
    except NotDrained as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps({"dryRun": args.dry_run, **done}))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    import redis

    from raypay.adapters import key_store
    from raypay.domain import auth

    url = _redis_url(args)
    if url is None:
        print("no Redis: start `raypay up` or set REDIS_URL", file=sys.stderr)
        return 1
    client, prefix = _sync_client(url, decode_responses=True), Settings().key_prefix
    try:
        if args.action == "create":
            key, digest = key_store.create_key(
                client, prefix, args.role, label=args.label, rate=args.rate, burst=args.burst
            )
            print(json.dumps({"key": key, "id": auth.key_id(digest), "role": args.role}))
        elif args.action == "revoke":
            print(f"revoked {auth.key_id(key_store.revoke_key(client, prefix, args.ref))}")
        else:
            for row in key_store.list_keys(client, prefix):
                print(json.dumps(row))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"error: Redis: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from raypay.domain.model import OrderStatus, ReservationStatus

    parser = argparse.ArgumentParser(
        prog="raypay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="state file and Redis data (default: .raypay)")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the stack; Ctrl-C stops it")
    up.add_argument("--config", help="Serve config (default: serve_config.yaml, found upwards)")
    up.add_argument(
        "--num-cpus", type=int, default=2,
        help="logical CPUs of a local Ray, of each node with --nodes (default 2)",
    )  # fmt: skip
    up.add_argument(
        "--nodes", type=_positive, default=1,
        help="a local Ray cluster of this many nodes on this machine (default 1: plain Ray)",
    )  # fmt: skip
    up.add_argument("--partitions", type=int, default=3, help="partitions per embedded topic")
    up.add_argument("--ready-timeout", type=float, default=120.0, help="seconds for /readyz")
    up.add_argument(
        "--redis-cluster", action="store_true",
        help="an embedded Redis Cluster (3 masters, a replica each) instead of one Redis",
    )  # fmt: skip
    up.set_defaults(func=cmd_up)

    where = commands.add_parser("where", help="print the running stack's URLs")
    where.add_argument("--json", action="store_true", help="one JSON object")
    where.set_defaults(func=cmd_where)

    seed = commands.add_parser("seed", help="write orders (and reservations) into Redis")
    seed.add_argument("--count", type=int, default=1, help="orders to create (default 1)")
    seed.add_argument("--amount", default="25.00", help="decimal amount (default 25.00)")
    seed.add_argument("--currency", default="USD", help="ISO 4217 code (default USD)")
    seed.add_argument("--status", default="pending_payment", choices=list(OrderStatus))
    seed.add_argument("--reservation", action="store_true", help="one reservation per order")
    seed.add_argument("--reservation-status", default="active", choices=list(ReservationStatus))
    seed.add_argument(
        "--reservation-ttl", type=float, default=900, metavar="SECONDS",
        help="until the reservation expires (default 900; negative: already expired)",
    )  # fmt: skip
    seed.add_argument("--customer", help="customer id (default: a random one per order)")
    seed.add_argument("--prefix", default="", help="prefix of generated ids")
    seed.set_defaults(func=cmd_seed)

    keys = commands.add_parser("keys", help="create, revoke and list API keys (in Redis)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new key, printed once")
    create.add_argument("--role", required=True, choices=["checkout", "refunds", "admin"])
    create.add_argument("--label", default="", help="a note on whose key it is")
    create.add_argument("--rate", type=float, help="requests/s for this key (default: setting)")
    create.add_argument("--burst", type=int, help="burst of --rate (default: one second's)")
    revoke = actions.add_parser("revoke", help="delete a key: 401 within api_key_cache_s")
    revoke.add_argument("ref", help="the key's id (8+ hex digits), its hash, or the key")
    actions.add_parser("list", help="ids, roles and labels (never keys)")
    keys.set_defaults(func=cmd_keys)

    migrate = commands.add_parser(
        "migrate-keys", help="rename data stored before vshards to today's key names"
    )
    migrate.add_argument("--dry-run", action="store_true", help="count, change nothing")
    migrate.set_defaults(func=cmd_migrate)

    from raypay.tools.bench.cli import add_bench_parser
    from raypay.tools.chaos.cli import add_chaos_parser
    from raypay.tools.fulfill import add_fulfill_parser
    from raypay.tools.loadgen.cli import add_load_parser

    add_load_parser(commands)
    add_bench_parser(commands)
    add_chaos_parser(commands)
    add_fulfill_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
