"""Task: a handle on a stored task (or on a spec not yet queued)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, cast, overload

from typing_extensions import TypeVar

from typedtiger._awaiting import await_for_result, wait_for_result
from typedtiger._context import running
from typedtiger._coroutines import running_to_end
from typedtiger._json import JSONValue, to_json_value
from typedtiger._priorities import queued_score, queued_time
from typedtiger.backends.base import (
    WAITING_SCORE,
    StoredTask,
    TaskDependencies,
    TaskExecutions,
    TaskRef,
    TaskState,
)
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
    from collections.abc import Callable, Sequence

    from typedtiger.spec import TaskSpec
    from typedtiger.tiger import Tiger

__all__ = ["Task", "TaskState", "refs_of"]


def refs_of(after: Task | Sequence[Task] | None) -> tuple[TaskRef, ...]:
    """The stored tasks of an ``after=`` argument; ValueError for a handle of a task that is
    not stored (``from_spec``, or run in eager mode: ``state`` None)."""
    tasks = () if after is None else (after,) if isinstance(after, Task) else tuple(after)
    for task in tasks:
        if not isinstance(task, Task):
            raise TypeError(f"after= takes Task handles, not {type(task).__name__}")
        if task.state is None and not task._tiger.config.always_eager:
            raise ValueError(f"after=: task {task.id} is not stored (its state is None)")
    return tuple(TaskRef(task.queue, task.id) for task in tasks)


#: What the task's function returns (``Task.result()``); ``object`` when not known.
R_co = TypeVar("R_co", default=object, covariant=True)


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class Task(Generic[R_co]):
    """A task: its payload, where it is filed (queue, state) and its failed executions.

    ``R`` is what its function returns: ``task_fn.delay(...)`` gives a ``Task[R]``, whose
    ``result()`` is an ``R`` (for a task enqueued with ``result_ttl``). A task whose stored
    payload cannot be decoded is still listed: ``broken`` says why, and only
    ``delete``/``cancel`` work on it.
    """

    def __init__(
        self,
        tiger: Tiger,
        *,
        payload: TaskPayload,
        queue: str,
        state: TaskState | None,
        score: float | None = None,
        executions: tuple[ExecutionRecord, ...] | None = None,
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
        #: The result of an eager run (``Config.always_eager``), as (value,); None: none.
        self._eager_result: tuple[JSONValue] | None = None

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.serialized_func} {self._queue}/{self._state}>"

    # --- reading ------------------------------------------------------------------------

    @classmethod
    def from_stored(
        cls, tiger: Tiger, stored: StoredTask, *, executions_loaded: bool = True
    ) -> Task:
        """The handle of a task read from the backend (broken payloads included).

        ``executions_loaded``: whether ``stored`` was read with its executions (the handle
        then holds them; otherwise it reads them from storage when asked)."""
        broken: str | None = None
        executions: tuple[ExecutionRecord, ...] | None = None
        try:
            if stored.broken is not None:
                raise PayloadError(stored.broken)
            payload = decode_stored_payload(stored.id, stored.payload)
            if executions_loaded:
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

    @overload
    @classmethod
    def from_id(cls, tiger: Tiger, task_id: str, /, *, load_executions: int = 0) -> Task: ...

    @overload
    @classmethod
    def from_id(
        cls,
        tiger: Tiger,
        queue: str,
        state: TaskState | str,
        task_id: str,
        load_executions: int = 0,
    ) -> Task: ...

    @classmethod
    def from_id(
        cls,
        tiger: Tiger,
        queue: str,
        state: TaskState | str | None = None,
        task_id: str | None = None,
        load_executions: int = 0,
    ) -> Task:
        """``from_id(tiger, task_id)``: the task ``task_id`` wherever it is stored (found as
        ``tiger.status`` finds it). ``from_id(tiger, queue, state, task_id)``: the task filed
        in ``queue`` under ``state``. TaskNotFound otherwise."""
        if state is None or task_id is None:
            task_id = queue
            found = tiger.status(task_id)
            if found.queue is None:
                raise TaskNotFound(f"task {task_id} is not stored ({found.status})")
            queue, state = found.queue, TaskState(found.status.value)
        stored = tiger.backend.get_task(queue, TaskState(state), task_id, load_executions)
        return cls._found(tiger, stored, load_executions > 0, (task_id, state, queue))

    @classmethod
    async def afrom_id(
        cls,
        tiger: Tiger,
        queue: str,
        state: TaskState | str,
        task_id: str,
        load_executions: int = 0,
    ) -> Task:
        """``from_id``, awaited on the running event loop (through ``tiger.async_backend()``)."""
        stored = await tiger.async_backend().get_task(
            queue, TaskState(state), task_id, load_executions
        )
        return cls._found(tiger, stored, load_executions > 0, (task_id, state, queue))

    @classmethod
    def _found(
        cls, tiger: Tiger, stored: StoredTask | None, loaded: bool, asked: tuple[str, str, str]
    ) -> Task:
        """The handle of ``stored`` (``loaded``: read with its executions); TaskNotFound for
        None, naming what was ``asked`` (task id, state, queue)."""
        if stored is None:
            task_id, state, queue = asked
            raise TaskNotFound(f"task {task_id} is not {state} in queue {queue!r}")
        return cls.from_stored(tiger, stored, executions_loaded=loaded)

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
        loaded = load_executions > 0
        return total, [cls.from_stored(tiger, item, executions_loaded=loaded) for item in stored]

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
        """The task's failed executions, oldest first.

        A handle read with ``load_executions`` (``from_id``, ``tasks_from_queue``) holds the
        latest ones read with it, as in TaskTiger. Any other handle (from ``delay``,
        ``enqueue``, or read without executions) reads every stored one at each access:
        TaskNotFound once the task is no longer stored.
        """
        if self._executions is not None:
            return self._executions
        return tuple(decode_execution(text) for text in self._read_executions(None).records)

    @property
    def scheduled_at(self) -> datetime | None:
        """When the task is due (scheduled), or was meant to run."""
        if self._state is TaskState.SCHEDULED and self._score is not None and not self.waiting:
            return _utc(self._score)
        return _utc(self._payload.scheduled_at)

    @property
    def waiting(self) -> bool:
        """Whether it was waiting for other tasks (``enqueue(after=...)``) when this handle
        was made: scheduled, but never due until they succeed (see ``dependencies``)."""
        return self._state is TaskState.SCHEDULED and self._score == WAITING_SCORE

    def dependencies(self) -> TaskDependencies:
        """The tasks it still waits for and those waiting for it, read from storage now."""
        return self._tiger.backend.dependencies(self.id)

    @property
    def time_last_queued(self) -> datetime | None:
        return _utc(self._payload.time_last_queued)

    @property
    def priority(self) -> int:
        """Its priority: higher is claimed first (see ``TaskSpec.priority``)."""
        return self._payload.priority

    @property
    def ts(self) -> datetime | None:
        """The time of its score: queued/heartbeat/error time, or the scheduled time (a
        queued score is that time less the priority's head start, typedtiger._priorities)."""
        if self._state is TaskState.QUEUED and self._score is not None:
            return _utc(queued_time(self._score, self._payload.priority))
        return _utc(self._score)

    # --- acting -------------------------------------------------------------------------

    def _read_executions(self, load: int | None) -> TaskExecutions:
        read = self._tiger.backend.task_executions(self.id, load)
        if read is None:
            raise TaskNotFound(f"task {self.id} is no longer stored")
        return read

    def n_executions(self) -> int:
        """How many times the task has failed so far (all of them, even trimmed ones), read
        from storage now, whatever state the task is in; TaskNotFound once it is gone."""
        return self._read_executions(0).count

    def cancel(self) -> None:
        """Remove the task from the scheduled state of its queue (TaskTiger's ``cancel``);
        TaskNotFound if it is not scheduled there now. A queued task is removed with
        ``typedtiger cancel``. Works on a handle rebuilt with ``from_spec`` (a unique task)."""
        self._remove(TaskState.SCHEDULED)

    def delete(self) -> None:
        """Remove the task from the error state of its queue; TaskNotFound if it is not
        errored there now."""
        self._remove(TaskState.ERROR)

    def _remove(self, state: TaskState) -> None:
        removed = self._tiger.backend.remove(self._queue, state, self.id, self._tiger.clock.now())
        if not removed:
            raise TaskNotFound(f"task {self.id} is not {state} in queue {self._queue!r}")
        self._state = None

    def retry(self) -> None:
        """Queue the task again from the error state of its queue; TaskNotFound if it is not
        errored there now."""
        self._move(TaskState.ERROR, TaskState.QUEUED, self._tiger.clock.now())

    def update_scheduled_time(self, when: datetime | timedelta) -> None:
        """Move the task, scheduled in its queue, to another time; TaskNotFound if it is not
        scheduled there now."""
        due = due_at(when, self._tiger.clock.now())
        self._move(TaskState.SCHEDULED, TaskState.SCHEDULED, due)

    def _move(self, from_state: TaskState, to_state: TaskState, when: float) -> None:
        moved = self._tiger.backend.move(
            self._queue,
            from_state,
            self.id,
            to_state,
            when,
            self._tiger.config.publish_queued_tasks,
        )
        if not moved:
            raise TaskNotFound(f"task {self.id} is not {from_state} in queue {self._queue!r}")
        if to_state is TaskState.QUEUED:
            when = queued_score(when, self._payload.priority)
        self._state, self._score = to_state, when

    def delay(self, when: datetime | timedelta | None = None) -> None:
        """Store this unqueued task (see ``from_spec``): queued now, or scheduled at ``when``."""
        if self._state is not None:
            raise TaskNotFound(f"task {self.id} is already {self._state}")
        stored = self._tiger.store([(self._payload, self._queue)], when=when)[0]
        self._payload, self._state, self._score = stored.payload, stored.state, stored._score

    def result(self, timeout: float | timedelta | None = None) -> R_co:
        """What the task returned, once it has run (enqueued with ``result_ttl``): waits up to
        ``timeout`` (seconds or a timedelta; None: as long as it takes), woken when the result
        is stored, not polling.

        Raises TaskFailed (the remote exception's name, message and traceback) if the task
        failed for good, ResultExpired if its result is no longer kept (or the task is gone
        without one), ResultTimeout (a TimeoutError) when ``timeout`` passes first, and
        ValueError for a task that keeps no result.
        """
        if self._eager_result is not None:
            return cast(R_co, self._eager_result[0])
        self._check_keeps_result()
        tiger = self._tiger
        value = wait_for_result(tiger.backend, self._queue, self.id, tiger.clock, timeout)
        return cast(R_co, value)

    async def aresult(self, timeout: float | timedelta | None = None) -> R_co:
        """``result``, awaited on the running event loop (through ``tiger.async_backend()``):
        the wait does not block the loop."""
        if self._eager_result is not None:
            return cast(R_co, self._eager_result[0])
        self._check_keeps_result()
        tiger = self._tiger
        backend = tiger.async_backend()
        return cast(
            R_co, await await_for_result(backend, self._queue, self.id, tiger.clock, timeout)
        )

    def _check_keeps_result(self) -> None:
        if self._payload.result_ttl is None:
            raise ValueError(
                f"task {self.id} ({self.serialized_func}) keeps no result: give it result_ttl"
            )

    def keep_eager_result(self, value: object) -> None:
        """Keep what an eager run returned, as a worker would (JSON, if ``result_ttl``)."""
        if self._payload.result_ttl is not None:
            where = f"the result of {self.serialized_func}"
            self._eager_result = (to_json_value(value, where),)

    def execute(self) -> object:
        """Run the task here and now, without queueing it; exceptions propagate."""
        func, batch = self._tiger.resolve_function(self._payload.func)
        runner = self._tiger.runner_class_for(self._payload.runner_class)(self._tiger)
        with running([self], batch, self._payload.func):
            return runner.run_eager_task(self, running_to_end(func, self._payload.func), batch)
