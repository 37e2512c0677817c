"""Automatic pipelining (fakeredis): concurrent commands of one loop turn share one
pipeline, and each keeps its own result or error."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from raypay.adapters.pipelining import PipelinedRedis

pytestmark = pytest.mark.unit


@pytest.fixture
def client():
    pool = aioredis.ConnectionPool(
        connection_class=fakeredis.FakeAsyncConnection,
        server=fakeredis.FakeServer(),
        decode_responses=True,
    )
    client = PipelinedRedis(connection_pool=pool)
    client.pipelines = 0
    original = client.pipeline

    def counting(*args, **kwargs):
        client.pipelines += 1
        return original(*args, **kwargs)

    client.pipeline = counting
    return client


async def test_concurrent_commands_share_one_pipeline(client):
    await asyncio.gather(*(client.set(f"k{i}", i) for i in range(20)))
    values = await asyncio.gather(*(client.get(f"k{i}") for i in range(20)))
    assert values == [str(i) for i in range(20)]
    assert client.pipelines == 2


async def test_each_command_keeps_its_own_error(client):
    await client.set("text", "x")
    ok, wrong = await asyncio.gather(
        client.incr("counter"), client.incr("text"), return_exceptions=True
    )
    assert ok == 1
    assert isinstance(wrong, ResponseError)


async def test_replies_are_parsed_as_for_single_commands(client):
    await client.hset("h", mapping={"a": "1", "b": "2"})
    hashes = await asyncio.gather(client.hgetall("h"), client.hgetall("missing"))
    assert hashes == [{"a": "1", "b": "2"}, {}]


async def test_scripts_load_themselves_inside_a_pipeline(client):
    script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    results = await asyncio.gather(*(script(keys=["n"], args=[2]) for _ in range(5)))
    assert sorted(results) == [2, 4, 6, 8, 10]


async def test_a_lone_command_goes_without_a_pipeline(client):
    assert await client.set("alone", 1)
    assert client.pipelines == 0
