"""`raypay up` restarts an embedded server that dies, and gives up on one that keeps dying."""

from __future__ import annotations

import time
import types

import pytest

from raypay.tools import up
from raypay.tools.stack import StackError

pytestmark = pytest.mark.unit


class FakeServer:
    def __init__(self, name: str, pid: int, alive: bool = True) -> None:
        self.name, self.pid, self._alive = name, pid, alive
        self.log_path, self.url = "log", "redis://x"

    def alive(self) -> bool:
        return self._alive

    def log_tail(self) -> str:
        return ""


def ticks(monkeypatch, count: int) -> None:
    """Let `_block` look ``count`` times, then stop it like Ctrl-C would."""
    calls = iter(range(count))

    def sleep(_: float) -> None:
        if next(calls, None) is None:
            raise KeyboardInterrupt

    monkeypatch.setattr(up.time, "sleep", sleep)


def test_a_dead_server_is_started_again(monkeypatch):
    started = []

    def start():
        started.append(FakeServer("redis-server", 100 + len(started)))
        return started[-1]

    entry = up.Supervised(FakeServer("redis-server", 1, alive=False), start)
    ticks(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        up._block([entry])
    assert entry.server is started[0] and entry.restarts == 1


def test_a_server_that_keeps_dying_is_an_error(monkeypatch):
    entry = up.Supervised(
        FakeServer("tansu", 1, alive=False), lambda: FakeServer("tansu", 2, alive=False)
    )
    ticks(monkeypatch, 100)
    with pytest.raises(StackError, match="tansu"):
        up._block([entry])
    assert entry.restarts == up.MAX_RESTARTS


def test_a_server_that_runs_a_while_between_deaths_is_started_again_every_time(monkeypatch):
    # A chaos run, or months of uptime, kill it many times: no crash loop, no stop.
    clock = iter(range(0, 10_000, 60))  # a minute of life before each death
    # up's own clock only (patching time.monotonic itself would reach the event loop).
    fake_time = types.SimpleNamespace(monotonic=lambda: float(next(clock)), sleep=time.sleep)
    monkeypatch.setattr(up, "time", fake_time)
    started = []

    def start():
        started.append(FakeServer("redis-server", 100 + len(started), alive=False))
        return started[-1]

    entry = up.Supervised(FakeServer("redis-server", 1, alive=False), start)
    ticks(monkeypatch, 3 * up.MAX_RESTARTS)
    with pytest.raises(KeyboardInterrupt):
        up._block([entry])
    assert entry.restarts == 3 * up.MAX_RESTARTS and entry.quick_deaths == 0
