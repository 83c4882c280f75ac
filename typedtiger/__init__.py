"""typedtiger: a strictly typed task queue on Redis with TaskTiger's features.

The everyday API is re-exported here; see ``typedtiger.backends.redis``/``fake`` for storage,
``typedtiger.executor``, ``typedtiger.runner``, ``typedtiger.clock``, ``typedtiger.logging``,
``typedtiger.testing`` and ``typedtiger.spec`` for the rest.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typedtiger._status import Status, TaskStatus
    from typedtiger._worker_info import RunningTask, WorkerInfo
    from typedtiger.backends.base import TaskState
    from typedtiger.config import Config
    from typedtiger.exceptions import (
        JobTimeoutException,
        QueueFullException,
        ResultExpired,
        ResultTimeout,
        RetryException,
        StopRetry,
        TaskFailed,
        TaskImportError,
        TaskNotFound,
    )
    from typedtiger.runner import BatchCall
    from typedtiger.spec import (
        RetryPolicy,
        Schedule,
        TaskSpec,
        cron,
        exponential,
        fixed,
        linear,
        periodic,
    )
    from typedtiger.task import Task
    from typedtiger.tiger import Tiger
    from typedtiger.worker import Worker

#: Where each name is defined: imported on first access (PEP 562), so that ``python -m
#: typedtiger.cli`` starts in cli.py, which loads everything with the cyclic GC paused.
_EXPORTS = {
    "TaskState": "typedtiger.backends.base",
    "Config": "typedtiger.config",
    "JobTimeoutException": "typedtiger.exceptions",
    "QueueFullException": "typedtiger.exceptions",
    "RetryException": "typedtiger.exceptions",
    "StopRetry": "typedtiger.exceptions",
    "TaskImportError": "typedtiger.exceptions",
    "TaskNotFound": "typedtiger.exceptions",
    "TaskFailed": "typedtiger.exceptions",
    "ResultExpired": "typedtiger.exceptions",
    "ResultTimeout": "typedtiger.exceptions",
    "Status": "typedtiger._status",
    "TaskStatus": "typedtiger._status",
    "BatchCall": "typedtiger.runner",
    "RetryPolicy": "typedtiger.spec",
    "Schedule": "typedtiger.spec",
    "TaskSpec": "typedtiger.spec",
    "cron": "typedtiger.spec",
    "exponential": "typedtiger.spec",
    "fixed": "typedtiger.spec",
    "linear": "typedtiger.spec",
    "periodic": "typedtiger.spec",
    "Task": "typedtiger.task",
    "Tiger": "typedtiger.tiger",
    "Worker": "typedtiger.worker",
    "RunningTask": "typedtiger._worker_info",
    "WorkerInfo": "typedtiger._worker_info",
}


if not TYPE_CHECKING:  # (hidden from type checkers: a misspelt name must stay an error)

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'typedtiger' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_EXPORTS})


__all__ = [
    "BatchCall",
    "Config",
    "JobTimeoutException",
    "QueueFullException",
    "ResultExpired",
    "ResultTimeout",
    "RetryException",
    "RetryPolicy",
    "RunningTask",
    "Schedule",
    "Status",
    "StopRetry",
    "Task",
    "TaskFailed",
    "TaskImportError",
    "TaskNotFound",
    "TaskSpec",
    "TaskState",
    "TaskStatus",
    "Tiger",
    "Worker",
    "WorkerInfo",
    "cron",
    "exponential",
    "fixed",
    "linear",
    "periodic",
]
