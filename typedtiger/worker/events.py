"""What a worker tells its listeners (metrics, traces): a job started, how it ended, tasks found
lost. Listeners run in the worker process (the parent: a forked child's outcome comes back to
it), in the worker's main thread. A worker without listeners pays nothing per task but a check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Protocol

import attrs
import structlog

from typedtiger.serialization import JOB_TIMEOUT_NAME
from typedtiger.worker.job import Failed, Job, Outcome

__all__ = ["Ended", "JobEnd", "JobListener", "Listeners", "Result"]

_log = structlog.get_logger("typedtiger.worker")


class Result(StrEnum):
    """How a job's tasks ended, as recorded."""

    SUCCEEDED = "succeeded"
    #: Failed for good (to the error state, or dropped).
    FAILED = "failed"
    #: Failed, and scheduled to run again.
    RETRIED = "retried"


@attrs.frozen(kw_only=True)
class JobEnd:
    """How a job ended: its result, whether its hard timeout stopped it, its run time."""

    result: Result
    timed_out: bool
    #: Seconds from the job's first line to its outcome (the Outcome's own times).
    duration: float
    #: The exception's "module:qualname" (None: succeeded).
    exception_name: str | None = None

    @classmethod
    def of(cls, outcome: Outcome, result: Result) -> JobEnd:
        if isinstance(outcome, Failed):
            return cls(
                result=result,
                timed_out=outcome.exception_name == JOB_TIMEOUT_NAME,
                duration=max(0.0, outcome.time_failed - outcome.time_started),
                exception_name=outcome.exception_name,
            )
        duration = max(0.0, outcome.time_finished - outcome.time_started)
        return cls(result=result, timed_out=False, duration=duration)


#: Called once with how the job ended.
Ended = Callable[[JobEnd], None]


class JobListener(Protocol):
    """Hears of each job a worker runs, and of the tasks its upkeep finds lost."""

    def job_started(self, job: Job, now: float, attempt: int) -> Ended | None:
        """``job`` has started (``now``: the worker's clock; ``attempt``: its first task's
        execution number, 1 the first time); what to call when it has ended."""
        ...

    def tasks_lost(self, requeued: int, failed: int) -> None:
        """The upkeep found tasks whose worker was lost: requeued, or failed (lost too often)."""
        ...


class Listeners:
    """A worker's listeners, called in turn; one that raises is logged and the others go on
    (a metrics bug must not stop the worker)."""

    def __init__(self, listeners: Sequence[JobListener]) -> None:
        self._listeners = tuple(listeners)

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def job_started(self, job: Job, now: float, attempt: int) -> Ended:
        ended: list[Ended] = []
        for listener in self._listeners:
            try:
                callback = listener.job_started(job, now, attempt)
            except Exception:
                _log.exception("listener failed", listener=repr(listener), event="job_started")
                continue
            if callback is not None:
                ended.append(callback)

        def job_ended(end: JobEnd) -> None:
            for callback in ended:
                try:
                    callback(end)
                except Exception:
                    _log.exception("listener failed", listener=repr(callback), event="job_ended")

        return job_ended

    def tasks_lost(self, requeued: int, failed: int) -> None:
        for listener in self._listeners:
            try:
                listener.tasks_lost(requeued, failed)
            except Exception:
                _log.exception("listener failed", listener=repr(listener), event="tasks_lost")
