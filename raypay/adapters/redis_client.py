"""The asyncio Redis client every component uses, and Redis errors at the adapter edge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from raypay.adapters.pipelining import PipelinedRedis
from raypay.domain.errors import StoreUnavailable


def connect(
    url: str,
    timeout_s: float,
    pipelined: bool = False,
    on_error: Callable[[], None] | None = None,
) -> aioredis.Redis:
    """An asyncio client whose every call fails within about ``timeout_s``.

    ``pipelined``: concurrent single commands share round trips (pipelining.py).
    ``on_error``: called for every command that fails because Redis is away (metrics).
    """
    client_class = PipelinedRedis if pipelined else aioredis.Redis
    client = client_class.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=0,
        max_connections=256,
    )
    return count_errors(client, on_error) if on_error is not None else client


def count_errors(client: aioredis.Redis, on_error: Callable[[], None]) -> aioredis.Redis:
    """Call ``on_error`` for every command of ``client`` that fails because Redis is away.

    Wraps the instance's ``execute_command``, which every single command and script
    call goes through (pipelined ones too: each learns its own outcome).
    """
    execute = client.execute_command

    async def execute_command(*args: Any, **options: Any) -> Any:
        try:
            return await execute(*args, **options)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            on_error()
            raise

    client.execute_command = execute_command  # type: ignore[method-assign]
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
        if isinstance(exc, RedisError):
            raise StoreUnavailable(f"Redis error: {type(exc).__name__}") from exc
        return False
