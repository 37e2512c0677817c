"""Micro-batching of calls between processes, in plain asyncio (no Ray here).

A process hop costs far more than the work it carries, so callers gather the calls
they make into one batch (``MicroBatcher``): a call made while no batch is out leaves on
the next loop turn (with the calls of the same turn); while one is out, calls wait up to
a window for companions, and leave early when the last batch out returns. The batches
grow with the load and a lone call never waits. The callee
answers a batch with ``TicketBox``: what finished within ``hold_s`` is answered at
once, the rest with a ``Ticket`` to collect later, so one slow item (a gateway
timeout) never holds up the answers of the fast ones in its batch.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Pending = list[tuple[Any, "asyncio.Future[Any]"]]


class MicroBatcher(Generic[T, R]):
    """Collects ``submit`` calls and hands them to ``flush`` as one list of (item,
    future); ``flush`` resolves the futures. A batch leaves when it has ``max_size``
    calls; else on the next loop turn if no batch is out, or after ``window_s`` (or
    when the last batch out returns, if sooner) while one is."""

    def __init__(
        self,
        flush: Callable[[Pending], Awaitable[None]],
        window_s: float = 0.001,
        max_size: int = 256,
    ) -> None:
        self._flush, self.window_s, self.max_size = flush, window_s, max_size
        self._pending: Pending = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_size:
            self._send()
        elif self._timer is None:
            self._timer = loop.call_later(self.window_s if self._tasks else 0, self._send)
        return await future

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            # A batch belongs to no one caller: run it in a context of its own. In the
            # caller's context (Ray keeps the current task in a contextvar), the calls it
            # makes counted as that caller's child tasks, and cancelling the caller
            # cancelled them: a whole gateway batch failed with TaskCancelledError.
            task = asyncio.get_running_loop().create_task(
                self._run(batch), context=contextvars.Context()
            )
            self._tasks.add(task)
            task.add_done_callback(self._returned)

    def _returned(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks and self._pending:  # nothing out: waiting gathers no more
            self._send()

    async def _run(self, batch: Pending) -> None:
        try:
            await self._flush(batch)
        except BaseException as exc:  # the batch failed as a whole: every caller hears it
            fail(batch, exc)
            if not isinstance(exc, Exception):
                raise


def resolve(future: asyncio.Future[Any], outcome: Any) -> None:
    """Set a result, or raise it if it is an exception; a caller that gave up is skipped."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def fail(batch: Pending, error: BaseException) -> None:
    for _, future in batch:
        resolve(future, error)


@dataclass(frozen=True, slots=True)
class Ticket:
    """Stands for an answer that was not ready when its batch was answered."""

    id: int


class TicketBox:
    """Runs a batch of coroutines and answers it after at most ``hold_s``."""

    def __init__(self, hold_s: float = 0.05, keep_s: float = 120.0) -> None:
        self.hold_s, self.keep_s = hold_s, keep_s
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()

    async def run(self, coros: list[Coroutine[Any, Any, Any]]) -> list[Any]:
        """Results, exceptions (as values) or Tickets, in the order of ``coros``."""
        return await self._answer([asyncio.ensure_future(c) for c in coros])

    async def collect(self, ticket_ids: list[int]) -> list[Any]:
        """Answers for earlier tickets; an unknown one (e.g. after a restart) is a LookupError."""
        tasks = []
        for ticket_id in ticket_ids:
            task = self._waiting.pop(ticket_id, None)
            tasks.append(task if task is not None else _unknown(ticket_id))
        return await self._answer([asyncio.ensure_future(t) for t in tasks])

    async def _answer(self, tasks: list[asyncio.Future[Any]]) -> list[Any]:
        if tasks:
            await asyncio.wait(tasks, timeout=self.hold_s)
        answers: list[Any] = []
        for task in tasks:
            if task.done():
                answers.append(task.exception() or task.result())
            else:
                ticket = Ticket(next(self._ids))
                self._waiting[ticket.id] = task
                # Nobody collects after a caller died: forget it a while after it ends.
                task.add_done_callback(lambda _, i=ticket.id: self._forget_later(i))
                answers.append(ticket)
        return answers

    def _forget_later(self, ticket_id: int) -> None:
        asyncio.get_running_loop().call_later(self.keep_s, self._waiting.pop, ticket_id, None)


async def _unknown(ticket_id: int) -> Any:
    raise LookupError(f"unknown ticket {ticket_id}")


async def follow_tickets(
    batch: Pending,
    first: Awaitable[list[Any]],
    collect: Callable[[list[int]], Awaitable[list[Any]]],
) -> None:
    """Resolve a batch from its answers as they come: answers at once, tickets later."""
    answers = await first
    waiting = batch
    while True:
        later: Pending = []
        ticket_ids: list[int] = []
        for (item, future), answer in zip(waiting, answers, strict=True):
            if isinstance(answer, Ticket):
                later.append((item, future))
                ticket_ids.append(answer.id)
            else:
                resolve(future, answer)
        if not later:
            return
        waiting, answers = later, await collect(ticket_ids)
