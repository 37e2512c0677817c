"""The RefundBatchActor: runs the refund batches kept in Redis.

Named and detached with ``max_restarts=-1``: whichever actor dies (this one, a shard, a
gateway), the batch goes on, because everything it needs is in Redis and every refund it
asks for is idempotent (``raypay.domain.batches``). All its batches share one pacer, so
together they refund at most ``refund_batch_rate`` orders a second.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import ray
from ray.exceptions import RayError

from raypay import bootstrap
from raypay.domain.batches import Pacer, RefundBatch, run_batch
from raypay.domain.errors import ShardUnavailable, StoreUnavailable
from raypay.domain.outcomes import Outcome
from raypay.domain.sharding import shard_of_order
from raypay.settings import Settings

log = logging.getLogger("raypay.batches")
POLL_S = 1.0  # how often open batches are looked for without a wake-up


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=100)
class RefundBatchActor:
    async def __init__(self, settings: Settings, shards: list[ray.actor.ActorHandle]) -> None:
        self.settings, self.shards = settings, shards
        self.store = bootstrap.batch_store(settings, bootstrap.redis_client(settings))
        self.pacer = Pacer(settings.refund_batch_rate)
        self.running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # The first look runs at start, so a restarted actor resumes every open batch.
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def wake(self) -> None:
        """Look for new batches now (the ingress calls it after creating one)."""
        self._wake.set()

    async def status(self) -> dict:
        """The batches this actor is running."""
        return {"running": sorted(self.running)}

    async def _watch(self) -> None:
        while True:
            try:
                for batch_id in await self.store.open_batches():
                    if batch_id not in self.running:
                        self.running[batch_id] = asyncio.create_task(self._run(batch_id))
            except StoreUnavailable as exc:
                log.warning("refund batches: Redis away: %s", exc)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            except TimeoutError:
                pass

    async def _run(self, batch_id: str) -> None:
        try:
            batch = await self.store.get(batch_id)
            if batch is not None:
                await run_batch(batch, self.store, self._refund_one, self.pacer, _now)
                log.info("refund batch %s done", batch_id)
        except Exception:  # the next look resumes it from Redis
            log.exception("refund batch %s interrupted", batch_id)
            await asyncio.sleep(POLL_S)
        finally:
            del self.running[batch_id]

    async def _refund_one(self, batch: RefundBatch, order_id: str) -> Outcome:
        shard = self.shards[shard_of_order(order_id, len(self.shards))]
        call = shard.refund_order.remote(
            order_id, batch.reason, dict(batch.metadata), batch.idempotency_key(order_id)
        )
        try:
            return await asyncio.wait_for(call, self.settings.shard_timeout_s)
        except (RayError, TimeoutError) as exc:
            raise ShardUnavailable(f"shard unavailable: {type(exc).__name__}") from exc


def _now() -> datetime:
    return datetime.now(UTC)
