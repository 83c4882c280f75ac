"""What a TigerHarness run reports: each execution (done, retrying, removed, errored) and the
tasks left in storage, as values a test can assert on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import attrs

from typedtiger._json import JSONValue
from typedtiger._names import qualified_name
from typedtiger.backends.base import StoredTask, TaskState
from typedtiger.executor import Failed, Outcome
from typedtiger.serialization import TaskPayload
from typedtiger.task import Task
from typedtiger.tiger import Tiger

if TYPE_CHECKING:
    from typedtiger.backends.fake import FakeBackend

__all__ = [
    "Execution",
    "ExecutionStatus",
    "RunResult",
    "TaskFailed",
    "TaskRecord",
    "execution_of",
    "func_name",
    "utc",
]


def utc(timestamp: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, UTC)


def func_name(func: Callable[..., object] | str) -> str:
    """A task function as "module:qualname" (a string is taken as one)."""
    return func if isinstance(func, str) else qualified_name(func)


def _call_text(func: str, args: Sequence[JSONValue], kwargs: dict[str, JSONValue]) -> str:
    shown = [repr(arg) for arg in args] + [f"{key}={value!r}" for key, value in kwargs.items()]
    return f"{func}({', '.join(shown)})"


# --- what a run reports ---------------------------------------------------------------------


class ExecutionStatus(StrEnum):
    """How one execution of a task ended (compares equal to its string value)."""

    #: The task returned; it is gone (a periodic task's next run is scheduled).
    DONE = "done"
    #: The task raised and is scheduled to be retried (see ``Execution.retry_at``).
    RETRYING = "retrying"
    #: The task raised and went to the error state (no retry left, or none configured).
    ERROR = "error"
    #: The task raised ``RetryException(log_error=False)`` with no retry left: removed.
    REMOVED = "removed"


@attrs.frozen(kw_only=True)
class Execution:
    """One task run by the harness, and how it ended."""

    task_id: str
    #: "module:qualname" of the task function.
    func: str
    args: tuple[JSONValue, ...]
    kwargs: dict[str, JSONValue]
    queue: str
    #: The (manual) clock's time when the task started.
    started_at: datetime
    #: The clock's time when it returned or failed.
    finished_at: datetime
    status: ExecutionStatus
    #: "module:qualname" of the exception class, e.g. "builtins:ValueError"; None on success.
    exception_name: str | None = None
    #: The exception's message.
    exception: str | None = None
    traceback: str | None = attrs.field(default=None, repr=False)
    #: When the retry is due (status RETRYING).
    retry_at: datetime | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the task returned normally."""
        return self.status is ExecutionStatus.DONE

    @property
    def retry_in(self) -> float | None:
        """Seconds from the failure to the retry (status RETRYING), else None."""
        if self.retry_at is None:
            return None
        return (self.retry_at - self.finished_at).total_seconds()

    def describe(self) -> str:
        """One line: the call, where it ran and how it ended."""
        call = _call_text(self.func, self.args, self.kwargs)
        if self.succeeded:
            return f"{call} in queue {self.queue!r} succeeded"
        text = f"{call} in queue {self.queue!r} failed with {self.exception_name}"
        if self.exception:
            text += f": {self.exception}"
        if self.retry_at is not None:
            text += f" (retry at {self.retry_at.isoformat()})"
        return text


@attrs.frozen
class RunResult:
    """What a ``run_*``/``advance`` call ran, in the order it ran."""

    executions: tuple[Execution, ...] = ()

    @property
    def ran(self) -> int:
        """How many task executions there were (a batch of n counts n)."""
        return len(self.executions)

    @property
    def succeeded(self) -> int:
        """How many of them returned normally."""
        return sum(1 for execution in self.executions if execution.succeeded)

    @property
    def failed(self) -> int:
        """How many of them raised (retried, errored or removed)."""
        return self.ran - self.succeeded

    @property
    def failures(self) -> tuple[Execution, ...]:
        """The executions that raised."""
        return tuple(execution for execution in self.executions if not execution.succeeded)

    def of(self, func: Callable[..., object] | str) -> RunResult:
        """Only the executions of ``func`` (a task function or "module:qualname")."""
        name = func_name(func)
        return RunResult(tuple(e for e in self.executions if e.func == name))

    def __add__(self, other: RunResult) -> RunResult:
        return RunResult(self.executions + other.executions)


