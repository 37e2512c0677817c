"""The embedded stack's real servers: Redis keeps what it acknowledged, the broker delivers."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from raypay.tools.stack import (
    Server,
    StackError,
    create_topics,
    create_topics_async,
    free_port,
    start_broker,
    start_redis,
)

pytestmark = pytest.mark.integration


def test_redis_restart_on_the_same_data_dir_keeps_acknowledged_writes(tmp_path: Path) -> None:
    port = free_port()
    with start_redis(tmp_path, port) as server:
        client = redis.Redis.from_url(server.url)
        client.set("order:1", "paid")
        client.hset("order:2", mapping={"status": "pending_payment"})
        client.close()
    # stop() sent SIGTERM: Redis fsyncs the AOF before it exits.
    with start_redis(tmp_path, port) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.get("order:1") == "paid"
        assert client.hgetall("order:2") == {"status": "pending_payment"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    assert (tmp_path / "redis" / "appendonly.aof").stat().st_size > 0


def test_redis_on_a_taken_port_fails_fast_and_clearly(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        started = time.monotonic()
        with pytest.raises(StackError, match="already in use"):
            start_redis(tmp_path, sock.getsockname()[1])
        assert time.monotonic() - started < 2


def test_the_session_redis_answers_with_persistence_on(redis_server: Server) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert client.ping()
    assert client.config_get("appendfsync") == {"appendfsync": "always"}
    client.close()


async def test_broker_delivers_a_produced_record_to_a_consumer(broker: Server) -> None:
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    await create_topics_async(broker.url, [topic], partitions=1)
    await create_topics_async(broker.url, [topic], partitions=1)  # existing is fine
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"eventId": "e1"}', key=b"order-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker.url, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=15)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"order-1", b'{"eventId": "e1"}')


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_broker_has_the_service_topics(broker: Server) -> None:
    assert {"payment-succeeded", "payment-failed"} <= await _topics(broker.url)


async def test_start_broker_and_create_topics_work_inside_a_running_loop(tmp_path: Path) -> None:
    # Async fixtures call these sync helpers while pytest-asyncio's loop runs.
    with start_broker(free_port(), tmp_path) as server:
        create_topics(server.url, ["from-async-code"], partitions=1)
        assert "from-async-code" in await _topics(server.url)
