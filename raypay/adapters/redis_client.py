"""The asyncio Redis client every component uses (one Redis or a Redis Cluster, by a
setting), the durable-write wait, and Redis errors at the adapter edge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from raypay.adapters.pipelining import PipelinedRedis, PipelinedRedisCluster, raised_by_client
from raypay.domain.errors import StoreUnavailable


@dataclass(frozen=True, slots=True)
class Replicas:
    """A durable step is answered only once ``count`` replicas have it: ``WAIT count
    timeout_ms`` on the connection that wrote it (script_batch.py). 0: no wait."""

    count: int = 0
    timeout_ms: int = 500


def connect(
    url: str,
    timeout_s: float,
    pipelined: bool = False,
    on_error: Callable[[], None] | None = None,
    cluster: bool = False,
) -> aioredis.Redis:
    """An asyncio client whose every call fails within about ``timeout_s``.

    ``cluster``: ``url`` names one node of a Redis Cluster (redis-py's cluster client
    finds the others; it has no URL scheme of its own).
    ``pipelined``: concurrent single commands share round trips (pipelining.py).
    ``on_error``: called for every command that fails because Redis is away (metrics).

    On one Redis, a command that finds all ``max_connections`` busy waits up to
    ``timeout_s`` for one (a blocking pool) instead of failing at once: while Redis
    stalls, every loop turn's pipeline holds a connection, and a plain pool ran out
    within a second (README: "Durability and Redis stalls"). A hung Redis therefore
    answers a command with an error within about twice ``timeout_s``.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 0,
        "max_connections": 256,
    }
    if cluster:
        # A failover (a few seconds) is answered with 503s, not waited out: a short
        # retry for a moved slot or a refused connection, then the error.
        options["retry"] = Retry(ExponentialBackoff(cap=0.2, base=0.05), 2)
        client_class: Any = PipelinedRedisCluster if pipelined else RedisCluster
        client = client_class.from_url(url, **options)
    else:
        client_class = PipelinedRedis if pipelined else aioredis.Redis
        pool = aioredis.BlockingConnectionPool.from_url(url, timeout=timeout_s, **options)
        client = client_class.from_pool(pool)  # the client owns (and closes) its pool
    return count_errors(client, on_error) if on_error is not None else client


def connect_sync(url: str, cluster: bool = False, **options: Any) -> Any:
    """A blocking client (tools, seeding, tests): ``redis.Redis`` or ``redis.RedisCluster``."""
    options.setdefault("decode_responses", True)
    if cluster:
        return redis.RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster | redis.RedisCluster)


def count_errors(client: aioredis.Redis, on_error: Callable[[], None]) -> aioredis.Redis:
    """Call ``on_error`` for every command of ``client`` that fails because Redis is away.

    Wraps the instance's ``execute_command``, which every single command and script
    call goes through (pipelined ones too: each learns its own outcome); batched
    scripts on a cluster call it themselves (``client.raypay_on_error``).
    """
    execute = client.execute_command

    async def execute_command(*args: Any, **options: Any) -> Any:
        try:
            return await execute(*args, **options)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            on_error()
            raise

    client.execute_command = execute_command  # type: ignore[method-assign]
    client.raypay_on_error = on_error  # type: ignore[attr-defined]
    return client


class translated:  # lower case: used like the function it replaced, `async with translated():`
    """Redis trouble becomes StoreUnavailable (503, retriable).

    A plain class, not ``@asynccontextmanager``: it wraps every store call, several per
    payment, and a generator-based context manager costs several times more."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, exc: Any, tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
            raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
        if isinstance(exc, RedisError | RedisClusterException):
            # A cluster between masters (CLUSTERDOWN, TRYAGAIN, MOVED past the retries).
            raise StoreUnavailable(f"Redis error: {type(exc).__name__}") from exc
        if raised_by_client(exc):
            raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
        return False