class TaskFailed(AssertionError):
    """A task failed during a run made with ``raise_errors=True``.

    ``execution`` is the failure (its ``traceback`` is in the message); ``result`` is what the
    run did up to and including it.
    """

    def __init__(self, execution: Execution, result: RunResult) -> None:
        self.execution = execution
        self.result = result
        message = f"task {execution.describe()}"
        if execution.traceback:
            message += f"\n\n{execution.traceback.rstrip()}"
        super().__init__(message)


@attrs.frozen(kw_only=True)
class TaskRecord:
    """A stored task, as ``queued()``/``scheduled()``/``errored()`` list it."""

    id: str
    #: "module:qualname" of the task function ("<broken>" if the payload cannot be read).
    func: str
    args: tuple[JSONValue, ...]
    kwargs: dict[str, JSONValue]
    queue: str
    state: TaskState
    #: When it is due (scheduled), or when it was meant to run.
    scheduled_at: datetime | None
    #: How many times it has failed so far.
    executions: int
    #: "module:qualname" of the exception of its last failure, if any.
    last_exception: str | None
    #: The message of its last failure.
    last_error: str | None = attrs.field(repr=False)
    #: The handle, to ``cancel``, ``retry``, ``delete``... it.
    task: Task = attrs.field(eq=False, repr=False)

    @classmethod
    def from_stored(cls, tiger: Tiger, stored: StoredTask) -> TaskRecord:
        task = Task.from_stored(tiger, stored)
        last = task.executions[-1] if task.executions else None
        return cls(
            id=task.id,
            func=task.serialized_func,
            args=task.args,
            kwargs=task.kwargs,
            queue=task.queue,
            state=stored.state,
            scheduled_at=task.scheduled_at,
            executions=stored.executions_count,
            last_exception=None if last is None else last.exception_name,
            last_error=None if last is None else last.exception,
            task=task,
        )


def execution_of(
    backend: FakeBackend, queue: str, task: TaskPayload, outcome: Outcome, now: float
) -> Execution:
    """How ``task``'s run ended, read from storage once the worker has recorded ``outcome``."""
    started = utc(outcome.time_started)
    if not isinstance(outcome, Failed):
        return Execution(
            task_id=task.id,
            func=task.func,
            args=task.args,
            kwargs=dict(task.kwargs),
            queue=queue,
            started_at=started,
            finished_at=utc(outcome.time_finished),
            status=ExecutionStatus.DONE,
        )
    states = {state for name, state in backend.find_task(task.id) if name == queue}
    retry_at = None
    if TaskState.ERROR in states:
        status = ExecutionStatus.ERROR
    elif TaskState.SCHEDULED in states:
        status = ExecutionStatus.RETRYING
        stored = backend.get_task(queue, TaskState.SCHEDULED, task.id, 0)
        retry_at = None if stored is None else utc(stored.score)
    elif states & {TaskState.QUEUED, TaskState.ACTIVE}:
        # A retry due at once (a zero delay) is already queued, or running now.
        status, retry_at = ExecutionStatus.RETRYING, utc(now)
    else:
        status = ExecutionStatus.REMOVED
    return Execution(
        task_id=task.id,
        func=task.func,
        args=task.args,
        kwargs=dict(task.kwargs),
        queue=queue,
        started_at=started,
        finished_at=utc(outcome.time_failed),
        status=status,
        exception_name=outcome.exception_name,
        exception=outcome.message,
        traceback=outcome.traceback,
        retry_at=retry_at,
    )
