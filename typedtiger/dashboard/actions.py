"""The dashboard's actions: retry, delete or cancel a task; purge a queue's errored tasks; pause or
unpause a queue. Each is asked for (a confirmation page, ``question``) and then done
(``perform``, on a POST), through the Tiger and Task APIs the admin commands use too."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import attrs

from typedtiger._queues import valid_queue_name
from typedtiger.backends.base import TaskState
from typedtiger.commands._admin_common import parse_duration
from typedtiger.exceptions import TaskNotFound
from typedtiger.task import Task
from typedtiger.tiger import Tiger

__all__ = ["ACTIONS", "Action", "ActionError", "Done", "Params"]

#: Errored tasks a purge removes per call (keeps each Redis call short).
_PURGE_CHUNK: Final = 1000


class ActionError(ValueError):
    """An action that cannot be done as asked; the message is for the user."""


@attrs.frozen
class Params:
    """What an action is asked to act on (from the query string or the form), checked."""

    queue: str
    task_id: str = ""
    state: TaskState | None = None
    #: A duration as typed (pause: how long; purge: failed longer ago than).
    duration: str = ""

    @classmethod
    def read(cls, fields: Mapping[str, str]) -> Params:
        queue = fields.get("queue", "")
        if not valid_queue_name(queue):
            raise ActionError(f"not a queue name: {queue!r}")
        state = fields.get("state") or None
        if state is not None and state not in TaskState.__members__.values():
            raise ActionError(f"not a task state: {state!r}")
        return cls(
            queue=queue,
            task_id=fields.get("id", ""),
            state=None if state is None else TaskState(state),
            duration=fields.get("duration", "").strip(),
        )

    def seconds(self, positive: bool) -> float:
        try:
            seconds = parse_duration(self.duration)
        except ValueError as exc:
            raise ActionError(str(exc)) from exc
        if positive and seconds <= 0:
            raise ActionError("the duration must be longer than 0 seconds")
        return seconds


@attrs.frozen
class Done:
    """Where to go once an action is done (path, query) and, for a purge, how many tasks went."""

    path: str
    query: Mapping[str, str]
    count: int | None = None


@attrs.frozen
class Action:
    name: str
    #: The button's label.
    label: str
    #: Whether the action names a task (else a queue).
    on_task: bool
    #: Which form field it asks for: "" (none) or "duration".
    asks: str
    question: Callable[[Params], str]
    perform: Callable[[Tiger, Params], Done]
    #: What the next page says it did (``{n}``: the count).
    done: str


def _task_page(params: Params) -> Mapping[str, str]:
    return {"id": params.task_id}


def _list_page(params: Params, state: TaskState) -> Mapping[str, str]:
    return {"queue": params.queue, "state": state.value}


def _errored(tiger: Tiger, params: Params) -> Task:
    if not params.task_id:
        raise ActionError("no task id given")
    task = Task.from_id(tiger, params.queue, TaskState.ERROR, params.task_id)
    return task


def _retry(tiger: Tiger, params: Params) -> Done:
    task = _errored(tiger, params)
    if task.broken is not None:
        raise ActionError(f"the task's payload is broken ({task.broken}): delete it instead")
    task.retry()
    return Done("/task", _task_page(params))


def _delete(tiger: Tiger, params: Params) -> Done:
    _errored(tiger, params).delete()
    return Done("/tasks", _list_page(params, TaskState.ERROR))


def _cancel(tiger: Tiger, params: Params) -> Done:
    state = params.state
    if state not in (TaskState.QUEUED, TaskState.SCHEDULED):
        raise ActionError("only queued or scheduled tasks are cancelled")
    # (Task.cancel, as TaskTiger's, removes scheduled tasks only; `typedtiger cancel` and this
    # remove queued ones too.)
    removed = params.task_id and tiger.backend.remove(
        params.queue, state, params.task_id, tiger.clock.now()
    )
    if not removed:
        raise TaskNotFound(f"task {params.task_id} is not {state} in queue {params.queue!r}")
    return Done("/tasks", _list_page(params, state))


def _purge(tiger: Tiger, params: Params) -> Done:
    older_than = params.seconds(positive=False)
    before = tiger.clock.now() - older_than
    purged = 0
    while True:
        removed = tiger.backend.purge_errors(params.queue, before, _PURGE_CHUNK)
        purged += removed
        if removed < _PURGE_CHUNK:
            break
    return Done("/", {}, purged)


def _pause(tiger: Tiger, params: Params) -> Done:
    seconds = params.seconds(positive=True)
    tiger.set_queue_system_lock(params.queue, seconds)
    return Done("/", {})


def _unpause(tiger: Tiger, params: Params) -> Done:
    tiger.clear_queue_system_lock(params.queue)
    return Done("/", {})


def _purge_question(params: Params) -> str:
    return f"Delete the errored tasks of queue {params.queue} that failed longer ago than:"


ACTIONS: Final = {
    action.name: action
    for action in (
        Action(
            "retry",
            "Retry",
            True,
            "",
            lambda p: f"Queue the errored task {p.task_id} of {p.queue} again?",
            _retry,
            "The task is queued again.",
        ),
        Action(
            "delete",
            "Delete",
            True,
            "",
            lambda p: f"Delete the errored task {p.task_id} of {p.queue} for good?",
            _delete,
            "The task is deleted.",
        ),
        Action(
            "cancel",
            "Cancel",
            True,
            "",
            lambda p: f"Cancel (remove) the {p.state} task {p.task_id} of {p.queue}?",
            _cancel,
            "The task is cancelled.",
        ),
        Action(
            "purge",
            "Purge errors",
            False,
            "duration",
            _purge_question,
            _purge,
            "Purged {n} errored task(s).",
        ),
        Action(
            "pause",
            "Pause",
            False,
            "duration",
            lambda p: f"Pause queue {p.queue} (no worker takes its tasks) for:",
            _pause,
            "The queue is paused.",
        ),
        Action(
            "unpause",
            "Unpause",
            False,
            "",
            lambda p: f"Let workers take the tasks of queue {p.queue} again?",
            _unpause,
            "The queue is no longer paused.",
        ),
    )
}
