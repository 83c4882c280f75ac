"""The Backend protocol: everything that touches storage, in domain terms.

The worker, the Tiger facade and the Task handle only talk to storage through this protocol;
they never build a key or call redis. Every method that changes state does so atomically.
Every "now" is passed in (from the Clock), so a backend never reads the time itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Final, Protocol

import attrs

from typedtiger.backends._kept import KeptResult, ResultProbe
from typedtiger.backends.async_base import AsyncTwin
from typedtiger.backends.locks import LockInspection
from typedtiger.clock import Clock

__all__ = [
    "WAITING_SCORE",
    "Backend",
    "ClaimTicket",
    "Claimed",
    "Claims",
    "Completion",
    "EnqueueMode",
    "Enqueued",
    "Failure",
    "KeptResult",
    "NewTask",
    "ResultProbe",
    "StoredStatus",
    "StoredTask",
    "TaskDependencies",
    "TaskExecutions",
    "TaskRef",
    "TaskState",
    "WorkerBeat",
]


class TaskState(StrEnum):
    """The states a stored task can be in."""

    QUEUED = "queued"
    ACTIVE = "active"
    SCHEDULED = "scheduled"
    ERROR = "error"


class EnqueueMode(StrEnum):
    """How an enqueue treats a task with the same id that is already stored."""

    #: A fresh random id: always stored.
    PLAIN = "plain"
    #: Unique (TaskTiger's): the payload is written (the last arguments win) and the task is
    #: filed in its target state unless it is filed there already, keeping that score. So a
    #: unique task that is only scheduled is queued too when enqueued due now.
    UNIQUE = "unique"
    #: Periodic registration: nothing is written if the task is queued, active or scheduled.
    IF_ABSENT = "if_absent"
    #: Next run of a periodic task, filed while the current run is active: nothing is
    #: written if the task is queued or scheduled.
    NEXT_RUN = "next_run"


#: The scheduled score of a task waiting for others (9999-12-31 23:59:59 UTC): never due.
WAITING_SCORE: Final = 253402300799.0


@attrs.frozen
class TaskRef:
    """A stored task's queue and id."""

    queue: str
    id: str


@attrs.frozen(kw_only=True)
class TaskDependencies:
    """The tasks a task still waits for, and those waiting for it."""

    waiting_for: tuple[TaskRef, ...] = ()
    dependents: tuple[TaskRef, ...] = ()


@attrs.frozen(kw_only=True)
class NewTask:
    """A task to store: its id, queue, encoded payload and when it is due (epoch seconds)."""

    id: str
    queue: str
    payload: str
    due: float
    mode: EnqueueMode = EnqueueMode.PLAIN
    #: Refuse (QueueFullException) when the queue holds this many tasks; None: no limit.
    max_queue_size: int | None = None
    #: Its priority: queued with score ``queued_score(now, priority)`` (typedtiger._priorities).
    priority: int = 0
    #: The tasks it runs after, as (queue, id): it waits while one of them is queued, active or
    #: scheduled, and is cancelled (to error) if one is in error.
    after: tuple[TaskRef, ...] = ()


@attrs.frozen
class Enqueued:
    """Where an enqueued task is filed now, and its score there. ``existing_payload`` is the
    stored payload that was kept when nothing was written (IF_ABSENT, NEXT_RUN); None when
    ours was written."""

    state: TaskState
    score: float
    existing_payload: str | None = None


@attrs.frozen
class Claimed:
    """A task moved to active for a worker; ``payload`` is None when its payload is missing.

    A task whose stored data the claim found unusable (a payload that is not UTF-8, a key of
    another type, a broken executions count) was not claimed but quarantined in the error state
    with a PayloadError record: ``broken`` says why, for the worker to log.
    """

    id: str
    payload: str | None
    #: How many failed executions the task has had before this one.
    executions_count: int = 0
    broken: str | None = None


@attrs.frozen
class ClaimTicket:
    """What makes a claim safe to send again after its reply was lost: the claimant's id, a
    token naming this claim (a resend carries the same token and gets the same tasks back,
    still active) and how long the claimed ids are remembered for that."""

    claimant: str
    token: str
    remember_for: float


