"""Worker: claims tasks from the queues it serves, runs them through an Executor, records outcomes.

It talks to storage only through the Backend protocol and to tasks only through the Executor.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

import attrs
import structlog

from typedtiger._heartbeat import Heartbeat
from typedtiger._outage import StorageOutage
from typedtiger._queues import QueueSet, queue_matches
from typedtiger._retry import check_names, decide
from typedtiger._slots import JobSlots
from typedtiger.backends.base import (
    Backend,
    Claimed,
    ClaimTicket,
    Completion,
    EnqueueMode,
    Failure,
    TaskState,
)
from typedtiger.exceptions import (
    BackendUnavailable,
    PayloadError,
    StorageDataError,
    StorageGaveUp,
    TaskImportError,
)
from typedtiger.executor import (
    Executor,
    Failed,
    ForkExecutor,
    Job,
    Outcome,
    SyncExecutor,
)
from typedtiger.serialization import (
    WORKER_LOST_NAME,
    ExecutionRecord,
    TaskPayload,
    decode_stored_payload,
    encode_execution,
    unique_task_id,
)
from typedtiger.task import Task

if TYPE_CHECKING:
    from typedtiger._registry import Registration
    from typedtiger.runner import BaseRunner
    from typedtiger.tiger import Tiger

__all__ = ["Worker"]

_HOST = socket.gethostname()
#: How long the loop rests after bad data it could not pin on one queue or task (so a bad key
#: costs an error line a second, not a busy loop).
_BAD_DATA_PAUSE = 1.0


@attrs.define
class _SlotLease:
    """A worker-semaphore slot of a queue, held by one claim until its jobs are done."""

    queue: str
    holder: str
    limit: int
    running: int = 0
    claim_done: bool = False


@attrs.frozen
class _Done:
    completion: Completion
    log: structlog.typing.FilteringBoundLogger
    duration: float


def lock_id_for(payload: TaskPayload) -> str:
    """The lock a ``lock=True`` task takes (TaskTiger's: over lock_key kwargs, or all args)."""
    if payload.lock_key:
        keyed = {key: payload.kwargs.get(key) for key in payload.lock_key}
        return unique_task_id(payload.func, None, keyed)
    return unique_task_id(payload.func, payload.args, payload.kwargs)


def _shorten(value: object, limit: int) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class Worker:
    """Processes tasks of the queues it serves until stopped.

    ``queues``/``exclude_queues`` default to ``Config.only_queues``/``exclude_queues``; a name
    covers its subqueues and the most specific name wins. ``max_workers_per_queue`` bounds how
    many workers process one queue at once. The executor defaults to ``ForkExecutor`` on
    backends whose storage a forked child can reach, ``SyncExecutor`` otherwise.
    """

    def __init__(
        self,
        tiger: Tiger,
        queues: Sequence[str] | None = None,
        exclude_queues: Sequence[str] | None = None,
        max_workers_per_queue: int | None = None,
        executor: Executor | None = None,
        concurrency: int = 1,
        *,
        store_tracebacks: bool | None = None,
        exit_after: float | None = None,
    ) -> None:
        config = tiger.config
        if max_workers_per_queue is not None and max_workers_per_queue < 1:
            raise ValueError(f"max_workers_per_queue must be >= 1, got {max_workers_per_queue}")
        self._tiger = tiger
        # The worker owns its retry policy (StorageOutage): a call that fails must fail at
        # once, not be carried through an outage with arguments taken before it.
        self._backend = tiger.backend.without_retries()
        self._config = config
        self._clock = tiger.clock
        self._only = tuple(queues) if queues is not None else config.only_queues
        self._exclude = (
            tuple(exclude_queues) if exclude_queues is not None else config.exclude_queues
        )
        self._max_workers = max_workers_per_queue
        self._executor = executor if executor is not None else _default_executor(tiger)
        self._slots = JobSlots(self._executor, concurrency, config.active_task_update_timer)
        self._concurrency = concurrency
        self._lease: _SlotLease | None = None
        #: A successful job whose completion rides on the next claim (one round trip less).
        self._pending_done: _Done | None = None
        self._leases = itertools.count()
        self._store_tracebacks = (
            config.store_tracebacks if store_tracebacks is None else store_tracebacks
        )
        if isinstance(self._executor, ForkExecutor):
            self._executor.use_config_grace(config.hard_timeout_kill_grace)
            self._executor.close_in_children(_closing_inherited(self._backend, tiger.backend))
        self._exit_after = exit_after
        self.id = str(uuid.uuid4())
        self._log = structlog.get_logger("typedtiger.worker").bind(worker_id=self.id)
        self._queues = QueueSet()
        self._stop_requested = False
        #: The queue and token of a claim that failed with BackendUnavailable (see _ticket).
        self._unanswered: tuple[str, str] | None = None
        self._claim_tokens = itertools.count(1)
        # Waits no longer than a heartbeat period: a worker back late from an outage would
        # leave its last outcomes unrecorded past the others' requeue of them.
        self._outage = StorageOutage(
            config.storage_retry_deadline, self._log, max_wait=config.active_task_update_timer
        )
        self._next_scheduled_move = 0.0
        self._next_requeue = 0.0
        self._next_queue_refresh = 0.0
        self._next_stats = 0.0
        self._busy_seconds = 0.0
        self._stats_since = time.monotonic()
        self._ran_in_claim = False
        #: Functions the worker has not imported, by whether a child found a batch function.
        self._batch_functions: dict[str, bool] = {}
        #: Tasks of the current claim rescheduled because their lock was busy.
        self._lock_bounces = 0

    # --- public -------------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._stop_requested

    def serves(self, queue: str) -> bool:
        """Whether this worker processes ``queue``."""
        return queue_matches(queue, self._only, self._exclude)

    def stop(self) -> None:
        """Finish the task at hand, claim nothing more, and return from ``run``."""
        self._stop_requested = True

    def run(self, once: bool = False) -> None:
        """Process tasks until stopped (SIGTERM/SIGINT), or, with ``once``, until idle.

        ``once=True`` moves due scheduled tasks, runs everything queued (including tasks
        queued meanwhile) and returns.

        While the storage is unavailable the worker waits and retries; it raises
        ``StorageGaveUp`` once an outage has lasted ``Config.storage_retry_deadline``, or
        soon after a stop is requested during one.
        """
        self._log.info(
            "ready",
            queues=list(self._only),
            exclude_queues=list(self._exclude),
            executor=type(self._executor).__name__,
            concurrency=self._concurrency,
            max_workers_per_queue=self._max_workers,
            storage=repr(self._backend),
            settings=self._config.settings(),
        )
        if self._config.allow_any_module:
            self._log.warning(
                "allow_any_module set: this worker runs any importable function a task names "
                "(TaskTiger's behaviour); anyone who can write to the storage can run code here. "
                "List the task modules in allowed_task_modules instead"
            )
        try:
            try:
                with self._signal_handlers(enabled=not once):
                    self._call(self._register_periodic_tasks)
                    if once:
                        self._run_until_idle()
                    else:
                        self._loop()
            finally:
                try:
                    self._slots.drain()
                    self._flush_done()
                    self._forget_claims()
                finally:
                    self._executor.close()
                    self._backend.close()
        except StorageGaveUp as exc:
            self._log.error("stopped: storage unavailable", error=str(exc))
            raise
        self._log.info("stopped")

    def _forget_claims(self) -> None:
        """Tidy up what is kept for this worker's claims to be sent again: once, and not
        during an outage (it expires by itself; a stop must not wait for it)."""
        if self._outage.ongoing:
            return
        try:
            self._backend.forget_claims(self.id)
        except (BackendUnavailable, StorageDataError) as exc:
            self._log.info("claims left to expire", error=str(exc))

    # --- the loop -----------------------------------------------------------------------

    def _run_until_idle(self) -> None:
        while not self._stop_requested:
            # (bad data no queue can be blamed for, such as a set of queue names of another
            # type, would be met again at every pass: nothing more can be done now)
            if self._guarded(self._pass_until_idle, bad_data_ends=True):
                return

    def _pass_until_idle(self) -> bool:
        """One pass of ``once``: True when nothing more can be done now."""
        self._maintain(force=True)
        self._refresh_queues()
        if not self._queues and not self._slots.running and self._unanswered is None:
            return True
        claimed = False
        while (self._queues or self._unanswered is not None) and not self._stop_requested:
            claimed = self._process_next() or claimed
        self._slots.drain()  # what they record or enqueue may make more work due
        return not claimed  # what is queued cannot be claimed now (paused queue, no free slot)

    def _loop(self) -> None:
        deadline = None if self._exit_after is None else time.monotonic() + self._exit_after
        # Subscribed before the first look at the queues, so that no activity between the two
        # is missed (and the subscription's connection is the first one made).
        self._guarded(self._listen)
        while not self._stop_requested:
            if deadline is not None and time.monotonic() >= deadline:
                self._log.info("exit_after reached", seconds=self._exit_after)
                return
            self._guarded(self._step)

    def _step(self) -> bool:
        while self._slots.running and self._slots.collect(timeout=0):
            pass
        # Work that woke the worker is claimed first; upkeep comes after it.
        if self._queues or self._unanswered is not None:
            self._process_next()
            self._maintain(force=False)
        elif self._slots.running:
            self._maintain(force=False)
            self._slots.collect(timeout=0.05)
            woken = self._backend.wait_for_activity(0)
            self._queues.update(queue for queue in woken if self.serves(queue))
        else:
            self._maintain(force=False)
            self._idle()
        return False

    def _listen(self) -> bool:
        woken = self._backend.wait_for_activity(0)
        self._queues.update(queue for queue in woken if self.serves(queue))
        return True

    def _guarded(self, step: Callable[[], bool], bad_data_ends: bool = False) -> bool:
        """Run a step of the loop; what it returned. An unavailable storage is waited out
        (StorageGaveUp past the deadline): False. Bad data the step could not pin on one queue
        or task is logged and skipped: ``bad_data_ends``, after a pause unless it ends."""
        try:
            done = step()
        except BackendUnavailable as exc:
            self._outage_seen()
            self._outage.failed(exc, self._stopping)
            return False
        except StorageDataError as exc:
            self._log.error("bad data in storage, skipped", error=str(exc))
            if not bad_data_ends:
                self._pause(_BAD_DATA_PAUSE)
            return bad_data_ends
        self._storage_answered()
        return done

    def _outage_seen(self) -> None:
        """Every heartbeat went stale during the outage (a worker busy with a task sees it only
        through its heartbeat): give running tasks' workers a full timeout after its end (the
        last failure, or the first answer after it) to refresh theirs before requeueing
        anything as lost."""
        self._next_requeue = self._clock.now() + self._config.active_task_update_timeout

    def _storage_answered(self) -> None:
        if self._outage.ongoing:
            self._outage_seen()
        self._outage.succeeded()

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a stop is requested."""
        end = time.monotonic() + seconds
        while not self._stop_requested and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def _idle(self) -> None:
        self._flush_done()
        now = self._clock.now()
        if now >= self._next_queue_refresh:
            self._refresh_queues()
            if self._queues:
                return
        woken = self._backend.wait_for_activity(self._config.select_timeout)
        self._queues.update(queue for queue in woken if self.serves(queue))

    def _refresh_queues(self) -> None:
        queued = self._backend.queues_with_tasks(TaskState.QUEUED)
        self._queues = QueueSet(queue for queue in queued if self.serves(queue))
        self._next_queue_refresh = self._clock.now() + self._config.poll_task_queues_interval

    @contextmanager
    def _bad_data_skipped(self, what: str) -> Iterator[None]:
        """Log bad data met while doing ``what`` and go on with the rest of the loop."""
        try:
            yield
        except StorageDataError as exc:
            self._log.error("bad data in storage, skipped", step=what, error=str(exc))

    def _maintain(self, force: bool) -> None:
        config = self._config
        now = self._clock.now()
        if force or now >= self._next_scheduled_move:
            with self._bad_data_skipped("moving due scheduled tasks"):
                moved = self._backend.move_due_scheduled(
                    now, config.scheduled_task_batch_size, config.publish_queued_tasks
                )
                if moved:
                    self._log.debug("scheduled tasks queued", count=moved)
            self._next_scheduled_move = now + config.select_timeout
        if self._outage.ongoing:  # just back from an outage: every heartbeat is stale for now
            self._outage_seen()
        elif force or now >= self._next_requeue:
            with self._bad_data_skipped("requeueing expired tasks"):
                self._requeue_expired(now)
            self._next_requeue = now + config.requeue_expired_tasks_interval
        if now >= self._next_stats:
            self._log_stats(now)

    def _requeue_expired(self, now: float) -> None:
        config = self._config
        lost = ExecutionRecord(
            time_failed=now,
            exception_name=WORKER_LOST_NAME,
            exception="worker lost: the task's heartbeat stopped for more than "
            f"{config.active_task_update_timeout:g} s (a task whose worker is lost more than "
            f"max_worker_loss_retries={config.max_worker_loss_retries} times fails)",
            host=None,
        )
        requeued, failed = self._backend.requeue_expired(
            now,
            config.active_task_update_timeout,
            config.requeue_expired_tasks_batch_size,
            config.max_worker_loss_retries,
            encode_execution(lost),
            config.requeue_expired_tasks_interval,
            config.publish_queued_tasks,
        )
        if requeued or failed:
            self._log.warning("expired tasks requeued", requeued=requeued, failed=failed)

    def _log_stats(self, now: float) -> None:
        if self._next_stats:
            elapsed = time.monotonic() - self._stats_since
            self._log.info(
                "stats",
                time_total=round(elapsed, 3),
                time_busy=round(self._busy_seconds, 3),
                time_waiting=round(max(0.0, elapsed - self._busy_seconds), 3),
            )
        self._busy_seconds = 0.0
        self._stats_since = time.monotonic()
        self._next_stats = now + self._config.stats_interval

    def _process_next(self) -> bool:
        # A claim whose reply was lost is sent again before any other (see _ticket).
        queue = self._unanswered[0] if self._unanswered is not None else self._queues.choice()
        try:
            if self._process_queue(queue):
                return True
        except StorageDataError as exc:
            # One queue's keys are bad: the others are served; it is tried again when the
            # queues are next refreshed.
            self._log.error("bad data in storage, queue skipped", queue=queue, error=str(exc))
        self._queues.discard(queue)
        return False

    def _slot_limit(self, queue: str) -> int | None:
        if any(queue_matches(queue, (name,), ()) for name in self._config.single_worker_queues):
            return 1
        return self._max_workers

    def _process_queue(self, queue: str) -> bool:
        limit = self._slot_limit(queue)
        if limit is None:
            return self._claim_and_run(queue)
        holder = f"{self.id}:{next(self._leases)}" if self._slots.side_by_side else self.id
        timeout = self._config.active_task_update_timeout
        if not self._backend.acquire_queue_slot(queue, holder, limit, self._clock.now(), timeout):
            return False
        # The slot is held until the last job of this claim has finished, which with
        # concurrency may be after this method returns.
        lease = self._lease = _SlotLease(queue, holder, limit)
        try:
            return self._claim_and_run(queue)
        finally:
            self._lease = None
            lease.claim_done = True
            self._release_if_done(lease)

    def _release_if_done(self, lease: _SlotLease) -> None:
        if lease.claim_done and lease.running == 0:
            self._call(lambda: self._backend.release_queue_slot(lease.queue, lease.holder))

    def _claim_and_run(self, queue: str) -> bool:
        pending = self._pending_done
        ticket = self._ticket(queue)
        try:
            claimed = self._backend.claim(
                queue,
                self._clock.now(),
                self._config.batch_size_for(queue),
                self._config.lock_retry,
                done=None if pending is None else pending.completion,
                ticket=ticket,
            )
        except BackendUnavailable:
            raise  # its reply may be lost: the next claim is this one again (the same ticket)
        except BaseException:
            self._unanswered = None
            raise
        self._unanswered = None
        if pending is not None:  # the previous job's success was recorded by the same script
            self._pending_done = None
            pending.log.info("done", duration=pending.duration)
        if claimed.queue_empty:  # don't come back for nothing (an activity message re-adds it)
            self._queues.discard(queue)
        if claimed:
            self._handle_claimed(queue, claimed)
            if self._lock_bounces == len(claimed):
                self._rest(queue)
        return bool(claimed)

    def _ticket(self, queue: str) -> ClaimTicket:
        """The claim's ticket: the one of the claim of ``queue`` whose reply was lost if there
        is one (sent again, it gets the tasks that claim moved to active instead of leaving them
        there with nobody running them until the expiry requeue), else a new one."""
        unanswered = self._unanswered
        if unanswered is not None and unanswered[0] == queue:
            token = unanswered[1]
        else:
            token = str(next(self._claim_tokens))
        self._unanswered = (queue, token)
        # Remembered for less than the expiry: a resend never takes back a requeued task.
        return ClaimTicket(self.id, token, self._config.active_task_update_timeout / 2)

    def _rest(self, queue: str) -> None:
        """Leave ``queue`` until activity on it or the next refresh, as if it were empty: all
        it gave were tasks of busy locks. Claiming on at once would push every queued task of
        those locks back to scheduled within milliseconds, to run one per scheduler pass."""
        self._queues.discard(queue)
        soon = self._clock.now() + self._config.select_timeout
        self._next_queue_refresh = min(self._next_queue_refresh, soon)

    # --- running claimed tasks ----------------------------------------------------------

    def _handle_claimed(self, queue: str, claimed: list[Claimed]) -> None:
        # Tasks of one function run together, in the order their first one was claimed (one
        # batch for a batch function), even when others were claimed between them: TaskTiger's.
        groups: dict[str, list[tuple[Task, int]]] = {}
        for item in claimed:
            task = self._decode(queue, item)
            if task is not None:
                groups.setdefault(task.serialized_func, []).append((task, item.executions_count))
        self._ran_in_claim = False
        self._lock_bounces = 0
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
            self._record_failure(queue, [item.id], [], self._not_run(exc), TaskState.ERROR, None)
            return None
        return Task(self._tiger, payload=payload, queue=queue, state=TaskState.ACTIVE)

    def _run_group(self, queue: str, group: list[tuple[Task, int]]) -> None:
        func_name = group[0][0].serialized_func
        if self._stop_requested and self._ran_in_claim:
            self._release_unstarted(queue, [task for task, _ in group])
            return
        group = self._refuse_disallowed(queue, group)
        if not group:
            return
        try:
            resolved = self._tiger.resolve_loaded(func_name)
        except TaskImportError as exc:
            self._fail_unrunnable(queue, [task for task, _ in group], exc)
            return
        # A function whose module this process has not imported is imported by the child
        # that runs it (a module that hangs or exits on import costs that task, not the
        # worker): one task per job until a child has shown it is a batch function.
        if resolved is not None:
            func, batch = resolved
        else:
            func, batch = None, self._batch_functions.get(func_name, False)
        jobs = [group] if batch else [[item] for item in group]
        for job in jobs:
            if self._stop_requested and self._ran_in_claim:
                self._release_unstarted(queue, [task for task, _ in job])
                continue
            self._ran_in_claim = True
            self._run_job(queue, job, func, batch=batch)

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
                self._fail_unrunnable(queue, [item[0]], exc)
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

    def _fail_unrunnable(self, queue: str, tasks: Sequence[Task], exc: Exception) -> None:
        self._log.error(
            "task not runnable",
            queue=queue,
            func=tasks[0].serialized_func,
            task_ids=[task.id for task in tasks],
            error=str(exc),
        )
        self._record_failure(
            queue, [t.id for t in tasks], [], self._not_run(exc), TaskState.ERROR, None
        )

    def _not_run(self, exc: Exception) -> ExecutionRecord:
        """The execution record of a task refused before it ran."""
        return ExecutionRecord(
            time_failed=self._clock.now(),
            exception_name=f"{type(exc).__module__}:{type(exc).__qualname__}",
            exception=str(exc),
            host=_HOST,
        )

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
                self._lock_bounces += 1
                self._log.info("lock busy, rescheduled", queue=queue, task_id=task.id)
        return kept, [wanted.get(task.id, "") for task, _ in kept]

    def _job_runner(self, queue: str, tasks: list[Task]) -> BaseRunner | None:
        """The runner of a job; None (its tasks failed) if it cannot be had. Called before the
        locks are taken: a task that cannot run must not leave one held."""
        runner_classes = {task.payload.runner_class for task in tasks}
        if len(runner_classes) > 1:  # a batch runs with one runner: none is the right one
            names = sorted(name or "the default runner" for name in runner_classes)
            mixed = ValueError(f"the tasks of this batch name different runner classes: {names}")
            self._fail_unrunnable(queue, tasks, mixed)
            return None
        try:
            return self._tiger.runner_for(tasks[0].payload.runner_class)
        except TaskImportError as exc:
            self._fail_unrunnable(queue, tasks, exc)
            return None

    def _run_job(
        self,
        queue: str,
        group: list[tuple[Task, int]],
        func: Callable[..., object] | None,
        batch: bool,
    ) -> None:
        runner = self._job_runner(queue, [task for task, _ in group])
        if runner is None:
            return
        group, lock_ids = self._take_locks(queue, group)
        if not group:
            return
        tasks = [task for task, _ in group]
        first = tasks[0]
        registration = self._tiger.registration(first.serialized_func)
        if registration is not None and registration.schedule is not None:
            self._call(lambda: self._queue_next_run(registration))
        job = Job(
            queue=queue,
            tasks=tuple(tasks),
            func=func,
            serialized_func=first.serialized_func,
            batch=batch,
            hard_timeout=self._hard_timeout(tasks, registration),
            runner=runner,
            context_managers=self._config.child_context_managers,
            store_traceback=self._store_tracebacks,
            clock=self._clock,
            resolve=self._tiger.resolve_function if func is None else None,
        )
        ids = [task.id for task in tasks]
        log = self._log.bind(queue=queue, func=first.serialized_func, task_id=ids[0])
        if batch:
            log = log.bind(task_ids=ids)
        max_chars = self._config.log_args_max_chars

        def log_processing() -> None:  # once the job has started (a child: after the fork)
            log.info(
                "processing",
                args=_shorten(list(first.args), max_chars),
                kwargs=_shorten(first.kwargs, max_chars),
            )

        started = time.monotonic()

        lease = self._lease

        heartbeat = Heartbeat(self._beat(queue, ids, lock_ids, lease, log))

        def record(outcome: Outcome) -> None:
            heartbeat.stop()  # no beat may follow the record (it would re-take the slot)
            self._busy_seconds += time.monotonic() - started
            self._record(queue, group, lock_ids, runner, outcome, log)

        if lease is not None:
            lease.running += 1

        def record_and_release(outcome: Outcome) -> None:
            try:
                record(outcome)
            finally:
                if lease is not None:
                    lease.running -= 1
                    self._release_if_done(lease)

        self._slots.run(job, heartbeat, record_and_release, on_start=log_processing)

    def _beat(
        self,
        queue: str,
        ids: list[str],
        lock_ids: list[str],
        lease: _SlotLease | None,
        log: structlog.typing.FilteringBoundLogger,
    ) -> Callable[[], None]:
        """One job's heartbeat: its tasks' active time, their locks, its queue slot."""

        failing = False

        def beat() -> None:
            nonlocal failing
            now, timeout = self._clock.now(), self._config.active_task_update_timeout
            try:
                self._backend.heartbeat(queue, ids, lock_ids, now, timeout)
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

    def _queue_next_run(self, registration: Registration) -> None:
        self._enqueue_periodic(registration, EnqueueMode.NEXT_RUN)

    def _enqueue_periodic(self, registration: Registration, mode: EnqueueMode) -> None:
        assert registration.schedule is not None
        now = self._clock.now()
        next_run = registration.schedule.next_run(datetime.fromtimestamp(now, UTC))
        if next_run is None:
            return
        self._tiger.store([self._tiger.build(registration.defaults)], when=next_run, mode=mode)

    def _register_periodic_tasks(self) -> None:
        for registration in self._tiger.registrations.values():
            if registration.schedule is None:
                continue
            queue = registration.defaults.queue or self._config.default_queue
            if self.serves(queue):
                self._enqueue_periodic(registration, EnqueueMode.IF_ABSENT)

    # --- recording outcomes -------------------------------------------------------------

    def _record(
        self,
        queue: str,
        group: list[tuple[Task, int]],
        lock_ids: list[str],
        runner: object,
        outcome: Outcome,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        ids = [task.id for task, _ in group]
        if outcome.batch_function is not None:  # its child imported the function
            self._batch_functions[group[0][0].serialized_func] = outcome.batch_function
        if not isinstance(outcome, Failed):
            duration = round(outcome.time_finished - outcome.time_started, 6)
            self._flush_done()
            done = Completion(queue, tuple(ids), tuple(lock_ids))
            self._pending_done = _Done(done, log, duration)
            if self._slots.side_by_side or self._stop_requested:
                self._flush_done()
            return
        first, count = group[0]
        now = self._clock.now()
        decision = decide(
            first.payload,
            outcome,
            count + 1,
            now,
            self._config.default_retry,
            self._tiger.allowlist,
        )
        record = ExecutionRecord(
            time_started=outcome.time_started,
            time_failed=outcome.time_failed,
            exception_name=outcome.exception_name,
            exception=outcome.message or None,
            traceback=outcome.traceback,
            host=_HOST,
            retry=True if outcome.retry_requested else None,
            retry_method=outcome.retry_method,
            log_error=outcome.log_error if outcome.retry_requested else None,
        )
        self._record_failure(
            queue,
            ids,
            lock_ids,
            record,
            decision.to_state,
            first.payload.max_stored_executions,
            when=decision.when,
        )
        event = (
            log.error
            if decision.to_state is TaskState.ERROR and decision.log_error
            else log.warning
        )
        event(
            "error" if decision.to_state is not TaskState.SCHEDULED else "retrying",
            exception_name=outcome.exception_name,
            exception=outcome.message,
            retry_in=decision.retry_delay,
            retry_number=count + 1,
            reason=decision.reason,
            traceback=outcome.traceback,
        )
        if decision.to_state is TaskState.ERROR:
            from typedtiger.runner import BaseRunner

            if isinstance(runner, BaseRunner):
                for task, _ in group:
                    try:
                        runner.on_permanent_error(task, record)
                    except Exception:
                        log.exception("on_permanent_error failed")

    def _flush_done(self) -> None:
        """Record the pending success now (the worker is not about to claim again)."""
        pending = self._pending_done
        if pending is not None:
            self._call(lambda: self._backend.complete(pending.completion))
            self._pending_done = None
            pending.log.info("done", duration=pending.duration)

    def _record_failure(
        self,
        queue: str,
        ids: list[str],
        lock_ids: list[str],
        record: ExecutionRecord,
        to_state: TaskState | None,
        max_stored: int | None,
        when: float | None = None,
    ) -> None:
        failure = Failure(
            execution=encode_execution(record),
            to_state=to_state,
            when=self._clock.now() if when is None else when,
            max_stored_executions=max_stored,
        )
        self._call(lambda: self._backend.fail(queue, ids, lock_ids, failure))

    def _call(self, operation: Callable[[], object]) -> None:
        """Run a storage operation that records something (an outcome, a release), retrying
        while the storage is unavailable so that it is recorded once storage is back
        (StorageGaveUp past the deadline). Bad data in the keys it touches is logged and
        skipped: one bad task must not stop the worker."""
        while True:
            try:
                operation()
            except BackendUnavailable as exc:
                self._outage_seen()
                self._outage.failed(exc, self._stopping)
            except StorageDataError as exc:
                self._log.error("bad data in storage, skipped", error=str(exc))
                return
            else:
                self._storage_answered()
                return

    # --- signals ------------------------------------------------------------------------

    @contextmanager
    def _signal_handlers(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self._stop_requested:
                self._log.warning("second stop signal: exiting now", signal=signum)
                os._exit(128 + signum)
            self._log.info("stop signal: finishing the current task", signal=signum)
            self._stop_requested = True

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _closing_inherited(own: Backend, app: Backend) -> Callable[[], None]:
    """What a task's child runs first: close both clients' connections, the worker's own
    (without retries) and the application's (periodic tasks are enqueued through it). (A
    function of the backends, not a method: the executor keeps it, and a worker it kept would
    be in a reference cycle, its clients open until a garbage collection.)"""

    def close_inherited() -> None:
        own.close_inherited()
        if app is not own:
            app.close_inherited()

    return close_inherited


def _default_executor(tiger: Tiger) -> Executor:
    if tiger.backend.forks_safely:
        return ForkExecutor()
    return SyncExecutor()
