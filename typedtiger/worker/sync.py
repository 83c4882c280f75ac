"""SyncExecutor: runs each job in the worker's own process, in the thread that waits for it."""

from __future__ import annotations

import attrs

from typedtiger.worker.executor import ExecutorSettings, RunJob, run_under_alarm
from typedtiger.worker.job import Job, Outcome

__all__ = ["SyncExecutor"]


class SyncExecutor:
    """Runs tasks in the worker process itself: no fork, no isolation.

    ``start`` only takes the job: it runs when waited for, in the waiting thread (the worker's
    main thread), after the worker has said it started. The hard timeout is a SIGALRM that raises
    JobTimeoutException in the task: it works only in the main thread, and cannot interrupt code
    blocked in C (a task that holds the GIL in a C call, or ignores the exception, runs on). A
    task that crashes the process takes the worker with it; its task is requeued when its
    heartbeat expires. One job at a time.
    """

    side_by_side = False

    def __init__(self) -> None:
        self._settings = ExecutorSettings()

    def __repr__(self) -> str:
        return "SyncExecutor()"

    def bind(self, settings: ExecutorSettings) -> None:
        """Keep the worker's clock (kill grace and close_inherited concern forked children)."""
        self._settings = settings

    def start(self, job: Job, run: RunJob) -> SyncJob:
        """The job, to run when waited for."""
        return SyncJob(job, run, self._settings)

    def close(self) -> None:
        """Nothing to release."""


@attrs.define
class SyncJob:
    """A job the SyncExecutor runs when it is waited for."""

    _job: Job
    _run: RunJob
    _settings: ExecutorSettings
    _outcome: Outcome | None = None

    def wait(self, timeout: float | None) -> Outcome:
        """Run the job here (the first time) and return its outcome, whatever ``timeout``."""
        if self._outcome is None:
            self._outcome = run_under_alarm(self._job, self._run, self._settings.now)
        return self._outcome
