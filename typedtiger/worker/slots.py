"""JobSlots: run jobs through an executor, one at a time or up to N side by side."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TypeGuard

from typedtiger.worker.executor import Executor, Notifying, RunJob, Running
from typedtiger.worker.job import Job, Outcome, failed_from_exception

__all__ = ["JobSlots"]

Record = Callable[[Outcome], None]


class JobSlots:
    """Runs jobs with ``executor``, at most ``concurrency`` at once.

    Each outcome is handed to its ``record`` callback in the thread that calls ``run`` and
    ``collect`` (the worker's main thread, which owns the storage calls). Every job is started
    the same way; with concurrency 1 that thread then waits for it inside ``run``, otherwise a
    thread per job waits for its outcome and hands it over (or, for a ``Notifying`` job, the
    executor hands it over when it learns it). ``before_wait`` runs before that
    thread blocks for an outcome (the worker records what it held back for its next claim).
    """

    def __init__(
        self,
        executor: Executor,
        concurrency: int,
        now: Callable[[], float],
        before_wait: Callable[[], None] = lambda: None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if concurrency > 1 and not executor.side_by_side:
            raise ValueError(
                f"concurrency {concurrency} needs an executor that can run jobs side by side "
                f"(ForkExecutor); {type(executor).__name__} cannot"
            )
        self._executor = executor
        self._concurrency = concurrency
        self._now = now
        self._before_wait = before_wait
        self._running = 0
        self._finished: queue.SimpleQueue[tuple[Record, Outcome]] = queue.SimpleQueue()

    @property
    def side_by_side(self) -> bool:
        """Whether jobs may still be running when ``run`` returns."""
        return self._concurrency > 1

    @property
    def running(self) -> int:
        """How many started jobs have not been recorded yet."""
        return self._running

    def run(self, job: Job, run: RunJob, record: Record, on_start: Callable[[], None]) -> None:
        """Start ``job`` (waiting for a free slot first); ``record`` gets its outcome.

        ``on_start`` is called once the executor has started the job (a fork: after it, so what
        it does is off the path to the task's first line).
        """
        self.wait_for_free_slot()
        started = self._executor.start(job, run)
        on_start()
        if not self.side_by_side:
            record(_outcome_of(started))
            return
        self._running += 1
        if _notifies(started):
            started.when_ended(lambda outcome: self._finished.put((record, outcome)))
            return

        def wait() -> None:
            try:
                outcome = _outcome_of(started)
            except BaseException as exc:  # the child was killed and reaped: report, don't lose
                outcome = failed_from_exception(exc, self._now(), self._now(), True)
            self._finished.put((record, outcome))

        threading.Thread(target=wait, name="typedtiger-job", daemon=True).start()

    def wait_for_free_slot(self) -> None:
        """Record finished jobs until fewer than ``concurrency`` are running (at once if a
        slot is free already)."""
        while self._running >= self._concurrency:
            self.collect(timeout=None)

    def collect(self, timeout: float | None) -> bool:
        """Record one finished job's outcome; False if none finished within ``timeout``."""
        if timeout != 0:
            self._before_wait()
        try:
            record, outcome = self._finished.get(timeout=timeout)
        except queue.Empty:
            return False
        self._running -= 1
        record(outcome)
        return True

    def free_slots(self) -> int:
        """How many jobs may start now, once every job that has ended is recorded (without
        waiting): what a claim made next can take (the successes recorded ride on it)."""
        while self._running and self.collect(timeout=0):
            pass
        return self._concurrency - self._running

    def drain(self) -> None:
        """Wait for every running job and record it."""
        while self._running:
            self.collect(timeout=None)


#: Whether instances of a Running class are Notifying: an isinstance check against a runtime
#: checkable Protocol walks the protocol's members each time, so it is made once per class.
_NOTIFYING: dict[type, bool] = {}


def _notifies(started: Running) -> TypeGuard[Notifying]:
    kind = type(started)
    known = _NOTIFYING.get(kind)
    if known is None:
        known = _NOTIFYING[kind] = isinstance(started, Notifying)
    return known


def _outcome_of(started: Running) -> Outcome:
    while True:
        outcome = started.wait(None)
        if outcome is not None:
            return outcome
