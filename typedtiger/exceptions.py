"""The exceptions typedtiger raises or understands.

Tree::

    TypedTigerError                 base of every typedtiger error
    ├── TaskImportError             a task's function or class cannot be imported or is refused
    ├── TaskNotFound                a task is not in the state an operation needs
    ├── QueueFullException          enqueue refused by ``max_queue_size``
    ├── PayloadError                a stored task payload cannot be decoded
    ├── BackendUnavailable          the storage cannot serve now (unreachable, read-only, full)
    ├── StorageDataError            a stored key or task has data of the wrong type or form
    ├── StorageGaveUp               a worker stopped retrying an unavailable storage
    ├── ChildProcessDied            a task's process died without reporting (exit code/signal)
    ├── DependencyFailed            recorded: a task it was enqueued after failed for good
    ├── NotInitialized              a lazily created Tiger was used before ``init``
    ├── TaskFailed                  ``Task.result()``: the task failed for good (remote error)
    ├── ResultExpired               ``Task.result()``: no result is kept (any more) for the task
    └── ResultTimeout               ``Task.result()``: no result within the timeout (TimeoutError)
    JobTimeoutException             a task ran past its hard timeout (raised in the task)
    RetryException                  raised by a task to ask for a retry
    StopRetry                       raised by a retry policy to stop retrying

``ArgumentError`` (a ``TypeError``) is raised at enqueue time for arguments JSON cannot carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typedtiger._policies import RetryPolicy


class TypedTigerError(Exception):
    """Base class of typedtiger's own errors."""


class TaskImportError(TypedTigerError):
    """A task function, runner class or exception class named in a payload cannot be used."""


class TaskNotFound(TypedTigerError):
    """The task does not exist in the state the operation needs."""


class QueueFullException(TypedTigerError):
    """The queue already holds ``max_queue_size`` tasks (queued, active and scheduled)."""


class PayloadError(TypedTigerError):
    """A stored task payload is not valid JSON or misses or mistypes a field."""


class BackendUnavailable(TypedTigerError):
    """The storage cannot serve now, but may later: it cannot be reached (connection refused,
    timeout), or it refuses writes for a while (a read-only replica after a failover, loading
    its data, busy with a script, out of memory under ``noeviction``, a failed save)."""


class StorageDataError(TypedTigerError):
    """A stored key or task holds data of the wrong type or form (``WRONGTYPE``, a counter that
    is not a number): that key or task is skipped or quarantined, everything else goes on."""


class StorageGaveUp(TypedTigerError):
    """A worker stopped retrying an unavailable storage: its ``storage_retry_deadline`` passed,
    or it was asked to stop. Tasks it was running are left to the expiry requeue."""


class NotInitialized(TypedTigerError):
    """A Tiger created without a backend was used before ``Tiger.init`` was called."""


class ChildProcessDied(TypedTigerError):
    """The process running a task exited or was killed without reporting an outcome.

    ``retry_on=[JobTimeoutException]`` matches it too (TaskTiger records such a death as a
    hard timeout)."""


class DependencyFailed(TypedTigerError):
    """Recorded, never raised: the task was cancelled (moved to error without running) because
    a task it was enqueued ``after`` failed for good, was deleted or was cancelled itself."""


class TaskFailed(TypedTigerError):
    """The task whose result was asked for failed for good. ``exception_name`` is the remote
    exception's "module:qualname", ``message`` its text, ``traceback`` its formatted traceback
    (None when tracebacks are not stored), ``time_failed`` when it failed (epoch seconds)."""

    def __init__(
        self,
        task_id: str,
        exception_name: str,
        message: str,
        traceback: str | None = None,
        time_failed: float | None = None,
    ) -> None:
        super().__init__(f"task {task_id} failed: {exception_name}: {message}")
        self.task_id = task_id
        self.exception_name = exception_name
        self.message = message
        self.traceback = traceback
        self.time_failed = time_failed


class ResultExpired(TypedTigerError):
    """No result is kept for the task: its ``result_ttl`` passed, or the task is gone without
    one (deleted, or run by a worker that keeps no results, such as TaskTiger's)."""


class ResultTimeout(TypedTigerError, TimeoutError):
    """The task's result was not there within the time ``Task.result()`` was given."""


class ArgumentError(TypeError):
    """Task arguments that the JSON wire format cannot carry faithfully."""


class JobTimeoutException(Exception):
    """The task ran longer than its hard timeout and was stopped."""


class StopRetry(Exception):
    """Raised by a retry policy when no further retry should happen."""


class RetryException(Exception):
    """Raise inside a task to have it retried.

    ``method`` overrides the task's retry policy for this failure (``None`` uses the task's policy,
    or ``Config.default_retry`` if it has none). With ``original_traceback=True`` the traceback of
    the exception being handled is stored instead of this one's. With ``log_error=False`` the
    failure is logged as a warning, and when retries are exhausted the task is removed instead of
    being kept in the error state.
    """

    def __init__(
        self,
        method: RetryPolicy | None = None,
        original_traceback: bool = False,
        log_error: bool = True,
    ) -> None:
        super().__init__()
        self.method = method
        self.original_traceback = original_traceback
        self.log_error = log_error
