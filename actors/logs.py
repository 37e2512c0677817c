"""The one-line-per-payment log of an actor, in a JSON file of its own.

An actor's ordinary logs follow the job's ``ray.LoggingConfig`` (JSON lines on the
worker's stderr file, which Ray's log monitor tails and publishes line by line). The
payment outcome lines are the high-volume kind, one per payment: written that way they
cost ~75 µs of CPU each (formatting, Ray's per-record context lookup, the log monitor,
the GCS). Like Serve's access logs (``logs/serve/``), they go to a file of their own
instead, ``<session>/logs/raypay/<name>_<pid>.log``: JSON lines with the keys of Ray's
JSON logs, Ray's context fields looked up once per process, a file rotated at Ray's
size limits, ~20 µs a line. The dashboard's Logs view lists it with the node's other
files. Only public Ray APIs: the runtime context and Ray's documented settings.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import time
from pathlib import Path
from typing import Any

import ray

# Ray's documented log rotation settings and their defaults (Ray's "Configuring Logging").
ROTATION_MAX_BYTES, ROTATION_BACKUP_COUNT = 512 * 1024 * 1024, 5

# A LogRecord's own attributes (Python's "LogRecord attributes"): everything else on a
# record came from ``extra=`` and becomes a key of the line.
_RECORD_ATTRS = frozenset(
    {
        "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName",
        "levelname", "levelno", "lineno", "message", "module", "msecs", "msg", "name",
        "pathname", "process", "processName", "relativeCreated", "stack_info", "thread",
        "threadName", "taskName",
    }
)  # fmt: skip


class _JSONLines(logging.Formatter):
    """One JSON object a record, with the keys of Ray's JSON logs: asctime, levelname,
    message, filename, lineno, process, the ``extra=`` fields, Ray's context of this
    process and timestamp_ns. The context never changes, so it is serialized once and
    appended as text; the second of asctime is formatted once a second."""

    def __init__(self, context: dict[str, Any]) -> None:
        super().__init__()
        self._skip = _RECORD_ATTRS | context.keys()
        self._tail = ", " + json.dumps(context)[1:] if context else "}"
        self._second, self._stamp = -1, ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "asctime": self.formatTime(record),
            "levelname": record.levelname,
            "message": record.getMessage(),
            "filename": record.filename,
            "lineno": record.lineno,
            "process": record.process,
        }
        if record.exc_info:
            line["exc_text"] = record.exc_text or self.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in self._skip and key[0] != "_":
                line[key] = value
        line["timestamp_ns"] = int(record.created * 1e9)
        return json.dumps(line, default=str)[:-1] + self._tail


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
    """This Ray node's log folder, None outside Ray. Ray puts it at
    ``<temp dir>/<session name>/logs``; both parts come from the runtime context."""
    if not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    return Path(context.get_temp_dir()) / context.get_session_name() / "logs"


def rotation_limits() -> tuple[int, int]:
    """(max bytes, backup count) from Ray's ``RAY_ROTATION_MAX_BYTES`` and
    ``RAY_ROTATION_BACKUP_COUNT``, as Ray's own log files on this node rotate."""
    max_bytes = int(os.environ.get("RAY_ROTATION_MAX_BYTES", ROTATION_MAX_BYTES))
    backup_count = int(os.environ.get("RAY_ROTATION_BACKUP_COUNT", ROTATION_BACKUP_COUNT))
    return max_bytes, backup_count


def ray_context() -> dict[str, str]:
    """Ray's context of this process (job, node, worker, and actor when in one): the
    fields Ray's JSON logs carry that stay the same for every call, unlike the task's."""
    context = ray.get_runtime_context()
    fields = {
        "job_id": context.get_job_id(),
        "worker_id": context.get_worker_id(),
        "node_id": context.get_node_id(),
    }
    if actor_id := context.get_actor_id():  # None in a driver or a task
        fields.update(actor_id=actor_id, actor_name=context.get_actor_name())
    return {key: value for key, value in fields.items() if value not in (None, "")}


def outcome_log(name: str) -> logging.Logger:
    """The logger for ``name``'s payment outcome lines (one file per process)."""
    logger = logging.getLogger(f"raypay.outcomes.{name}")
    folder = logs_dir()
    if folder is None or logger.handlers:
        return logger  # outside Ray: the records propagate to the root logger
    folder = folder / "raypay"
    folder.mkdir(parents=True, exist_ok=True)
    max_bytes, backup_count = rotation_limits()
    handler = _CountingRotatingFile(
        folder / f"{name}_{os.getpid()}.log", maxBytes=max_bytes, backupCount=backup_count
    )
    handler.setFormatter(_JSONLines(ray_context()))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
