"""Micro-batching: calls of one window travel as one batch; a slow item of a batch is
answered later with a ticket, never holding up the fast ones."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from raypay.adapters.batching import MicroBatcher, Ticket, TicketBox, follow_tickets, resolve

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def flush(self, batch) -> None:
        self.batches.append([item for item, _ in batch])
        for item, future in batch:
            resolve(future, ValueError(item) if item < 0 else item * 10)


async def test_calls_within_one_window_travel_as_one_batch():
    recorder = Recorder()
    batcher = MicroBatcher(recorder.flush, window_s=0.01)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert recorder.batches == [[0, 1, 2, 3, 4]]


async def test_a_full_batch_leaves_without_waiting_for_the_window():
    recorder = Recorder()
    batcher = MicroBatcher(recorder.flush, window_s=10, max_size=3)
    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(i) for i in range(6))), 1)
    assert results == [0, 10, 20, 30, 40, 50]
    assert recorder.batches == [[0, 1, 2], [3, 4, 5]]


async def test_a_lone_call_leaves_without_waiting_for_the_window():
    recorder = Recorder()
    batcher = MicroBatcher(recorder.flush, window_s=10)
    assert await asyncio.wait_for(batcher.submit(7), 1) == 70


class Gate(Recorder):
    """A callee that holds each batch until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def flush(self, batch) -> None:
        await self.release.wait()
        await super().flush(batch)


async def test_while_a_batch_is_out_calls_wait_for_companions_until_it_returns():
    gate = Gate()
    batcher = MicroBatcher(gate.flush, window_s=10)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)  # the first batch is out, held by the callee
    later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0.01)
    later.append(asyncio.ensure_future(batcher.submit(4)))  # a later loop turn
    await asyncio.sleep(0.01)
    assert not any(f.done() for f in [first, *later])
    gate.release.set()  # the batch out returns: the waiting calls leave together
    assert await asyncio.wait_for(asyncio.gather(first, *later), 1) == [10, 20, 30, 40]
    assert gate.batches == [[1], [2, 3, 4]]


async def test_while_a_batch_is_out_calls_leave_after_the_window():
    gate = Gate()
    batcher = MicroBatcher(gate.flush, window_s=0.02)
    stuck = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)
    waiting = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.05)  # the window has passed: the second batch is out too
    assert len(batcher._tasks) == 2
    gate.release.set()
    assert await asyncio.wait_for(asyncio.gather(stuck, waiting), 1) == [10, 20]


CALLER = contextvars.ContextVar("caller", default=None)


async def test_a_batch_runs_in_no_callers_context():
    seen = []

    async def flush(batch) -> None:
        seen.append(CALLER.get())
        for item, future in batch:
            resolve(future, item)

    batcher = MicroBatcher(flush, window_s=0.01)

    async def call(name: str, item: int) -> int:
        CALLER.set(name)  # as Ray marks the task a call runs in
        return await batcher.submit(item)

    assert await asyncio.gather(call("first", 1), call("second", 2)) == [1, 2]
    assert await call("third", 3) == 3  # sent when the loop turn ends, nothing out
    assert seen == [None, None]


async def test_an_error_reaches_only_its_own_caller():
    batcher = MicroBatcher(Recorder().flush, window_s=0.001)
    good, bad = await asyncio.gather(batcher.submit(1), batcher.submit(-1), return_exceptions=True)
    assert good == 10 and isinstance(bad, ValueError)


async def test_a_failed_flush_fails_every_caller_of_the_batch():
    async def broken(batch) -> None:
        raise ConnectionError("gone")

    batcher = MicroBatcher(broken, window_s=0.001)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_a_caller_that_gave_up_does_not_break_the_batch():
    recorder = Recorder()
    batcher = MicroBatcher(recorder.flush, window_s=0.02)
    impatient = asyncio.ensure_future(batcher.submit(1))
    patient = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == 20


async def slow(value, delay):
    await asyncio.sleep(delay)
    return value


async def test_ticket_box_answers_fast_items_and_tickets_slow_ones():
    box = TicketBox(hold_s=0.05)
    answers = await box.run([slow("fast", 0), slow("slow", 0.2), slow("also fast", 0.01)])
    assert answers[0] == "fast" and answers[2] == "also fast"
    assert isinstance(answers[1], Ticket)
    later = await box.collect([answers[1].id])
    while isinstance(later[0], Ticket):
        later = await box.collect([later[0].id])
    assert later == ["slow"]


async def test_ticket_box_returns_errors_as_values():
    async def boom():
        raise ValueError("no")

    [answer] = await TicketBox(hold_s=0.05).run([boom()])
    assert isinstance(answer, ValueError)


async def test_an_unknown_ticket_is_a_lookup_error():
    [answer] = await TicketBox().collect([12345])
    assert isinstance(answer, LookupError)


async def test_follow_tickets_resolves_fast_items_before_slow_ones_finish():
    box = TicketBox(hold_s=0.02)
    loop = asyncio.get_running_loop()
    batch = [(i, loop.create_future()) for i in range(2)]
    follower = asyncio.ensure_future(
        follow_tickets(batch, box.run([slow("a", 0), slow("b", 0.3)]), box.collect)
    )
    fast, slow_one = batch[0][1], batch[1][1]
    assert await asyncio.wait_for(fast, 0.2) == "a"
    assert not slow_one.done()
    await follower
    assert slow_one.result() == "b"
