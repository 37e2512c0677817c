"""The payment outcome log's file handler (actors/logs.py), without Ray."""

from __future__ import annotations

import logging

import pytest

from actors.logs import _CountingRotatingFile, outcome_log

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
