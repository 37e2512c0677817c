"""Batched script calls (raypay.adapters.script_batch) on fakeredis: the calls of one
loop turn travel as one EVALSHA, each keeps its own result, and one call's error stays
its own."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError

from raypay.adapters.script_batch import BatchedScript

pytestmark = pytest.mark.unit

BODY = """
if ARGV[1] == 'wrong type' then return redis.call('INCR', KEYS[1]) end
if ARGV[1] == 'lua error' then error('boom') end
redis.call('SET', KEYS[1], ARGV[1])
return {KEYS[1], ARGV[1], #ARGV}
"""


async def test_the_calls_of_one_turn_share_one_evalsha_and_keep_their_results(redis):
    script = BatchedScript(redis, BODY)
    await script(keys=["z"], args=["0"])  # loads the script (the first EVALSHA: NOSCRIPT)
    sent = []
    execute = redis.execute_command

    async def counting(*args, **options):
        sent.append(args[0])
        return await execute(*args, **options)

    redis.execute_command = counting
    results = await asyncio.gather(
        script(keys=["a"], args=["1"]), script(keys=["b"], args=["2", "x", "y"])
    )
    assert results == [["a", "1", 1], ["b", "2", 3]]
    assert sent.count("EVALSHA") == 1
    assert await redis.mget("a", "b") == ["1", "2"]


async def test_one_calls_error_is_its_own(redis):
    await redis.hset("h", "f", "v")
    script = BatchedScript(redis, BODY)
    results = await asyncio.gather(
        script(keys=["a"], args=["1"]),
        script(keys=["h"], args=["wrong type"]),
        script(keys=["c"], args=["lua error"]),
        script(keys=["d"], args=["4"]),
        return_exceptions=True,
    )
    assert results[0] == ["a", "1", 1] and results[3] == ["d", "4", 1]
    assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])
    assert isinstance(results[2], ResponseError)
    assert [await redis.get("a"), await redis.get("d")] == ["1", "4"]  # slots apart


async def test_calls_in_later_turns_go_in_later_batches(redis):
    script = BatchedScript(redis, BODY)
    assert await script(keys=["a"], args=["1"]) == ["a", "1", 1]
    assert await script(keys=["a"], args=["2"]) == ["a", "2", 1]
    assert await redis.get("a") == "2"


def test_a_batch_is_grouped_by_the_slot_of_each_calls_keys():
    from raypay.adapters.script_batch import by_slot, packed

    calls = [((["{vs1}:a", "{vs1}:b"], ["x"]), None), ((["{vs2}:c"], []), None)]
    calls.append(((["{vs1}:d"], ["y", "z"]), None))
    groups = by_slot(calls, lambda key: key[:5])
    assert {slot: [c[0][0][0] for c in group] for slot, group in groups.items()} == {
        "{vs1}": ["{vs1}:a", "{vs1}:d"],
        "{vs2}": ["{vs2}:c"],
    }
    assert packed(groups["{vs1}"]) == (
        ["{vs1}:a", "{vs1}:b", "{vs1}:d"],
        [2, 2, 1, "x", 1, 2, "y", "z"],
    )


def test_redis_pys_own_failure_under_a_dying_node_is_a_lost_connection_and_ours_is_not():
    import redis.asyncio.connection as inside_redis

    from raypay.adapters.pipelining import lost, raised_by_client

    try:
        exec(compile("None.writelines([])", inside_redis.__file__, "exec"))
    except AttributeError as exc:
        assert raised_by_client(exc)
        assert type(lost(exc)).__name__ == "ConnectionError"
    try:
        None.writelines([])  # type: ignore[attr-defined]
    except AttributeError as exc:
        assert not raised_by_client(exc)
        assert lost(exc) is exc
