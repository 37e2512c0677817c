"""One Lua script call per batch instead of one per payment, and the durable-write wait.

A shard runs many payments at once, and each of them calls the same scripts (begin,
settle, the simulator's ledger). ``BatchedScript`` gathers the calls made in the same
turn of the event loop and sends them as one EVALSHA of a wrapper that runs the
script once per call, in order, each in its own ``pcall``: every call is still atomic
on its own (a Redis script runs whole, alone) and learns its own result or error, and
one call's error never stops the others. Redis pays the script call's fixed cost once
per batch, redis-py packs and parses one command instead of N.

On Redis Cluster a script may only touch keys of one hash slot: the calls are grouped
by the slot of their keys (every call's keys share one, keys.py), one EVALSHA per slot,
and the EVALSHAs of one master travel on one connection.

Durable steps (``replicas``): the batch's writes are answered only after ``WAIT n
timeout`` on the same connection, right behind them, says that ``n`` replicas have
them. WAIT counts the replication offset of *its connection's* writes, so it is sound
only there: hence the one connection per master and no redirects followed (a moved
slot is a 503, not a retry elsewhere). When WAIT says fewer, the writes may still be
on the master but could vanish with it: every call of that batch fails with
StoreUnavailable (503, retriable). The retry is safe: every durable script is
idempotent (a payment begun is found again, a settled one is not settled twice).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from raypay.adapters.batching import MicroBatcher, Pending, fail, resolve
from raypay.adapters.redis_client import Replicas
from raypay.domain.errors import StoreUnavailable

# ARGV: calls, then per call its key count, its arg count and its args; KEYS in order.
_MANY = """
local function one(KEYS, ARGV)
%s
end
local out, k, pos = {}, 1, 2
for i = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])
  pos = pos + 2
  local keys, args = {}, {}
  for j = 1, nk do keys[j] = KEYS[k]; k = k + 1 end
  for j = 1, na do args[j] = ARGV[pos]; pos = pos + 1 end
  local ok, result = pcall(one, keys, args)
  if ok or type(result) == 'table' then out[i] = result  -- redis.call's errors: {err=...}
  else out[i] = {err = tostring(result)} end
end
return out
"""


def packed(batch: Pending) -> tuple[list[Any], list[Any]]:
    """The wrapper's KEYS and ARGV for a batch of (keys, args) calls."""
    every_key: list[Any] = []
    argv: list[Any] = [len(batch)]
    for (keys, args), _ in batch:
        every_key += keys
        argv += [len(keys), len(args), *args]
    return every_key, argv


def by_slot(batch: Pending, slot_of: Any) -> dict[int, Pending]:
    """The calls of a batch grouped by the hash slot of their (first) key."""
    groups: dict[int, Pending] = defaultdict(list)
    for call in batch:
        groups[slot_of(call[0][0][0])].append(call)
    return groups