class Claims(list[Claimed]):
    """The tasks a claim moved to active; ``queue_empty`` says whether any are left queued
    (so a worker need not come back to an empty queue)."""

    queue_empty: bool = False


@attrs.frozen
class Completion:
    """Tasks of one job that succeeded, to be removed, the lock ids they held, and the results
    of those that keep one."""

    queue: str
    task_ids: tuple[str, ...]
    lock_ids: tuple[str, ...] = ()
    results: tuple[KeptResult, ...] = ()


@attrs.frozen(kw_only=True)
class Failure:
    """How a failed execution is recorded."""

    #: The encoded ExecutionRecord appended to the task's executions.
    execution: str
    #: Where the task goes: ERROR, SCHEDULED (a retry at ``when``) or None (removed).
    to_state: TaskState | None
    when: float
    max_stored_executions: int | None = None
    #: The failure to keep as the task's result when it fails for good (not rescheduled).
    result: KeptResult | None = None


@attrs.frozen(kw_only=True)
class StoredStatus:
    """Where a task is, found by its id alone, and the result kept for it."""

    #: Every (queue, state) that files the task.
    places: tuple[tuple[str, TaskState], ...] = ()
    #: The result text kept for it (see typedtiger/_results.py), or None.
    result: str | None = None


@attrs.frozen(kw_only=True)
class StoredTask:
    """A task as read back for inspection."""

    id: str
    queue: str
    state: TaskState
    #: The score in the state's sorted set: queued/active/error time or the scheduled time.
    score: float
    #: The raw payload, None if the payload key is missing. Bytes that are not UTF-8 are kept
    #: as lone surrogates (``surrogateescape``), in the executions too.
    payload: str | None
    executions: tuple[str, ...] = ()
    executions_count: int = 0
    #: Why the task's keys could not all be read (a key of another type, a count that is not
    #: a count), or None.
    broken: str | None = None


@attrs.frozen(kw_only=True)
class TaskExecutions:
    """A stored task's failed executions, read by its id whatever its queue and state."""

    #: How many executions have failed, trimmed ones included.
    count: int
    #: The encoded ExecutionRecords asked for (the latest ones), oldest first.
    records: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class WorkerBeat:
    """A worker's registry record, written along with the upkeep's or a heartbeat's call."""

    worker_id: str
    #: The encoded WorkerInfo.
    record: str
    now: float  # the worker counts as alive until ``now + expires_after``
    expires_after: float


