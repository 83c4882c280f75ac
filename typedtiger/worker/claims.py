"""Running what a claim gave: its tasks grouped by function into jobs, what cannot run refused
before locks are taken, locks taken, each job started with its heartbeat and its outcome
recorded."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs
import structlog

from typedtiger._worker_info import RunningTask
from typedtiger.backends.base import Backend, Claimed, TaskState
from typedtiger.exceptions import (
    BackendUnavailable,
    PayloadError,
    StorageDataError,
    TaskImportError,
)
from typedtiger.serialization import TaskPayload, decode_stored_payload, unique_task_id
from typedtiger.task import Task
from typedtiger.worker.events import Ended, JobEnd, Listeners
from typedtiger.worker.heartbeat import Heartbeat, Heartbeats
from typedtiger.worker.job import Job, Outcome
from typedtiger.worker.recording import Recorder
from typedtiger.worker.registry import WorkerRecord
from typedtiger.worker.resolve import Resolver
from typedtiger.worker.retry import check_names
from typedtiger.worker.slots import JobSlots
from typedtiger.worker.upkeep import Upkeep

if TYPE_CHECKING:
    from typedtiger._registry import Registration
    from typedtiger.tiger import Tiger

__all__ = ["ClaimedTasks", "SlotLease", "lock_id_for"]


@attrs.define
class SlotLease:
    """A worker-semaphore slot of a queue, held by one claim until its jobs are done."""

    queue: str
    holder: str
    limit: int
    running: int = 0
    claim_done: bool = False


def lock_id_for(payload: TaskPayload) -> str:
    """The lock a ``lock=True`` task takes (TaskTiger's: over lock_key kwargs, or all args)."""
    if payload.lock_key:
        keyed = {key: payload.kwargs.get(key) for key in payload.lock_key}
        return unique_task_id(payload.func, None, keyed)
    return unique_task_id(payload.func, payload.args, payload.kwargs)


def _shorten(value: object, limit: int) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class ClaimedTasks:
    """Turns claimed tasks into started jobs, for one worker (whose parts it is given)."""

    def __init__(
        self,
        tiger: Tiger,
        backend: Backend,
        *,
        resolver: Resolver,
        recorder: Recorder,
        upkeep: Upkeep,
        slots: JobSlots,
        heartbeats: Heartbeats,
        record: WorkerRecord,
        listeners: Listeners,
        call: Callable[[Callable[[], object]], None],
        outage_seen: Callable[[], None],
        stopping: Callable[[], bool],
        release_if_done: Callable[[SlotLease], None],
        store_tracebacks: bool,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._tiger = tiger
        self._backend = backend
        self._config = tiger.config
        self._clock = tiger.clock
        self._resolver = resolver
        self._recorder = recorder
        self._upkeep = upkeep
        self._slots = slots
        self.heartbeats = heartbeats
        self._record = record
        self._listeners = listeners
        self._call = call
        self._outage_seen = outage_seen
        self._stopping = stopping
        self._release_if_done = release_if_done
        self._store_tracebacks = store_tracebacks
        self._log = log
        self._lease: SlotLease | None = None
        self._batches = False
        self._ran_in_claim = False
        #: Tasks of the current claim rescheduled because their lock was busy.
        self.lock_bounces = 0

    def run(
        self, queue: str, claimed: list[Claimed], lease: SlotLease | None, *, batches: bool
    ) -> None:
        """Run what a claim of ``queue`` gave (its ``lease`` held until they are done). With
        ``batches`` (a batch queue) a batch function's tasks run as one job; otherwise each
        task is a job of its own."""
        self._lease = lease
        self._batches = batches
        # Tasks of one function run together, in the order their first one was claimed (one
        # batch for a batch function), even when others were claimed between them: TaskTiger's.
        groups: dict[str, list[tuple[Task, int]]] = {}
        for item in claimed:
            task = self._decode(queue, item)
            if task is not None:
                groups.setdefault(task.serialized_func, []).append((task, item.executions_count))
        self._ran_in_claim = False
        self.lock_bounces = 0
        for group in groups.values():
            self._run_group(queue, group)

    def _decode(self, queue: str, item: Claimed) -> Task | None:
        if item.broken is not None:  # the claim quarantined it (see Claimed)
            self._log.error(
                "broken task quarantined", queue=queue, task_id=item.id, error=item.broken
            )
            return None
        try:
            payload = decode_stored_payload(item.id, item.payload)
        except PayloadError as exc:
            self._log.error("broken task quarantined", queue=queue, task_id=item.id, error=str(exc))
            not_run = self._recorder.not_run(exc)
            self._recorder.record_failure(queue, [item.id], [], not_run, TaskState.ERROR, None)
            return None
        return Task(self._tiger, payload=payload, queue=queue, state=TaskState.ACTIVE)

    def _run_group(self, queue: str, group: list[tuple[Task, int]]) -> None:
        func_name = group[0][0].serialized_func
        if self._stopping() and self._ran_in_claim:
            self._release_unstarted(queue, [task for task, _ in group])
            return
        group = self._refuse_disallowed(queue, group)
        if not group:
            return
        try:
            resolved = self._tiger.resolve_loaded(func_name)
        except TaskImportError as exc:
            self._recorder.fail_unrunnable(queue, [task for task, _ in group], exc, self._log)
            return
        # A function whose module this process has not imported is imported by the child
        # that runs it (a module that hangs or exits on import costs that task, not the
        # worker): one task per job until a child has shown it is a batch function.
        if resolved is not None:
            batch: bool | None = resolved[1]
        else:
            batch = self._recorder.batch_functions.get(func_name)
        jobs = [group] if batch and self._batches else [[item] for item in group]
        for job in jobs:
            if self._stopping() and self._ran_in_claim:
                self._release_unstarted(queue, [task for task, _ in job])
                continue
            self._ran_in_claim = True
            self._run_job(queue, job, batch)

    def _refuse_disallowed(
        self, queue: str, group: list[tuple[Task, int]]
    ) -> list[tuple[Task, int]]:
        """Fail, before anything runs, the tasks whose payload names what the allowlist
        refuses (runner class, retry function, retry_on)."""
        allowed = []
        for item in group:
            try:
                check_names(item[0].payload, self._tiger.allowlist)
            except TaskImportError as exc:
                self._recorder.fail_unrunnable(queue, [item[0]], exc, self._log)
            else:
                allowed.append(item)
        return allowed

    def _release_unstarted(self, queue: str, tasks: Sequence[Task]) -> None:
        now = self._clock.now()
        for task in tasks:
            move = functools.partial(
                self._backend.move, queue, TaskState.ACTIVE, task.id, TaskState.QUEUED, now, False
            )
            self._call(move)

    def _take_locks(
        self, queue: str, group: list[tuple[Task, int]]
    ) -> tuple[list[tuple[Task, int]], list[str]]:
        wanted = {task.id: lock_id_for(task.payload) for task, _ in group if task.payload.lock}
        if not wanted:
            return group, [""] * len(group)
        now = self._clock.now()
        granted = self._backend.acquire_locks(
            queue,
            wanted,
            now,
            self._config.active_task_update_timeout,
            now + self._config.lock_retry,
        )
        kept = [
            (task, count) for task, count in group if task.id not in wanted or task.id in granted
        ]
        for task, _ in group:
            if task.id in wanted and task.id not in granted:
                self.lock_bounces += 1
                self._log.info("lock busy, rescheduled", queue=queue, task_id=task.id)
        return kept, [wanted.get(task.id, "") for task, _ in kept]

    def _runnable(self, queue: str, tasks: list[Task]) -> bool:
        """Whether the job's runner class can be had (else its tasks failed). Checked before
        the locks are taken (a task that cannot run must not leave one held), without making
        a runner: that happens where the job runs."""
        runner_classes = {task.payload.runner_class for task in tasks}
        if len(runner_classes) > 1:  # a batch runs with one runner: none is the right one
            names = sorted(name or "the default runner" for name in runner_classes)
            mixed = ValueError(f"the tasks of this batch name different runner classes: {names}")
            self._recorder.fail_unrunnable(queue, tasks, mixed, self._log)
            return False
        try:
            self._resolver.runner_class(tasks[0].payload.runner_class)
        except TaskImportError as exc:
            self._recorder.fail_unrunnable(queue, tasks, exc, self._log)
            return False
        return True

    def _run_job(self, queue: str, group: list[tuple[Task, int]], batch: bool | None) -> None:
        if not self._runnable(queue, [task for task, _ in group]):
            return
        group, lock_ids = self._take_locks(queue, group)
        if not group:
            return
        tasks = [task for task, _ in group]
        first = tasks[0]
        registration = self._tiger.registration(first.serialized_func)
        if registration is not None and registration.schedule is not None:
            self._call(lambda: self._upkeep.queue_next_run(registration))
        job = Job(
            queue=queue,
            func=first.serialized_func,
            batch=batch,
            hard_timeout=self._hard_timeout(tasks, registration),
            runner_class=first.payload.runner_class,
            store_traceback=self._store_tracebacks,
            tasks=tuple(task.payload for task in tasks),
        )
        ids = [task.id for task in tasks]
        log = self._log.bind(queue=queue, func=first.serialized_func, task_id=ids[0])
        if batch:
            log = log.bind(task_ids=ids)
        max_chars = self._config.log_args_max_chars
        lease = self._lease
        heartbeat = Heartbeat(self.beat(queue, ids, lock_ids, lease, log))
        started = time.monotonic()
        ended: Ended | None = None

        def on_start() -> None:  # once the job has started (a child: after the fork)
            nonlocal ended
            now = self._clock.now()
            at = datetime.fromtimestamp(now, UTC)
            running = [RunningTask(id=t.id, queue=queue, func=job.func, started=at) for t in tasks]
            self._record.job_started(heartbeat, running)
            if self._listeners:
                ended = self._listeners.job_started(job, now, group[0][1] + 1)
            log.info(
                "processing",
                args=_shorten(list(first.args), max_chars),
                kwargs=_shorten(first.kwargs, max_chars),
            )

        if lease is not None:
            lease.running += 1
        # Beaten from now: its tasks are claimed and its locks taken (the worker claims only
        # when a slot is free, so the job starts next; JobSlots.run would wait for one).
        self.heartbeats.add(heartbeat)

        def record(outcome: Outcome) -> None:
            try:
                self.heartbeats.remove(heartbeat)  # no beat may follow the record
                self._record.job_ended(heartbeat)
                self._upkeep.busy_seconds += time.monotonic() - started
                result = self._recorder.record(
                    queue,
                    tasks,
                    group[0][1],
                    lock_ids,
                    job.runner_class,
                    outcome,
                    log,
                    flush=self._stopping(),
                )
                if ended is not None:
                    ended(JobEnd.of(outcome, result))
            finally:
                if lease is not None:
                    lease.running -= 1
                    self._release_if_done(lease)

        try:
            self._slots.run(job, self._resolver.run_job, record, on_start)
        except BaseException:  # (KeyboardInterrupt while waiting: the job's child is gone)
            self.heartbeats.remove(heartbeat)
            self._record.job_ended(heartbeat)
            raise

    def beat(
        self,
        queue: str,
        ids: list[str],
        lock_ids: list[str],
        lease: SlotLease | None,
        log: structlog.typing.FilteringBoundLogger,
    ) -> Callable[[], None]:
        """One job's heartbeat: its tasks' active time, their locks, its queue slot."""

        failing = False

        def beat() -> None:
            nonlocal failing
            now, timeout = self._clock.now(), self._config.active_task_update_timeout
            try:
                beat = self._record.beat()
                self._backend.heartbeat(queue, ids, lock_ids, now, timeout, beat=beat)
                if lease is not None:  # keep this claim's slot of the queue's worker limit
                    self._backend.acquire_queue_slot(
                        lease.queue, lease.holder, lease.limit, now, timeout, refresh=True
                    )
            except BackendUnavailable as exc:  # the next beat tries again (no traceback each)
                failing = True
                self._outage_seen()
                log.warning("heartbeat not recorded: backend unavailable", error=str(exc))
                return
            except StorageDataError as exc:
                log.error("heartbeat not recorded: bad data in storage", error=str(exc))
                return
            if failing:  # the outage is over
                failing = False
                self._outage_seen()

        return beat

    def _hard_timeout(self, tasks: Sequence[Task], registration: Registration | None) -> float:
        own = [task.payload.hard_timeout for task in tasks if task.payload.hard_timeout]
        if own:
            return max(t for t in own if t is not None)
        if registration is not None and registration.defaults.hard_timeout is not None:
            return registration.defaults.hard_timeout
        return self._config.default_hard_timeout
