"""What became of a task, looked up by its id alone (``tiger.status``): the state it is filed
in, found through the queue its payload names, or the result kept after it ended."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Final

import attrs

from typedtiger._awaiting import failed
from typedtiger._results import decode_result
from typedtiger.backends.base import TaskState

if TYPE_CHECKING:
    from typedtiger._json import JSONValue
    from typedtiger.backends.base import Backend
    from typedtiger.clock import Clock
    from typedtiger.exceptions import TaskFailed

__all__ = ["Status", "TaskStatus", "find_status"]


class Status(StrEnum):
    """Where a task is in its life, as ``tiger.status`` tells it."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    ERROR = "error"
    #: Finished, with its result kept (``result_ttl``).
    SUCCEEDED = "succeeded"
    #: Not stored: never enqueued, finished without a result kept, expired or deleted.
    UNKNOWN = "unknown"


#: The state reported for a task filed in several (a unique task queued again while it runs
#: is active; one waiting for a retry and queued again is queued).
_PRECEDENCE: Final = (TaskState.ACTIVE, TaskState.QUEUED, TaskState.SCHEDULED, TaskState.ERROR)


@attrs.frozen(kw_only=True)
class TaskStatus:
    """What became of the task ``task_id``."""

    task_id: str
    status: Status
    #: The queue it is filed in (None when it is not stored).
    queue: str | None = None
    #: What it returned (SUCCEEDED), as JSON data.
    result: JSONValue = None
    #: The failure kept as its result (ERROR, for a task with ``result_ttl``), as raised by
    #: ``Task.result()``.
    failure: TaskFailed | None = attrs.field(default=None, eq=False)


def find_status(backend: Backend, clock: Clock, task_id: str) -> TaskStatus:
    """The status of the task ``task_id`` (one round trip for a task typedtiger enqueued)."""
    found = backend.task_status(task_id)
    kept = None if found.result is None else decode_result(found.result)
    if kept is not None and kept.expires <= clock.now():
        kept = None
    failure = None if kept is None or kept.failed is None else failed(task_id, kept.failed)
    filed = {state: queue for queue, state in found.places}
    for state in _PRECEDENCE:
        if state in filed:
            failure = failure if state is TaskState.ERROR else None
            return TaskStatus(
                task_id=task_id, status=Status(state.value), queue=filed[state], failure=failure
            )
    if failure is not None:
        return TaskStatus(task_id=task_id, status=Status.ERROR, failure=failure)
    if kept is not None:
        return TaskStatus(task_id=task_id, status=Status.SUCCEEDED, result=kept.value)
    return TaskStatus(task_id=task_id, status=Status.UNKNOWN)
