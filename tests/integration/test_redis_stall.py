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
