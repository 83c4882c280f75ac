"""The worker's upkeep between claims: due scheduled tasks (with the worker's registry record
riding on that call), expired active tasks, periodic tasks, stats."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from typedtiger.backends.base import Backend, EnqueueMode, WorkerBeat
from typedtiger.exceptions import StorageDataError
from typedtiger.serialization import WORKER_LOST_NAME, ExecutionRecord, encode_execution
from typedtiger.worker.events import Listeners
from typedtiger.worker.outage import StorageOutage

if TYPE_CHECKING:
    from typedtiger._registry import Registration
    from typedtiger.tiger import Tiger

__all__ = ["Upkeep"]


class Upkeep:
    """What a worker does besides running tasks, each at its interval."""

    def __init__(
        self,
        tiger: Tiger,
        backend: Backend,
        outage: StorageOutage,
        serves: Callable[[str], bool],
        log: structlog.typing.FilteringBoundLogger,
        beat: Callable[[], WorkerBeat | None],
        listeners: Listeners,
    ) -> None:
        self._tiger = tiger
        self._beat = beat
        self._listeners = listeners
        self._backend = backend
        self._outage = outage
        self._serves = serves
        self._log = log
        self._next_scheduled_move = 0.0
        self._next_requeue = 0.0
        self._next_stats = 0.0
        self._stats_since = time.monotonic()
        #: Seconds spent running jobs since the last stats line.
        self.busy_seconds = 0.0

    def outage_seen(self) -> None:
        """Every heartbeat went stale during the outage (a worker busy with a task sees it only
        through its heartbeat): give running tasks' workers a full timeout after its end (the
        last failure, or the first answer after it) to refresh theirs before requeueing
        anything as lost."""
        config = self._tiger.config
        self._next_requeue = self._tiger.clock.now() + config.active_task_update_timeout

    @contextmanager
    def _bad_data_skipped(self, what: str) -> Iterator[None]:
        """Log bad data met while doing ``what`` and go on with the rest of the loop."""
        try:
            yield
        except StorageDataError as exc:
            self._log.error("bad data in storage, skipped", step=what, error=str(exc))

    def maintain(self, force: bool) -> None:
        """Do what is due (everything but the stats with ``force``)."""
        config = self._tiger.config
        now = self._tiger.clock.now()
        if force or now >= self._next_scheduled_move:
            with self._bad_data_skipped("moving due scheduled tasks"):
                moved = self._backend.move_due_scheduled(
                    now,
                    config.scheduled_task_batch_size,
                    config.publish_queued_tasks,
                    beat=self._beat(),
                )
                if moved:
                    self._log.debug("scheduled tasks queued", count=moved)
            self._next_scheduled_move = now + config.select_timeout
        if self._outage.ongoing:  # just back from an outage: every heartbeat is stale for now
            self.outage_seen()
        elif force or now >= self._next_requeue:
            with self._bad_data_skipped("requeueing expired tasks"):
                self._requeue_expired(now)
            self._next_requeue = now + config.requeue_expired_tasks_interval
        if now >= self._next_stats:
            self._log_stats(now)

    def _requeue_expired(self, now: float) -> None:
        config = self._tiger.config
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
            self._listeners.tasks_lost(requeued, failed)

    def _log_stats(self, now: float) -> None:
        if self._next_stats:
            elapsed = time.monotonic() - self._stats_since
            self._log.info(
                "stats",
                time_total=round(elapsed, 3),
                time_busy=round(self.busy_seconds, 3),
                time_waiting=round(max(0.0, elapsed - self.busy_seconds), 3),
            )
        self.busy_seconds = 0.0
        self._stats_since = time.monotonic()
        self._next_stats = now + self._tiger.config.stats_interval

    # --- periodic tasks -------------------------------------------------------------------

    def queue_next_run(self, registration: Registration) -> None:
        """Schedule the next run of a periodic task (one of its runs is starting)."""
        self._enqueue_periodic(registration, EnqueueMode.NEXT_RUN)

    def _enqueue_periodic(self, registration: Registration, mode: EnqueueMode) -> None:
        assert registration.schedule is not None
        now = self._tiger.clock.now()
        next_run = registration.schedule.next_run(datetime.fromtimestamp(now, UTC))
        if next_run is None:
            return
        self._tiger.store([self._tiger.build(registration.defaults)], when=next_run, mode=mode)

    def register_periodic_tasks(self) -> None:
        """Schedule the first run of every periodic task of a queue this worker serves."""
        config = self._tiger.config
        for registration in self._tiger.registrations.values():
            if registration.schedule is None:
                continue
            queue = registration.defaults.queue or config.default_queue
            if self._serves(queue):
                self._enqueue_periodic(registration, EnqueueMode.IF_ABSENT)
