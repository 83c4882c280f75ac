"""Structured logging: a processor adding the running task to log events, and a setup helper.

The library never configures logging on import; ``setup_structlog`` is called by the CLI (or by
an application that wants typedtiger's JSON lines).
"""

from __future__ import annotations

import logging as stdlib_logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from typedtiger._context import current_or_none

__all__ = ["setup_structlog", "typedtiger_processor"]


def typedtiger_processor(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add ``task_id`` (``task_ids`` for a batch), ``queue`` and ``task_func`` (TaskTiger's
    key; ``func`` too) while a task runs."""
    running = current_or_none()
    if running is None or not running.tasks:
        return event_dict
    first = running.tasks[0]
    if running.batch:
        event_dict.setdefault("task_ids", [task.id for task in running.tasks])
    event_dict.setdefault("task_id", first.id)
    event_dict.setdefault("queue", first.queue)
    event_dict.setdefault("task_func", running.serialized_func)
    event_dict.setdefault("func", running.serialized_func)
    return event_dict


def setup_structlog(level: int = stdlib_logging.INFO, stream: TextIO | None = None) -> None:
    """Configure structlog to write one JSON object per line (to stderr by default)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            typedtiger_processor,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream if stream is not None else sys.stderr),
        cache_logger_on_first_use=False,  # tests reconfigure (capture_logs)
    )
