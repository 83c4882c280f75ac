"""Task: a handle on a stored task (or on a spec not yet queued)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from typedtiger import _context
from typedtiger._sync_only import sync_only
from typedtiger.backends.base import StoredTask, TaskState
from typedtiger.clock import due_at
from typedtiger.exceptions import PayloadError, TaskNotFound
from typedtiger.serialization import (
    ExecutionRecord,
    TaskPayload,
    decode_execution,
    decode_stored_payload,
    payload_as_dict,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from typedtiger._json import JSONValue
    from typedtiger.spec import TaskSpec
    from typedtiger.tiger import Tiger

__all__ = ["Task", "TaskState"]


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class Task:
    """A task: its payload, where it is filed (queue, state) and its failed executions.

    A task whose stored payload cannot be decoded is still listed: ``broken`` says why, and
    only ``delete``/``cancel`` work on it.
    """

    def __init__(
        self,
        tiger: Tiger,
        *,
        payload: TaskPayload,
        queue: str,
        state: TaskState | None,
        score: float | None = None,
        executions: tuple[ExecutionRecord, ...] = (),
        executions_count: int | None = None,
        broken: str | None = None,
    ) -> None:
        self._tiger = tiger
        self._payload = payload
        self._queue = queue
        self._state = state
        self._score = score
        self._executions = executions
        self._executions_count = executions_count
        self._broken = broken

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.serialized_func} {self._queue}/{self._state}>"

    # --- reading ------------------------------------------------------------------------

    @classmethod
    def from_stored(cls, tiger: Tiger, stored: StoredTask) -> Task:
        """The handle of a task read from the backend (broken payloads included)."""
        broken: str | None = None
        try:
            payload = decode_stored_payload(stored.id, stored.payload)
            executions = tuple(decode_execution(text) for text in stored.executions)
        except PayloadError as exc:
            broken = str(exc)
            payload = TaskPayload(id=stored.id, func="<broken>")
            executions = ()
        return cls(
            tiger,
            payload=payload,
            queue=stored.queue,
            state=stored.state,
            score=stored.score,
            executions=executions,
            executions_count=stored.executions_count,
            broken=broken,
        )

    @classmethod
    def from_id(
        cls,
        tiger: Tiger,
        queue: str,
        state: TaskState | str,
        task_id: str,
        load_executions: int = 0,
    ) -> Task:
        """The task ``task_id`` filed in ``queue`` under ``state``; TaskNotFound otherwise."""
        stored = tiger.backend.get_task(queue, TaskState(state), task_id, load_executions)
        if stored is None:
            raise TaskNotFound(f"task {task_id} is not {state} in queue {queue!r}")
        return cls.from_stored(tiger, stored)

    @classmethod
    def tasks_from_queue(
        cls,
        tiger: Tiger,
        queue: str,
        state: TaskState | str,
        skip: int = 0,
        limit: int = 1000,
        load_executions: int = 0,
    ) -> tuple[int, list[Task]]:
        """(how many tasks ``queue`` has in ``state``, a page of them, newest first)."""
        total, stored = tiger.backend.list_tasks(
            queue, TaskState(state), skip, limit, load_executions
        )
        return total, [cls.from_stored(tiger, item) for item in stored]

    @classmethod
    def from_spec(cls, tiger: Tiger, spec: TaskSpec) -> Task:
        """An unqueued handle for ``spec`` (for ``execute``, ``delay`` or rebuilding a unique
        task's id to ``cancel`` it)."""
        payload, queue = tiger.build(spec)
        return cls(tiger, payload=payload, queue=queue, state=None)

    @property
    def id(self) -> str:
        return self._payload.id

    @property
    def queue(self) -> str:
        return self._queue

    @property
    def state(self) -> TaskState | None:
        """Where the task was when this handle was made (None: not stored)."""
        return self._state

    @property
    def broken(self) -> str | None:
        """Why the stored payload could not be decoded, or None."""
        return self._broken

    @property
    def serialized_func(self) -> str:
        return self._payload.func

    @property
    def func(self) -> Callable[..., object]:
        """The task function (imported)."""
        return self._tiger.resolve_function(self._payload.func)[0]

    @property
    def args(self) -> tuple[JSONValue, ...]:
        return self._payload.args

    @property
    def kwargs(self) -> dict[str, JSONValue]:
        return dict(self._payload.kwargs)

    @property
    def payload(self) -> TaskPayload:
        """The decoded payload."""
        return self._payload

    @property
    def data(self) -> dict[str, Any]:
        """The payload as JSON data, with TaskTiger's field names."""
        return payload_as_dict(self._payload)

    @property
    def executions(self) -> tuple[ExecutionRecord, ...]:
        """The failed executions loaded with this handle (oldest first)."""
        return self._executions

    @property
    def scheduled_at(self) -> datetime | None:
        """When the task is due (scheduled), or was meant to run."""
        if self._state is TaskState.SCHEDULED and self._score is not None:
            return _utc(self._score)
        return _utc(self._payload.scheduled_at)

    @property
    def time_last_queued(self) -> datetime | None:
        return _utc(self._payload.time_last_queued)

    @property
    def ts(self) -> datetime | None:
        """The score in its state: queued/heartbeat/error time, or the scheduled time."""
        return _utc(self._score)

    # --- acting -------------------------------------------------------------------------

    def _require_state(self, *states: TaskState) -> TaskState:
        if self._state not in states:
            wanted = " or ".join(state.value for state in states)
            raise TaskNotFound(f"task {self.id} is {self._state}, not {wanted}")
        assert self._state is not None
        return self._state

    def n_executions(self) -> int:
        """How many times the task has failed so far (all of them, even trimmed ones)."""
        state = self._require_state(*TaskState)
        stored = self._tiger.backend.get_task(self._queue, state, self.id, 0)
        if stored is None:
            raise TaskNotFound(f"task {self.id} is no longer {state} in {self._queue!r}")
        return stored.executions_count

    def cancel(self) -> None:
        """Remove a queued or scheduled task.

        On a handle that was not read from storage (``from_spec``: a unique task rebuilt from
        its arguments), the task is looked up by its id in its queue.
        """
        if self._state is None:
            for state in (TaskState.QUEUED, TaskState.SCHEDULED):
                if self._tiger.backend.remove(self._queue, state, self.id):
                    return
            raise TaskNotFound(f"task {self.id} is neither queued nor scheduled in {self._queue!r}")
        state = self._require_state(TaskState.QUEUED, TaskState.SCHEDULED)
        self._remove(state)

    def delete(self) -> None:
        """Remove an errored task."""
        self._remove(self._require_state(TaskState.ERROR))

    def _remove(self, state: TaskState) -> None:
        if not self._tiger.backend.remove(self._queue, state, self.id):
            raise TaskNotFound(f"task {self.id} is not {state} in queue {self._queue!r}")
        self._state = None

    def retry(self) -> None:
        """Queue an errored task again."""
        self._require_state(TaskState.ERROR)
        self._move_to(TaskState.QUEUED, self._tiger.clock.now())

    def update_scheduled_time(self, when: datetime | timedelta) -> None:
        """Move a scheduled task to another time."""
        self._require_state(TaskState.SCHEDULED)
        self._move_to(TaskState.SCHEDULED, due_at(when, self._tiger.clock.now()))

    def _move_to(self, to_state: TaskState, when: float) -> None:
        assert self._state is not None
        moved = self._tiger.backend.move(
            self._queue,
            self._state,
            self.id,
            to_state,
            when,
            self._tiger.config.publish_queued_tasks,
        )
        if not moved:
            raise TaskNotFound(f"task {self.id} is not {self._state} in queue {self._queue!r}")
        self._state, self._score = to_state, when

    def delay(self, when: datetime | timedelta | None = None) -> None:
        """Store this unqueued task (see ``from_spec``): queued now, or scheduled at ``when``."""
        if self._state is not None:
            raise TaskNotFound(f"task {self.id} is already {self._state}")
        stored = self._tiger.store([(self._payload, self._queue)], when=when)[0]
        self._payload, self._state, self._score = stored.payload, stored.state, stored._score

    def execute(self) -> object:
        """Run the task here and now, without queueing it; exceptions propagate."""
        func, batch = self._tiger.resolve_function(self._payload.func)
        runner = self._tiger.runner_for(self._payload.runner_class)
        with _context.running([self], batch, self._payload.func):
            return runner.run_eager_task(self, sync_only(func, self._payload.func), batch)
