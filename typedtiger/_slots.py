"""JobSlots: run jobs through an executor, one at a time or up to N side by side."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from typedtiger.executor import ConcurrentExecutor, Executor, Job, Outcome, failed_from_exception

__all__ = ["JobSlots"]

Record = Callable[[Outcome], None]


class JobSlots:
    """Runs jobs with ``executor``, at most ``concurrency`` at once.

    Each outcome is handed to its ``record`` callback in the thread that calls ``run`` and
    ``collect`` (the worker's main thread, which owns the storage calls). With concurrency 1 a
    job runs to its end inside ``run``; otherwise ``run`` starts it (the executor forks from
    this thread) and a thread per job waits for its outcome and heartbeats.
    """

    def __init__(self, executor: Executor, concurrency: int, heartbeat_interval: float) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if concurrency > 1 and not isinstance(executor, ConcurrentExecutor):
            raise ValueError(
                f"concurrency {concurrency} needs an executor that can run jobs side by side "
                f"(ForkExecutor); {type(executor).__name__} cannot"
            )
        self._executor = executor
        #: Decided once: an isinstance check against a runtime-checkable Protocol costs ~20 µs.
        self._starter = executor if isinstance(executor, ConcurrentExecutor) else None
        self._concurrency = concurrency
        self._interval = heartbeat_interval
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

    def run(
        self,
        job: Job,
        heartbeat: Callable[[], None],
        record: Record,
        on_start: Callable[[], None] = lambda: None,
    ) -> None:
        """Run ``job`` (waiting for a free slot first); ``record`` gets its outcome.

        ``on_start`` is called once the job has started when the executor can start jobs
        (after the fork: what it does is off the path to the task's first line), else just
        before the job runs.
        """
        if self._starter is None:
            on_start()
            record(self._executor.execute(job, heartbeat, self._interval))
            return
        if self._concurrency == 1:
            running = self._starter.start(job)
            on_start()
            record(running.wait(heartbeat, self._interval))
            return
        while self._running >= self._concurrency:
            self.collect(timeout=None)
        started = self._starter.start(job)
        self._running += 1
        on_start()

        def wait() -> None:
            try:
                outcome = started.wait(heartbeat, self._interval)
            except BaseException as exc:  # the child was killed and reaped: report, don't lose
                outcome = failed_from_exception(exc, job.clock.now(), job.clock.now(), True)
            self._finished.put((record, outcome))

        threading.Thread(target=wait, name="typedtiger-job", daemon=True).start()

    def collect(self, timeout: float | None) -> bool:
        """Record one finished job's outcome; False if none finished within ``timeout``."""
        try:
            record, outcome = self._finished.get(timeout=timeout)
        except queue.Empty:
            return False
        self._running -= 1
        record(outcome)
        return True

    def drain(self) -> None:
        """Wait for every running job and record it."""
        while self._running:
            self.collect(timeout=None)