class BatchedScript:
    """``await script(keys=..., args=...)`` as with redis-py's ``register_script``, but
    the calls of one loop turn travel together (``max_size`` at most); with
    ``replicas.count``, each batch waits for that many replicas (see above)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        body: str,
        max_size: int = 256,
        replicas: Replicas | None = None,
    ) -> None:
        self.redis = redis
        self.replicas = replicas or Replicas()
        self._many = redis.register_script(_MANY % body)
        self._cluster = isinstance(redis, RedisCluster)
        self._refreshed = 0.0
        self._batcher: MicroBatcher[tuple[list[Any], list[Any]], Any] = MicroBatcher(
            self._flush, window_s=0, max_size=max_size
        )

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        return await self._batcher.submit((keys, args))

    async def _flush(self, batch: Pending) -> None:
        if self._cluster:
            await self._flush_cluster(batch)
        elif self.replicas.count:
            await self._flush_waiting(batch)
        else:
            every_key, argv = packed(batch)
            results = await self._many(keys=every_key, args=argv)
            answer(batch, results)

    async def _flush_waiting(self, batch: Pending) -> None:
        """One Redis: EVALSHA then WAIT, pipelined on one connection."""
        every_key, argv = packed(batch)
        for attempt in (1, 2):
            pipe = self.redis.pipeline(transaction=False)
            pipe.evalsha(self._many.sha, len(every_key), *every_key, *argv)
            pipe.execute_command("WAIT", self.replicas.count, self.replicas.timeout_ms)
            results, acked = await pipe.execute(raise_on_error=False)
            if isinstance(results, NoScriptError) and attempt == 1:
                await self.redis.script_load(self._many.script)
                continue
            break
        if isinstance(results, Exception):
            raise results
        if not self._acked(acked):
            fail(batch, StoreUnavailable(f"write not confirmed by a replica ({acked})"))
            return
        answer(batch, results)

    # --- Redis Cluster ---

    async def _flush_cluster(self, batch: Pending) -> None:
        client: Any = self.redis
        if client._initialize:  # a failure asked for the slots to be read again
            await client.initialize()
        groups = by_slot(batch, client.keyslot)
        per_node: dict[str, tuple[ClusterNode, list[Pending]]] = {}
        for slot, calls in groups.items():
            try:
                node = client.nodes_manager.get_node_from_slot(slot)
            except Exception as exc:  # slot not covered: the cluster is failing over
                fail(calls, StoreUnavailable(f"Redis Cluster: {type(exc).__name__}"))
                continue
            per_node.setdefault(node.name, (node, []))[1].append(calls)
        await asyncio.gather(*(self._on_node(node, groups) for node, groups in per_node.values()))

    async def _on_node(self, node: ClusterNode, groups: list[Pending]) -> None:
        results = await self._send(node, groups)
        again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if again:  # a node that never saw the script (a replica promoted since): load it
            try:
                await node.execute_command("SCRIPT", "LOAD", self._many.script)
                retried = await self._send(node, [groups[i] for i in again])
            except Exception as exc:
                retried = [exc] * len(again)
            for i, result in zip(again, retried, strict=True):
                results[i] = result
        for calls, result in zip(groups, results, strict=True):
            if isinstance(result, Exception):
                fail(calls, result)
            else:
                answer(calls, result)

    async def _send(self, node: ClusterNode, groups: list[Pending]) -> list[Any]:
        """The node's slot groups as EVALSHAs (+ WAIT) on one of its connections: each
        group's reply (a list of results) or its error."""
        commands = []
        for position, calls in enumerate(groups):
            every_key, argv = packed(calls)
            command = ("EVALSHA", self._many.sha, len(every_key), *every_key, *argv)
            commands.append(PipelineCommand(position, *command))
        if self.replicas.count:
            wait = ("WAIT", self.replicas.count, self.replicas.timeout_ms)
            commands.append(PipelineCommand(len(groups), *wait))
        try:
            await node.execute_pipeline(commands)
        except Exception as exc:  # the connection broke: the master may be gone
            await self._trouble(node)
            return [StoreUnavailable(f"Redis unavailable: {type(exc).__name__}")] * len(groups)
        results: list[Any] = [c.result for c in commands[: len(groups)]]
        moved = [
            r for r in results if isinstance(r, ResponseError) and not isinstance(r, NoScriptError)
        ]
        acked = commands[-1].result if self.replicas.count else None
        if moved or isinstance(acked, Exception):
            # MOVED, TRYAGAIN, CLUSTERDOWN, READONLY, or WAIT refused by a node that is a
            # replica now: the slots moved. Not followed (WAIT would not cover it): read
            # the slots again and answer 503.
            await self._trouble(node)
        if self.replicas.count and not self._acked(acked):
            unsure = StoreUnavailable(f"write not confirmed by a replica ({acked})")
            return [r if isinstance(r, NoScriptError) else unsure for r in results]
        return [
            StoreUnavailable(f"Redis Cluster: {r}") if any(r is m for m in moved) else r
            for r in results
        ]

    def _acked(self, acked: Any) -> bool:
        return isinstance(acked, int) and acked >= self.replicas.count

    async def _trouble(self, node: ClusterNode) -> None:
        """Count the error, and have the slots read again (at most twice a second)."""
        if (on_error := getattr(self.redis, "raypay_on_error", None)) is not None:
            on_error()
        now = time.monotonic()
        if now - self._refreshed > 0.5:
            self._refreshed = now
            self.redis._initialize = True  # type: ignore[attr-defined]
            node.update_active_connections_for_reconnect()


def answer(batch: Pending, results: list[Any]) -> None:
    for (_, future), result in zip(batch, results, strict=True):
        resolve(future, result)  # a call's error reply comes as a value: raised there
