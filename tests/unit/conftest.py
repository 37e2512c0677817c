"""Unit-test fixtures: a fresh in-process fakeredis (Lua via lupa) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest

from raypay.adapters.keys import Keys


@pytest.fixture
async def redis() -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    # A server of its own: fakeredis clients otherwise share state by host and port.
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def keys() -> Keys:
    return Keys("raypay")
