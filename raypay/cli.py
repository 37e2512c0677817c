"""The ``raypay`` command: ``up`` (run the whole stack), ``where`` (find it), ``seed``.

``raypay up`` starts what is not given from outside, in this order, and stops it in
reverse on Ctrl-C / SIGTERM (or on a failed start-up):

    redis-server (unless REDIS_URL)  →  Tansu broker + topics (unless KAFKA_BOOTSTRAP_SERVERS)
    →  Ray (local, or RAY_ADDRESS)  →  Serve app from serve_config.yaml  →  GET /readyz

and leaves ``<data_dir>/stack.json`` for other tools (``find_stack()``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from raypay.settings import Settings

STATE_FILE = "stack.json"
REDIS_PORT, KAFKA_PORT, DASHBOARD_PORT = 6380, 9092, 8265


def _say(message: str) -> None:
    print(message, flush=True)


def _data_dir(explicit: str | None) -> Path:
    return Path(explicit or Settings().data_dir).resolve()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_stack(data_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The running stack's state (URLs, pid), or None if no live ``raypay up`` owns it."""
    path = _data_dir(str(data_dir) if data_dir else None) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    return state if isinstance(pid, int) and _pid_alive(pid) else None


def _external(*names: str) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _on_stop_signals(handler: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, handler)


def cmd_up(args: argparse.Namespace) -> int:
    from raypay import launch, stack

    started = time.monotonic()
    settings = Settings()
    data_dir = _data_dir(args.data_dir)
    if running := find_stack(data_dir):
        _say(f"raypay is already running (pid {running['pid']}) at {running['api_url']}")
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)
    state_path = data_dir / STATE_FILE
    _on_stop_signals(_raise_interrupt)
    code = 0
    servers: list[stack.Server] = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(state_path.unlink, missing_ok=True)
        try:
            config_path = launch.find_serve_config(args.config)
            redis_url = _external("RAYPAY_REDIS_URL", "REDIS_URL")
            if redis_url is None:
                port = stack.pick_port(REDIS_PORT)
                redis_server = cleanup.enter_context(stack.start_redis(data_dir, port))
                servers.append(redis_server)
                redis_url = redis_server.url
                _say(
                    f"redis   {redis_url}  (embedded, pid {redis_server.pid}, "
                    f"AOF in {data_dir}/redis)"
                )
            else:
                _say(f"redis   {redis_url}  (external)")
            kafka = _external("RAYPAY_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
            if kafka is None:
                broker = cleanup.enter_context(
                    stack.start_broker(stack.pick_port(KAFKA_PORT), data_dir / "logs")
                )
                servers.append(broker)
                kafka = broker.url
                stack.create_topics(
                    kafka,
                    [settings.topic_succeeded, settings.topic_failed],
                    partitions=args.partitions,
                )
                os.environ["RAYPAY_KAFKA_IDEMPOTENCE"] = "false"  # Tansu: no InitProducerId
                _say(f"kafka   {kafka}  (embedded Tansu, pid {broker.pid}, in memory)")
            else:
                _say(f"kafka   {kafka}  (external)")
            # Before Ray starts: a local Ray's workers inherit this environment.
            env = {"RAYPAY_REDIS_URL": redis_url, "RAYPAY_KAFKA_BOOTSTRAP_SERVERS": kafka}
            if "RAYPAY_KAFKA_IDEMPOTENCE" in os.environ:
                env["RAYPAY_KAFKA_IDEMPOTENCE"] = os.environ["RAYPAY_KAFKA_IDEMPOTENCE"]
            os.environ.update(env)

            ray_address = os.environ.get("RAY_ADDRESS") or None
            _say(f"ray     {'joining ' + ray_address if ray_address else 'starting locally'}")
            cleanup.callback(launch.shutdown_ray)  # also cleans up a half-done ray.init
            dashboard = launch.start_ray(
                ray_address, args.num_cpus, stack.pick_port(DASHBOARD_PORT)
            )
            _on_stop_signals(_raise_interrupt)  # ray.init replaced the SIGTERM handler

            host, preferred = launch.http_preferences(config_path)
            http_port = stack.pick_port(preferred, "127.0.0.1" if host == "0.0.0.0" else host)
            config = launch.load_serve_config(config_path, http_port, env if ray_address else None)
            app_names = [app.name for app in config.applications]
            _say(f"serve   deploying {config_path} (apps: {', '.join(app_names)})")
            cleanup.callback(launch.shutdown_serve, app_names, bool(ray_address))
            http_port = launch.deploy(config)
            shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            prefix = (config.applications[0].route_prefix or "/").rstrip("/")
            api = f"http://{shown_host}:{http_port}{prefix}"
            launch.wait_ready(f"{api}/readyz", app_names, timeout=args.ready_timeout, report=_say)

            state = {
                "pid": os.getpid(),
                "api_url": api,
                "docs_url": f"{api}/docs",
                "dashboard_url": dashboard,
                "redis_url": redis_url,
                "kafka_bootstrap_servers": kafka,
                "ray_address": ray_address or "local",
                "data_dir": str(data_dir),
                "serve_config": str(config_path),
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=2) + "\n")
            tmp.replace(state_path)
            _say(f"\nraypay is ready in {time.monotonic() - started:.1f}s")
            _print_where(state)
            _say("Ctrl-C to stop.")
            _watch(servers)
        except KeyboardInterrupt:
            _say("\nstopping raypay ...")
        except stack.StackError as exc:
            _say(f"error: {exc}")
            code = 1
        except Exception as exc:  # start-up failed in Ray/Serve: still stop what runs
            import traceback

            traceback.print_exc()
            _say(f"error: {type(exc).__name__}: {exc}")
            code = 1
        finally:
            # A second Ctrl-C must not cut the orderly shutdown short.
            _on_stop_signals(signal.SIG_IGN)
    _say("stopped." if code == 0 else "stopped after the error above.")
    return code


