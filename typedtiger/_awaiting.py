"""Waiting for a task's result (``Task.result``): what the backend finds, as a value or the
task's typed failure."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from typedtiger._results import decode_result
from typedtiger.exceptions import ResultExpired, ResultTimeout, TaskFailed
from typedtiger.serialization import ExecutionRecord, decode_execution

if TYPE_CHECKING:
    from typedtiger._json import JSONValue
    from typedtiger.backends.async_base import AsyncBackend
    from typedtiger.backends.base import Backend, ResultProbe
    from typedtiger.clock import Clock

__all__ = ["RECHECK_SECONDS", "await_for_result", "failed", "outcome", "wait_for_result"]

#: How long one wait lasts before the task is looked at again, woken or not: a task that ends
#: without storing a result (deleted, lost, run by a TaskTiger worker) wakes nobody.
RECHECK_SECONDS: Final = 5.0


def failed(task_id: str, record: ExecutionRecord) -> TaskFailed:
    """The TaskFailed of a task whose execution ``record`` failed for good (a record with no
    message, as TaskTiger's workers write them: the traceback's last line)."""
    message = record.exception
    if message is None and record.traceback:
        message = record.traceback.rstrip().rpartition("\n")[2]
    return TaskFailed(
        task_id,
        record.exception_name or "<unknown>",
        message or "",
        record.traceback,
        record.time_failed,
    )


def outcome(task_id: str, probe: ResultProbe, clock: Clock) -> tuple[bool, JSONValue]:
    """(True, the value) if the probe found the task's result, (False, None) if the task may
    still finish; TaskFailed or ResultExpired otherwise."""
    if probe.result is not None:
        kept = decode_result(probe.result)
        if kept.expires <= clock.now():
            raise ResultExpired(f"the result of task {task_id} expired")
        if kept.failed is not None:
            raise failed(task_id, kept.failed)
        return True, kept.value
    if probe.last_execution is not None:
        raise failed(task_id, decode_execution(probe.last_execution))
    if not probe.stored:
        raise ResultExpired(
            f"task {task_id} is no longer stored and has no result: it expired, the task was "
            "deleted, or a worker that keeps no results (TaskTiger's) ran it"
        )
    return False, None


def wait_for_result(
    backend: Backend,
    queue: str,
    task_id: str,
    clock: Clock,
    timeout: float | timedelta | None,
) -> JSONValue:
    """The result of the task ``task_id`` of ``queue``, waiting up to ``timeout`` (None: as
    long as it takes) for it; TaskFailed, ResultExpired, or ResultTimeout."""
    wait = _Wait(timeout)
    while True:
        found, value = outcome(task_id, backend.await_result(queue, task_id, wait.next()), clock)
        if found:
            return value
        wait.check(task_id)


async def await_for_result(
    backend: AsyncBackend,
    queue: str,
    task_id: str,
    clock: Clock,
    timeout: float | timedelta | None,
) -> JSONValue:
    """``wait_for_result``, awaited on the running event loop."""
    wait = _Wait(timeout)
    while True:
        probe = await backend.await_result(queue, task_id, wait.next())
        found, value = outcome(task_id, probe, clock)
        if found:
            return value
        wait.check(task_id)


class _Wait:
    """The waits of one ``result()``: up to RECHECK_SECONDS each, until ``timeout`` passes."""

    def __init__(self, timeout: float | timedelta | None) -> None:
        self.seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        self.deadline = None if self.seconds is None else time.monotonic() + max(0.0, self.seconds)

    def next(self) -> float:
        left = RECHECK_SECONDS if self.deadline is None else self.deadline - time.monotonic()
        return max(0.0, min(left, RECHECK_SECONDS))

    def check(self, task_id: str) -> None:
        """ResultTimeout once the timeout has passed."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise ResultTimeout(f"task {task_id} has no result after {self.seconds:g} s")
