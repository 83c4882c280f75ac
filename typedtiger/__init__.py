"""typedtiger: a strictly typed task queue on Redis with TaskTiger's features.

The everyday API is re-exported here; see ``typedtiger.backends.redis``/``fake`` for storage,
``typedtiger.executor``, ``typedtiger.runner``, ``typedtiger.clock``, ``typedtiger.logging``,
``typedtiger.testing`` and ``typedtiger.spec`` for the rest.
"""

from typedtiger.backends.base import TaskState
from typedtiger.config import Config
from typedtiger.exceptions import (
    JobTimeoutException,
    QueueFullException,
    RetryException,
    StopRetry,
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

__all__ = [
    "BatchCall",
    "Config",
    "JobTimeoutException",
    "QueueFullException",
    "RetryException",
    "RetryPolicy",
    "Schedule",
    "StopRetry",
    "Task",
    "TaskImportError",
    "TaskNotFound",
    "TaskSpec",
    "TaskState",
    "Tiger",
    "Worker",
    "cron",
    "exponential",
    "fixed",
    "linear",
    "periodic",
]
