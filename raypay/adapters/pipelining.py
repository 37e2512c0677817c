"""Automatic pipelining: the Redis commands that concurrent coroutines issue in the
same turn of the event loop go to Redis as one pipeline, one round trip (on a cluster:
one per master, sent together).

A shard runs a batch of payments at once, so each workflow step of every payment in
the batch is issued in the same turn; this turns N round trips into one. Commands
keep their own results and errors (``raise_on_error=False``); a connection failure
fails every command of that pipeline, as it would have failed each of them alone.
Blocking commands (XREADGROUP with BLOCK) and MULTI pipelines must use a plain client.
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from raypay.adapters.batching import MicroBatcher, Pending, resolve


class _AutoPipeline:
    """Mixed into a redis-py asyncio client: single commands pipelined per loop turn."""

    def __init__(self, *args: Any, max_pipeline: int = 512, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batcher: MicroBatcher[tuple[tuple[Any, ...], dict[str, Any]], Any] = MicroBatcher(
            self._flush, window_s=0, max_size=max_pipeline
        )

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await self._batcher.submit((args, options))

    async def _flush(self, batch: Pending) -> None:
        if len(batch) == 1:  # nothing to share the trip with
            (args, options), future = batch[0]
            try:
                resolve(future, await super().execute_command(*args, **options))  # type: ignore[misc]
            except Exception as exc:
                resolve(future, lost(exc))
            return
        pipe = self.pipeline(transaction=False)  # type: ignore[attr-defined]
        for (args, options), _ in batch:
            pipe.execute_command(*args, **options)
        try:
            results = await pipe.execute(raise_on_error=False)
        except (RuntimeError, AttributeError) as exc:
            raise lost(exc) from exc
        for (_, future), result in zip(batch, results, strict=True):
            resolve(future, result)


def raised_by_client(exc: BaseException) -> bool:
    """An error redis-py's own code raised that is not a RedisError: its asyncio client,
    when a node dies under a write, can fail with RuntimeError ("unable to perform
    operation on <TCPTransport closed=True>") or AttributeError (a writer already None).
    That is a lost connection, not a bug of ours."""
    if not isinstance(exc, RuntimeError | AttributeError):
        return False
    tb, package = exc.__traceback__, f"{os.sep}redis{os.sep}"
    while tb is not None:  # raised inside redis-py (or below it, in asyncio's transport)
        if package in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def lost(exc: Exception) -> Exception:
    """redis-py's own failure under a dying node (raised_by_client) as the
    lost connection it is: callers and error counters see a ConnectionError."""
    if raised_by_client(exc):
        return RedisConnectionError(f"connection lost: {type(exc).__name__}: {exc}")
    return exc


class PipelinedRedis(_AutoPipeline, aioredis.Redis):
    """A ``redis.asyncio.Redis`` whose single commands are pipelined per loop turn."""


class PipelinedRedisCluster(_AutoPipeline, RedisCluster):
    """The same for a Redis Cluster: redis-py's cluster pipeline sends each master its
    commands on one connection, the masters at once. Commands for several nodes (SCRIPT
    LOAD to every master, PING, INFO) or aimed at one (``target_nodes``) go alone."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if "target_nodes" in options or args[0] in self.command_flags:
            return await RedisCluster.execute_command(self, *args, **options)
        return await super().execute_command(*args, **options)
