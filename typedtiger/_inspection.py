"""Inspection and administration of queues on a Tiger's backend: sizes, stats, the task at the
head of each queue, pauses (queue system locks), task locks held, purging errored tasks, and the
live workers. A part of ``Tiger``, kept apart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from typedtiger._queues import queue_matches
from typedtiger._status import TaskStatus, find_status
from typedtiger._worker_info import WorkerInfo, decode_worker_info
from typedtiger.backends.base import Backend, TaskState
from typedtiger.backends.locks import HeldLock
from typedtiger.clock import Clock, to_timestamp
from typedtiger.config import Config

__all__ = ["QueueInspection"]


class QueueInspection:
    """TaskTiger's inspection and admin methods; ``Tiger`` provides the backend, config and
    clock they work on."""

    @property
    def backend(self) -> Backend:
        raise NotImplementedError

    @property
    def config(self) -> Config:
        raise NotImplementedError

    @property
    def clock(self) -> Clock:
        raise NotImplementedError

    def get_queue_sizes(self, queue: str, *, with_errors: bool = False) -> dict[TaskState, int]:
        """queued/active/scheduled -> number of tasks of ``queue`` (TaskTiger's shape);
        ``with_errors=True`` adds the error state (as ``get_queue_stats`` and
        ``get_sizes_for_queues_and_states`` do)."""
        sizes = self.backend.queue_sizes([queue])[queue]
        if not with_errors:
            del sizes[TaskState.ERROR]
        return sizes

    def get_sizes_for_queues_and_states(
        self, queues_and_states: Sequence[tuple[str, TaskState]]
    ) -> list[int]:
        """The size of each (queue, state)."""
        sizes = self.backend.queue_sizes(sorted({queue for queue, _ in queues_and_states}))
        return [sizes[queue][state] for queue, state in queues_and_states]

    def get_total_queue_size(self, queue: str) -> int:
        """Queued + active + scheduled tasks of ``queue`` (what ``max_queue_size`` counts)."""
        sizes = self.get_queue_sizes(queue)
        return sizes[TaskState.QUEUED] + sizes[TaskState.ACTIVE] + sizes[TaskState.SCHEDULED]

    def get_queue_stats(self) -> dict[str, dict[TaskState, int]]:
        """queue -> state -> size, for every queue that holds tasks."""
        return {
            queue: {state: n for state, n in sizes.items() if n}
            for queue, sizes in self.backend.queue_sizes(None).items()
        }

    def get_queued_ages(self, queues: Sequence[str] | None = None) -> dict[str, float]:
        """queue -> seconds the task queued longest has been waiting (since it was queued),
        for the queues given (None: every queue) that hold queued tasks."""
        if queues is None:
            queues = sorted(self.backend.queues_with_tasks(TaskState.QUEUED))
        now = self.clock.now()
        oldest = self.backend.oldest_queued(queues, now)
        return {queue: max(0.0, now - queued) for queue, queued in oldest.items()}

    def status(self, task_id: str) -> TaskStatus:
        """What became of the task ``task_id``, by its id alone: queued, scheduled, active or
        error (and its queue), succeeded (with the result it keeps), or unknown. One round trip
        for a task typedtiger enqueued (its payload names its queue: the id index); a task
        TaskTiger enqueued is looked for in every queue."""
        return find_status(self.backend, self.clock, task_id)

    def get_workers(self) -> list[WorkerInfo]:
        """The live workers, the longest-running first: those whose last beat is less than
        ``active_task_update_timeout`` old (a worker that stops takes itself out at once).
        PayloadError if a stored record is unreadable."""
        alive_since = self.clock.now() - self.config.active_task_update_timeout
        workers = [decode_worker_info(record) for record in self.backend.workers(alive_since)]
        return sorted(workers, key=lambda info: (info.started, info.id))

    def get_paused_queues(self, queues: Sequence[str] | None = None) -> dict[str, float]:
        """queue -> when its pause (system lock) ends, for the ``queues`` paused now. Without
        ``queues``, every paused queue: that scans the keyspace, so it takes longer the more
        tasks are stored; naming the queues reads one key each."""
        locks = self.backend.get_queue_system_locks(queues)
        now = self.clock.now()
        return {queue: until for queue, until in locks.items() if until > now}

    def get_held_locks(self, limit: int = 1000) -> tuple[list[HeldLock], bool]:
        """Up to ``limit`` task locks (sorted by lock id) and whether there were more. A lock
        whose ``expires`` is past is free for the next task, though its key is still there."""
        return self.backend.held_locks(limit)

    def set_queue_system_lock(self, queue: str, timeout: float) -> None:
        """Pause ``queue``: no worker claims from it for ``timeout`` seconds."""
        self.backend.set_queue_system_lock(queue, self.clock.now() + timeout)

    def clear_queue_system_lock(self, queue: str) -> None:
        """Unpause ``queue`` before its system lock expires."""
        self.backend.clear_queue_system_lock(queue)

    def get_queue_system_lock(self, queue: str) -> float | None:
        """When ``queue``'s system lock ends (epoch seconds), or None if it is not paused."""
        until = self.backend.get_queue_system_locks([queue]).get(queue)
        return until if until is not None and until > self.clock.now() else None

    def purge_errored_tasks(
        self,
        queues: Sequence[str] | None = None,
        exclude_queues: Sequence[str] | None = None,
        last_execution_before: datetime | None = None,
        limit: int | None = None,
    ) -> int:
        """Delete errored tasks (of the matching queues, failed before the time); how many."""
        only = tuple(queues) if queues is not None else self.config.only_queues
        exclude = (
            tuple(exclude_queues) if exclude_queues is not None else self.config.exclude_queues
        )
        before = None if last_execution_before is None else to_timestamp(last_execution_before)
        purged = 0
        for queue in sorted(self.backend.queues_with_tasks(TaskState.ERROR)):
            if not queue_matches(queue, only, exclude):
                continue
            remaining = None if limit is None else limit - purged
            if remaining is not None and remaining <= 0:
                break
            purged += self.backend.purge_errors(queue, before, remaining)
        return purged
