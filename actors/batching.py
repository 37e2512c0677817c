"""Batched calls to an actor: one Ray call per batch instead of one per item.

The callee offers ``<name>_many(items)`` answering through a ``TicketBox`` and
``collect(ticket_ids)``; see raypay/batching.py.
"""

from __future__ import annotations

from typing import Any

import ray

from raypay.adapters.batching import MicroBatcher, Pending, follow_tickets


class BatchedMethod:
    """``await method(*args)`` is sent with the other calls of the same window."""

    def __init__(
        self, handle: ray.actor.ActorHandle, many: str, window_s: float, max_size: int = 256
    ) -> None:
        self.handle, self.many = handle, many
        self._batcher: MicroBatcher[tuple[Any, ...], Any] = MicroBatcher(
            self._flush, window_s, max_size
        )

    async def __call__(self, *args: Any) -> Any:
        return await self._batcher.submit(args)

    async def _flush(self, batch: Pending) -> None:
        items = [item for item, _ in batch]
        await follow_tickets(
            batch,
            getattr(self.handle, self.many).remote(items),
            lambda ticket_ids: self.handle.collect.remote(ticket_ids),
        )
