"""Session fixtures shared by the integration and e2e layers: the real embedded servers.

``redis_server`` is a real redis-server (AOF on) and ``broker`` a real Tansu broker
with the service's topics, each on a free loopback port. Both start only when a test
asks for them, so unit tests run with nothing else running, and both are stopped in
the fixture's teardown even when tests fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from raypay.settings import Settings
from raypay.tools.stack import (
    Server,
    StackError,
    create_topics,
    free_port,
    start_broker,
    start_redis,
)


def _on_a_free_port(start: Callable[[int], Server], attempts: int = 3) -> Server:
    # free_port() hands out a port another process may grab before the server binds it.
    for attempt in range(attempts):
        try:
            return start(free_port())
        except StackError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("redis-data")
    server = _on_a_free_port(lambda port: start_redis(data_dir, port))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_dir: Path = tmp_path_factory.mktemp("broker-logs")
    server = _on_a_free_port(lambda port: start_broker(port, log_dir))
    try:
        settings = Settings()
        create_topics(server.url, settings.topics())
        yield server
    finally:
        server.stop()


# The Ray layer (local Ray, the Serve app, a Kafka consumer) builds on the servers above.
from raystack import app_args, app_settings, events, ray_local, service  # noqa: E402, F401