def _watch(servers: list[Any]) -> None:
    """Block until a stop signal; an embedded server dying is an error, not a hang."""
    from raypay.stack import StackError

    while True:
        time.sleep(1.0)
        for server in servers:
            if not server.alive():
                raise StackError(f"{server.name} died; log {server.log_path}:\n{server.log_tail()}")


def _print_where(state: dict[str, Any]) -> None:
    rows = [
        ("API", state["api_url"]),
        ("OpenAPI", state["docs_url"]),
        ("dashboard", state.get("dashboard_url") or "-"),
        ("Redis", state["redis_url"]),
        ("Kafka", state["kafka_bootstrap_servers"]),
        ("Ray", state["ray_address"]),
        ("pid", str(state["pid"])),
    ]
    for name, value in rows:
        _say(f"  {name:<10} {value}")


def cmd_where(args: argparse.Namespace) -> int:
    state = find_stack(_data_dir(args.data_dir))
    if state is None:
        print(
            f"no running raypay stack found in {_data_dir(args.data_dir)} "
            "(start one with `raypay up`)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        _say(json.dumps(state))
    else:
        _print_where(state)
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    import redis

    from raypay.seeding import seed

    url = _external("RAYPAY_REDIS_URL", "REDIS_URL")
    if url is None:
        state = find_stack(_data_dir(args.data_dir))
        if state is None:
            print("no Redis: start `raypay up` or set REDIS_URL", file=sys.stderr)
            return 1
        url = state["redis_url"]
    from raypay.money import MoneyError

    client = redis.Redis.from_url(url)
    try:
        created = seed(
            client,
            Settings().key_prefix,
            count=args.count,
            amount=args.amount,
            currency=args.currency,
            status=args.status,
            reservation=args.reservation,
            reservation_status=args.reservation_status,
            reservation_ttl_s=args.reservation_ttl,
            customer_id=args.customer,
            id_prefix=args.prefix,
        )
    except MoneyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"error: Redis at {url}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    for item in created:
        _say(json.dumps(item))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from raypay.model import OrderStatus, ReservationStatus

    parser = argparse.ArgumentParser(prog="raypay", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="state and Redis data (default: Settings().data_dir)")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the stack and block until Ctrl-C")
    up.add_argument("--config", help="Serve config (default: serve_config.yaml)")
    up.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    up.add_argument("--partitions", type=int, default=3, help="partitions per topic")
    up.add_argument("--ready-timeout", type=float, default=120.0, help="seconds")
    up.set_defaults(func=cmd_up)

    where = commands.add_parser("where", help="print the running stack's URLs")
    where.add_argument("--json", action="store_true")
    where.set_defaults(func=cmd_where)

    seed = commands.add_parser("seed", help="write orders (and reservations) into Redis")
    seed.add_argument("--count", type=int, default=1)
    seed.add_argument("--amount", default="25.00")
    seed.add_argument("--currency", default="USD")
    seed.add_argument("--status", default="pending_payment", choices=[s.value for s in OrderStatus])
    seed.add_argument("--reservation", action="store_true", help="make one per order")
    seed.add_argument(
        "--reservation-status", default="active", choices=[s.value for s in ReservationStatus]
    )
    seed.add_argument(
        "--reservation-ttl",
        type=float,
        default=900,
        help="seconds until expiry; negative = already expired",
    )
    seed.add_argument("--customer", help="customer id (default: a random one per order)")
    seed.add_argument("--prefix", default="", help="prefix for generated ids")
    seed.set_defaults(func=cmd_seed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
