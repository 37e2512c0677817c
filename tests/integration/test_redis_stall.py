"""A healthy Redis that stalls for a moment is waited out; one that stays away is a 503.

The embedded Redis fsyncs every write (``appendfsync always``), so on a busy host a
batch's answer can take over a second now and then (README: "Durability and Redis
stalls"). ``DEBUG SLEEP`` stops the real redis-server for a fixed time, the same from
the client's side as an fsync that will not return.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis

from raypay import bootstrap
from raypay.adapters.redis_client import translated
from raypay.domain.errors import StoreUnavailable
from raypay.settings import Settings
from raypay.tools.stack import free_port, start_redis

pytestmark = pytest.mark.integration

STALL_S = 1.5  # longer than the old 1 s timeout, well inside the default
TURNS = 400  # loop turns with a write each, during the stall; the pool holds 256


async def _write_during_a_stall(url: str, settings: Settings) -> float:
    """Stop Redis for STALL_S, write meanwhile through the service's client; seconds taken."""
    admin = redis.Redis.from_url(url)
    client = bootstrap.redis_client(settings)
    try:
        await client.ping()  # connected before the stall
        stall = asyncio.create_task(
            asyncio.to_thread(admin.execute_command, "DEBUG", "SLEEP", STALL_S)
        )
        await asyncio.sleep(0.2)  # the server is asleep now
        started = time.monotonic()
        try:
            async with translated():
                await client.set("stall-test", "written")
        finally:
            await stall
        return time.monotonic() - started
    finally:
        await client.aclose()
        admin.close()


async def test_a_redis_stall_shorter_than_the_timeout_is_waited_out_not_a_503(
    tmp_path: Path,
) -> None:
    port = free_port()
    with start_redis(tmp_path, port) as server:
        settings = Settings(redis_url=server.url)  # the default timeout
        assert settings.redis_timeout_s > STALL_S
        took = await _write_during_a_stall(server.url, settings)
        assert took > STALL_S - 0.5  # it did wait for the stalled server
        assert redis.Redis.from_url(server.url).get("stall-test") == b"written"

        # The same stall outlasting a shorter timeout: a clean, retriable 503.
        short = Settings(redis_url=server.url, redis_timeout_s=0.5)
        with pytest.raises(StoreUnavailable) as caught:
            await _write_during_a_stall(server.url, short)
        assert "TimeoutError" in caught.value.detail
        assert caught.value.retriable and "Retry-After" in caught.value.headers()


async def test_more_pipelines_than_connections_during_a_stall_wait_for_one_not_a_503(
    tmp_path: Path,
) -> None:
    # While Redis stalls, every loop turn's commands go out as a pipeline on a
    # connection of their own; more turns than the pool holds must wait for one.
    port = free_port()
    with start_redis(tmp_path, port) as server:
        admin = redis.Redis.from_url(server.url)
        client = bootstrap.redis_client(Settings(redis_url=server.url))
        try:
            await client.ping()
            stall = asyncio.create_task(
                asyncio.to_thread(admin.execute_command, "DEBUG", "SLEEP", STALL_S)
            )
            await asyncio.sleep(0.2)
            writes = []
            for i in range(TURNS):
                writes.append(asyncio.create_task(client.set(f"turn:{i}", i)))
                for _ in range(3):  # the write's pipeline leaves before the next one
                    await asyncio.sleep(0)
            results = await asyncio.gather(*writes, return_exceptions=True)
            await stall
            assert [r for r in results if r is not True] == []
            assert admin.get(f"turn:{TURNS - 1}") == str(TURNS - 1).encode()
        finally:
            await client.aclose()
            admin.close()
