"""The names of RedisBackend's keys, and the keys each script declares in KEYS.

Every script refuses a key it was not given in KEYS (``_common.lua``), so these lists and the
scripts cannot drift apart unnoticed: a missing name fails the call with an UNDECLARED error.
The layout is TaskTiger's (docs/redis-layout.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from typedtiger.backends.base import Completion, NewTask, TaskState

__all__ = ["KeyLayout"]

_STATES = tuple(TaskState)


class KeyLayout:
    """Key names under ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def state(self, state: TaskState, queue: str) -> str:
        """The sorted set of ``queue``'s tasks in ``state``."""
        return self.key(state.value, queue)

    def names(self, state: TaskState) -> str:
        """The set of the names of the queues that hold tasks in ``state``."""
        return self.key(state.value)

    def task(self, task_id: str) -> str:
        return self.key("task", task_id)

    def lock(self, lock_id: str) -> str:
        return self.key("lockv2", lock_id)

    def qslock(self, queue: str) -> str:
        return self.key("qslock", queue)

    def claim(self, claimant: str) -> str:
        return self.key("claim", claimant)

    def activity(self) -> str:
        """The channel queued tasks are announced on (a channel, not a key)."""
        return self.key("activity")

    def queue_keys(self, queue: str) -> list[str]:
        """What a script working on one queue may touch of it: its sorted sets and the sets
        of queue names."""
        return [*(self.state(state, queue) for state in _STATES), *self.all_names()]

    def all_names(self) -> list[str]:
        return [self.names(state) for state in _STATES]

    def tasks(self, task_ids: Iterable[str]) -> list[str]:
        return [self.task(task_id) for task_id in task_ids]

    def locks(self, lock_ids: Iterable[str]) -> list[str]:
        return [self.lock(lock_id) for lock_id in lock_ids if lock_id]

    def enqueue_keys(self, tasks: Sequence[NewTask]) -> list[str]:
        """What an enqueue may touch: the queues' sorted sets but error's (a unique or periodic
        task is looked up in them), the sets of queued and scheduled queue names, the tasks;
        for a task enqueued after others, all of its queue's keys (it may be cancelled at once,
        to error) and those of the queues and tasks it waits for."""
        keys = [self.names(TaskState.QUEUED), self.names(TaskState.SCHEDULED)]
        for queue in dict.fromkeys(task.queue for task in tasks):
            keys += [self.state(state, queue) for state in _STATES if state != TaskState.ERROR]
        keys += self.tasks(task.id for task in tasks)
        for task in tasks:
            if task.after:
                keys += self.queue_keys(task.queue)
            for ref in task.after:
                keys += [*self.queue_keys(ref.queue), self.task(ref.id)]
        return keys

    def completion_keys(self, done: Completion) -> list[str]:
        """What completing ``done`` may touch: its queue's keys, its tasks and locks."""
        keys = [*self.queue_keys(done.queue), *self.tasks(done.task_ids)]
        return keys + self.locks(done.lock_ids)
