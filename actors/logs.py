"""The one-line-per-payment log of an actor, in a JSON file of its own.

An actor's ordinary logs follow the job's ``ray.LoggingConfig`` (JSON lines on the
worker's stderr file, which Ray's log monitor tails and publishes line by line). The
payment outcome lines are the high-volume kind, one per payment: written that way they
cost ~75 µs of CPU each (formatting, Ray's per-record context lookup, the log monitor,
the GCS). Like Serve's access logs (``logs/serve/``), they go to a file of their own
instead, ``<session>/logs/raypay/<name>_<pid>.log``: Ray's JSON formatter, Ray's
context fields looked up once per process, a file rotated at Ray's size limits,
~20 µs a line. The dashboard's Logs view lists it with the node's other files.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path
from typing import Any

import ray
from ray._common.filters import CoreContextFilter
from ray._common.formatters import JSONFormatter

# Ray's per-call context (the task), which changes with every call; the rest is fixed.
_PER_CALL = {"task_id", "task_name", "task_func_name"}


class _FixedContext(logging.Filter):
    """Ray's context of this process (job, node, worker, actor), looked up once."""

    def __init__(self, context: dict[str, Any]) -> None:
        super().__init__()
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.update(self.context)
        return True


class _CountingRotatingFile(logging.handlers.RotatingFileHandler):
    """Rotates at ``maxBytes`` like its base, but decides by counting what it wrote: the
    base stats the file and formats every record a second time to measure it."""

    def _open(self):  # type: ignore[no-untyped-def]
        stream = super()._open()
        self.written = stream.seek(0, os.SEEK_END)
        return stream

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        self.written += len(text) + 1
        return text

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        return 0 < self.maxBytes <= self.written


def logs_dir() -> Path | None:
    """This Ray node's log folder (as Serve finds it), None outside Ray."""
    node = ray._private.worker._global_node
    return Path(node.get_logs_dir_path()) if node is not None else None


def outcome_log(name: str) -> logging.Logger:
    """The logger for ``name``'s payment outcome lines (one file per process)."""
    logger = logging.getLogger(f"raypay.outcomes.{name}")
    folder = logs_dir()
    if folder is None or logger.handlers:
        return logger  # outside Ray: the records propagate to the root logger
    folder = folder / "raypay"
    folder.mkdir(parents=True, exist_ok=True)
    node = ray._private.worker._global_node
    handler = _CountingRotatingFile(
        folder / f"{name}_{os.getpid()}.log",
        maxBytes=getattr(node, "max_bytes", 0) or 0,
        backupCount=getattr(node, "backup_count", 0) or 0,
    )
    handler.setFormatter(JSONFormatter())
    context = CoreContextFilter.get_ray_core_logging_context()
    fixed = {k: v for k, v in context.items() if k not in _PER_CALL and v not in (None, "")}
    handler.addFilter(_FixedContext(fixed))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
