"""Worker: claims tasks from the queues it serves, runs them through an Executor, records outcomes.

It talks to storage only through the Backend protocol and to tasks only through the Executor
protocol (it knows no concrete executor), handing each one a Job (a value) and the resolver's
``run_job``. It owns the jobs' heartbeats, and records the outcomes (``recording``).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from typedtiger._queues import QueueSet, queue_matches
from typedtiger._worker_info import WorkerInfo
from typedtiger.backends.base import Backend, ClaimTicket, TaskState
from typedtiger.exceptions import BackendUnavailable, StorageDataError, StorageGaveUp
from typedtiger.worker.claims import ClaimedTasks, SlotLease, lock_id_for
from typedtiger.worker.default import default_executor
from typedtiger.worker.events import JobListener, Listeners
from typedtiger.worker.executor import Executor, ExecutorSettings
from typedtiger.worker.heartbeat import Heartbeats
from typedtiger.worker.outage import StorageOutage
from typedtiger.worker.recording import HOST, Recorder
from typedtiger.worker.registry import WorkerRecord
from typedtiger.worker.resolve import Resolver
from typedtiger.worker.slots import JobSlots
from typedtiger.worker.upkeep import Upkeep

if TYPE_CHECKING:
    from typedtiger.tiger import Tiger

__all__ = ["Worker", "lock_id_for"]

#: How long the loop rests after bad data it could not pin on one queue or task (so a bad key
#: costs an error line a second, not a busy loop).
_BAD_DATA_PAUSE = 1.0


class Worker:
    """Processes tasks of the queues it serves until stopped.

    ``queues``/``exclude_queues`` default to ``Config.only_queues``/``exclude_queues``; a name
    covers its subqueues and the most specific name wins. ``max_workers_per_queue`` bounds how
    many workers process one queue at once. The executor defaults to ``ForkExecutor`` on
    backends whose storage a forked child can reach, ``SyncExecutor`` otherwise.
    ``listeners`` hear of each job it runs and of lost tasks (``worker.events``: metrics,
    traces).
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
        listeners: Sequence[JobListener] = (),
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
        self._executor = executor if executor is not None else default_executor(tiger.backend)
        # Successes held back for the next claim are recorded before the loop blocks on a job.
        self._slots = JobSlots(
            self._executor, concurrency, self._clock.now, before_wait=self._flush_done
        )
        resolver = Resolver(tiger)
        self._executor.bind(
            ExecutorSettings(
                kill_grace=config.hard_timeout_kill_grace,
                close_inherited=_closing_inherited(self._backend, tiger.backend),
                now=self._clock.now,
                run_async=resolver.arun_job,
            )
        )
        self._concurrency = concurrency
        #: The worker's heartbeat thread, beating every running job (tests may ``beat_now``).
        self.heartbeats = Heartbeats(config.active_task_update_timer)
        self._lease: SlotLease | None = None
        self._leases = itertools.count()
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
        self._recorder = Recorder(tiger, self._backend, resolver, self._call)
        #: This worker's record in the worker registry (``Tiger.get_workers``).
        self.record = WorkerRecord(
            self._info(),
            self._clock.now,
            period=config.active_task_update_timer,
            expires_after=config.active_task_update_timeout,
        )
        listening = Listeners(listeners)
        self._upkeep = Upkeep(
            tiger, self._backend, self._outage, self.serves, self._log, self.record.beat, listening
        )
        self._claimed = ClaimedTasks(
            tiger,
            self._backend,
            resolver=resolver,
            recorder=self._recorder,
            upkeep=self._upkeep,
            slots=self._slots,
            heartbeats=self.heartbeats,
            record=self.record,
            listeners=listening,
            call=self._call,
            outage_seen=self._outage_seen,
            stopping=self._stopping,
            release_if_done=self._release_if_done,
            store_tracebacks=(
                config.store_tracebacks if store_tracebacks is None else store_tracebacks
            ),
            log=self._log,
        )
        self._next_queue_refresh = 0.0

    def _info(self) -> WorkerInfo:
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        return WorkerInfo(
            id=self.id,
            host=HOST,
            pid=os.getpid(),
            queues=self._only,
            exclude_queues=self._exclude,
            executor=type(self._executor).__name__,
            concurrency=self._concurrency,
            started=now,
            last_beat=now,
        )

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
                    self._call(self._upkeep.register_periodic_tasks)
                    if once:
                        self._run_until_idle()
                    else:
                        self._loop()
            finally:
                try:
                    self._slots.drain()
                    self._recorder.flush_done()
                    self._forget_claims()
                finally:
                    self.heartbeats.close()
                    self._executor.close()
                    self._backend.close()
        except StorageGaveUp as exc:
            self._log.error("stopped: storage unavailable", error=str(exc))
            raise
        self._log.info("stopped")

    def _forget_claims(self) -> None:
        """Tidy up what is kept for this worker's claims to be sent again, and its registry
        record: once, and not during an outage (they expire by themselves; a stop must not
        wait for it)."""
        if self._outage.ongoing:
            return
        try:
            self._backend.forget_claims(self.id)
            self._backend.remove_worker(self.id)
        except (BackendUnavailable, StorageDataError) as exc:
            self._log.info("claims and worker record left to expire", error=str(exc))

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

    def _flush_done(self) -> None:
        self._recorder.flush_done()

    def _outage_seen(self) -> None:
        self._upkeep.outage_seen()

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
        self._recorder.flush_done()
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

    def _maintain(self, force: bool) -> None:
        self._upkeep.maintain(force)

    def _process_next(self) -> bool:
        # Claim only what can start now: a task claimed while every slot is busy would wait,
        # active, for a running job to end (while another worker could run it), and would still
        # run after a stop signal that came meanwhile.
        self._slots.wait_for_free_slot()
        if self._stop_requested:
            return False
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
        lease = self._lease = SlotLease(queue, holder, limit)
        try:
            return self._claim_and_run(queue)
        finally:
            self._lease = None
            lease.claim_done = True
            self._release_if_done(lease)

    def _release_if_done(self, lease: SlotLease) -> None:
        if lease.claim_done and lease.running == 0:
            self._call(lambda: self._backend.release_queue_slot(lease.queue, lease.holder))

    def _claim_and_run(self, queue: str) -> bool:
        batch_size = self._config.batch_size_for(queue)
        # A task for each free slot, each a job of its own; a batch queue's batch size; under -M
        # (the claim holds one slot of the queue's worker limit) one task.
        multi = batch_size == 1 and self._lease is None and self._slots.side_by_side
        size = max(1, self._slots.free_slots()) if multi else batch_size
        pending = self._recorder.pending
        ticket = self._ticket(queue)
        try:
            claimed = self._backend.claim(
                queue,
                self._clock.now(),
                size,
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
            self._recorder.claimed_with(pending)
        if claimed.queue_empty:  # don't come back for nothing (an activity message re-adds it)
            self._queues.discard(queue)
        if claimed:
            self._claimed.run(queue, claimed, self._lease, batches=batch_size > 1)
            if self._claimed.lock_bounces == len(claimed):
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
