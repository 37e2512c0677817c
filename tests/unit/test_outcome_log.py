"""The payment outcome log's file handler (actors/logs.py), without Ray."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from decimal import Decimal

import pytest

from actors.logs import _CountingRotatingFile, _JSONLines, logs_dir, outcome_log, rotation_limits

pytestmark = pytest.mark.unit


def test_it_rotates_at_the_size_limit_by_counting_what_it_wrote(tmp_path):
    handler = _CountingRotatingFile(tmp_path / "shard.log", maxBytes=1000, backupCount=2)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for n in range(100):
        handler.handle(logging.makeLogRecord({"msg": f"{n:049d}"}))  # 50 bytes a line
    handler.close()

    sizes = {path.name: path.stat().st_size for path in tmp_path.iterdir()}
    assert set(sizes) == {"shard.log", "shard.log.1", "shard.log.2"}
    assert all(1000 <= size <= 1050 for size in sizes.values())
    assert (tmp_path / "shard.log").read_text().splitlines()[-1] == f"{99:049d}"


def test_it_counts_what_the_file_already_held(tmp_path):
    (tmp_path / "shard.log").write_text("x" * 700)
    handler = _CountingRotatingFile(tmp_path / "shard.log", maxBytes=1000, backupCount=1)
    assert handler.written == 700
    handler.close()


def test_outside_ray_the_lines_go_to_the_ordinary_loggers(monkeypatch):
    monkeypatch.setattr("actors.logs.logs_dir", lambda: None)  # as in a process without Ray
    log = outcome_log("test-shard-without-ray")
    assert log.propagate and not log.handlers


CONTEXT = {"job_id": "01000000", "worker_id": "ab" * 28, "node_id": "cd" * 28,
           "actor_id": "ef" * 16, "actor_name": "t-shard-0"}  # fmt: skip


def write_lines(tmp_path, log_calls) -> list[dict]:
    """Log through the outcome file's formatter; the file's lines, parsed."""
    handler = _CountingRotatingFile(tmp_path / "shard.log", maxBytes=0, backupCount=0)
    handler.setFormatter(_JSONLines(CONTEXT))
    logger = logging.getLogger(f"test.outcomes.{tmp_path.name}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        log_calls(logger)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return [json.loads(line) for line in (tmp_path / "shard.log").read_text().splitlines()]


def test_a_line_carries_the_message_the_extra_fields_and_rays_context(tmp_path):
    extra = {"orderId": "o-1", "paymentId": "p-1", "outcome": "succeeded", "code": None,
             "latencyMs": 1.5, "shard": 3, "amount": Decimal("25.00")}  # fmt: skip
    [line] = write_lines(tmp_path, lambda log: log.warning("payment %s", "ok", extra=extra))

    assert line["message"] == "payment ok"
    assert line["levelname"] == "WARNING"
    assert {key: line[key] for key in extra} == {**extra, "amount": "25.00"}
    assert {key: line[key] for key in CONTEXT} == CONTEXT
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", line["asctime"])
    assert abs(line["timestamp_ns"] / 1e9 - time.time()) < 60
    assert line["process"] == os.getpid() and line["filename"] == "test_outcome_log.py"
    assert not {"msg", "args", "created", "exc_info"} & line.keys()


def test_an_exception_is_written_with_its_traceback(tmp_path):
    def fail(log: logging.Logger) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("payment failed", extra={"orderId": "o-2"})

    [line] = write_lines(tmp_path, fail)
    assert line["orderId"] == "o-2" and "ValueError: boom" in line["exc_text"]


def test_outside_ray_there_is_no_ray_log_folder(monkeypatch):
    # As in a process without Ray: in a full run, the integration layer's session Ray
    # is still up in this process when the unit tests run.
    monkeypatch.setattr("actors.logs.ray.is_initialized", lambda: False)
    assert logs_dir() is None


def test_the_rotation_limits_are_rays_settings(monkeypatch):
    monkeypatch.delenv("RAY_ROTATION_MAX_BYTES", raising=False)
    monkeypatch.delenv("RAY_ROTATION_BACKUP_COUNT", raising=False)
    assert rotation_limits() == (512 * 1024 * 1024, 5)  # Ray's documented defaults
    monkeypatch.setenv("RAY_ROTATION_MAX_BYTES", "1024")
    monkeypatch.setenv("RAY_ROTATION_BACKUP_COUNT", "1")
    assert rotation_limits() == (1024, 1)