class Backend(LockInspection, AsyncTwin, Protocol):
    """Storage for tasks. See ``RedisBackend`` for the implementation and its Redis layout."""

    @property
    def clock(self) -> Clock:
        """The clock a Tiger on this backend uses unless given another."""
        ...

    #: Whether a task may run in a forked child (the child's writes reach the same storage).
    forks_safely: bool

    @property
    def prefix(self) -> str:
        """The key prefix this backend stores under."""
        ...

    def with_prefix(self, prefix: str, cluster: bool = False) -> Backend:
        """The same storage under another key prefix; ``cluster``: keys laid out for Redis
        Cluster (``Config.cluster``; a backend on a cluster lays them out so anyway)."""
        ...

    def without_retries(self) -> Backend:
        """The same storage, with calls that raise BackendUnavailable at once on an outage
        instead of retrying inside the call (for a caller that owns its retry policy: the
        Worker talks to storage only through what this returns; a backend wrapping another
        returns a wrapper of the inner one's, or itself)."""
        ...

    # --- producing ----------------------------------------------------------------------

    def enqueue(self, tasks: Sequence[NewTask], now: float, publish: bool) -> list[Enqueued]:
        """Store tasks (queued if due <= now, else scheduled); where each one is now.

        QueueFullException for a task over its ``max_queue_size``; tasks before it are stored.
        """
        ...

    # --- consuming ----------------------------------------------------------------------

    def queues_with_tasks(self, state: TaskState) -> set[str]:
        """Names of the queues that hold tasks in ``state``."""
        ...

    def wait_for_activity(self, timeout: float) -> set[str]:
        """Block up to ``timeout`` seconds for queued-task notifications; the queues named."""
        ...

    def move_due_scheduled(
        self, now: float, limit: int, publish: bool = True, beat: WorkerBeat | None = None
    ) -> int:
        """Move scheduled tasks due at ``now`` to queued (at most ``limit`` per queue), and
        write ``beat`` in the same round trip.

        StorageDataError, once the other queues are done, if a queue's keys hold another type
        (that queue is skipped)."""
        ...

    def claim(
        self,
        queue: str,
        now: float,
        limit: int,
        lock_retry: float = 1.0,
        done: Completion | None = None,
        ticket: ClaimTicket | None = None,
    ) -> Claims:
        """Move up to ``limit`` queued tasks of ``queue`` (oldest first) to active.

        Nothing is claimed while the queue's system lock is held. A task that is already
        active (a unique task queued again while it runs) is scheduled ``lock_retry`` later.
        ``done``, the previous job's success, is recorded first in the same atomic step.
        StorageDataError, with nothing claimed, if one of the queue's keys holds another type.
        With a ``ticket``, a claim sent again with the same ticket (after BackendUnavailable:
        its reply may have been lost) returns the tasks the first one claimed that are still
        active, their active time renewed, instead of claiming others.
        """
        ...

    def forget_claims(self, claimant: str) -> None:
        """Drop what is kept for ``claimant``'s claims to be sent again (see ClaimTicket):
        it has stopped claiming."""
        ...

    def acquire_locks(
        self, queue: str, locks: Mapping[str, str], now: float, timeout: float, retry_at: float
    ) -> set[str]:
        """Take the lock of each task id -> lock id; tasks that can't are rescheduled.

        The tasks are one job: a lock id named by several of them (a batch) is taken once, by
        the first, and covers the others. Returns the task ids that may run. A lock is free
        when absent or expired (``now`` past the time it was taken + ``timeout``).
        """
        ...

    def heartbeat(
        self,
        queue: str,
        task_ids: Sequence[str],
        lock_ids: Sequence[str],
        now: float,
        lock_timeout: float,
        beat: WorkerBeat | None = None,
    ) -> None:
        """Refresh the active score of running tasks and the expiry of their locks, and write
        ``beat`` in the same round trip."""
        ...

    def complete(self, done: Completion, now: float) -> None:
        """Finish successful tasks: remove them (unless also filed in another state), release
        their locks, and release the tasks waiting for them (queued at ``now``)."""
        ...

    def fail(
        self, queue: str, task_ids: Sequence[str], lock_ids: Sequence[str], failure: Failure
    ) -> None:
        """Record a failed execution and move the tasks as ``failure`` says."""
        ...

    def requeue_expired(
        self,
        now: float,
        timeout: float,
        limit: int,
        max_losses: int,
        lost_execution: str,
        lock_for: float,
        publish: bool = True,
    ) -> tuple[int, int]:
        """Requeue active tasks whose heartbeat is older than ``timeout``.

        Runs under a lock (held for ``lock_for`` seconds) so that one worker does it at a
        time. A task lost more than ``max_losses`` times goes to error with
        ``lost_execution`` instead. Returns (requeued, failed); (0, 0) if the lock was busy.
        StorageDataError, once the other queues are done, if a queue's keys hold another type
        (that queue is skipped).
        """
        ...

    def acquire_queue_slot(
        self,
        queue: str,
        holder: str,
        limit: int,
        now: float,
        timeout: float,
        refresh: bool = False,
    ) -> bool:
        """Take (or refresh) one of ``limit`` slots of ``queue`` for ``holder``.

        While the queue is paused (its system lock) no slot is taken, but with ``refresh``
        (the holder's tasks are running) the holder keeps its slot.
        """
        ...

    def release_queue_slot(self, queue: str, holder: str) -> None:
        """Give back ``holder``'s slot of ``queue``."""
        ...

    def remove_worker(self, worker_id: str) -> None:
        """Take a stopping worker's record out of the worker registry."""
        ...

    def close(self) -> None:
        """Release what waiting for activity holds (subscriptions), and the connections of a
        client the backend made itself (``without_retries``)."""
        ...

    def close_inherited(self) -> None:
        """In a process forked from one that used this backend: close the connections it
        inherited, without a word to the server (they are the parent's sessions), so that
        nothing in this process can write to them. The backend opens fresh ones when used."""
        ...

    def await_result(self, queue: str, task_id: str, timeout: float) -> ResultProbe:
        """What became of the task ``task_id`` of ``queue``: its stored result, or whether it
        is still stored and, in the error state, its latest execution. If it may still finish
        (``ResultProbe.pending``), wait up to ``timeout`` seconds for its result to be stored
        (woken when it is, not by polling), then look again."""
        ...

    # --- inspection and administration --------------------------------------------------

    def task_status(self, task_id: str) -> StoredStatus:
        """Where the task ``task_id`` is filed, found through the queue its payload names (one
        atomic read; a payload that names none, as TaskTiger's, is looked for in every queue:
        ``find_task``), and the result kept for it."""
        ...

    def get_task(
        self, queue: str, state: TaskState, task_id: str, load_executions: int
    ) -> StoredTask | None:
        """The task, if it is filed in ``queue`` under ``state``."""
        ...

    def list_tasks(
        self, queue: str, state: TaskState, skip: int, limit: int, load_executions: int
    ) -> tuple[int, list[StoredTask]]:
        """(total in the state, a page of tasks, newest first)."""
        ...

    def task_executions(self, task_id: str, load: int | None) -> TaskExecutions | None:
        """The failed executions of the task ``task_id``: their count and the latest ``load``
        records (None: every stored one; 0: none), in one atomic read. None when no task of
        that id is stored."""
        ...

    def dependencies(self, task_id: str) -> TaskDependencies:
        """The tasks ``task_id`` still waits for and those waiting for it, in one read."""
        ...

    def find_task(self, task_id: str) -> list[tuple[str, TaskState]]:
        """Every (queue, state) that files ``task_id``."""
        ...

    def workers(self, alive_since: float) -> list[str]:
        """The encoded records of the workers whose last beat is at or after ``alive_since``."""
        ...

    def task_ids_starting(self, prefix: str, limit: int) -> list[str]:
        """Ids of stored tasks that start with ``prefix`` (at most ``limit``, sorted; a scan)."""
        ...

    def queue_sizes(self, queues: Sequence[str] | None) -> dict[str, dict[TaskState, int]]:
        """queue -> state -> number of tasks, for the queues given (None: every queue)."""
        ...

    def oldest_queued(self, queues: Sequence[str], now: float) -> dict[str, float]:
        """queue -> when its oldest queued task was queued (queues with queued tasks); one round
        trip, exact while every queued task has waited < 15 days (scores hold priorities)."""
        ...

    def remove(self, queue: str, state: TaskState, task_id: str, now: float) -> bool:
        """Delete the task filed in ``queue`` under ``state``; False if it is not there. The
        tasks waiting for it are cancelled (to error at ``now``, with a DependencyFailed
        record)."""
        ...

    def move(
        self,
        queue: str,
        from_state: TaskState,
        task_id: str,
        to_state: TaskState,
        when: float,
        publish: bool,
    ) -> bool:
        """Move the task to another state with score ``when``; False if it is not there."""
        ...

    def set_queue_system_lock(self, queue: str, until: float) -> None:
        """Pause ``queue`` until ``until`` (epoch seconds)."""
        ...

    def clear_queue_system_lock(self, queue: str) -> None:
        """Unpause ``queue``."""
        ...

    def get_queue_system_locks(self, queues: Sequence[str] | None = None) -> dict[str, float]:
        """queue -> time its system lock ends, of ``queues`` (a read each) or of every queue
        (a scan of the keyspace)."""
        ...

    def purge_errors(self, queue: str, before: float | None, limit: int | None) -> int:
        """Remove errored tasks of ``queue`` that failed before ``before``; how many."""
        ...
