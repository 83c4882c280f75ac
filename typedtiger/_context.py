"""The task(s) being run right now, visible to any Tiger through a ContextVar."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from typedtiger.task import Task

__all__ = ["RunningTaskAccess", "RunningTasks", "current", "running"]


@attrs.frozen
class RunningTasks:
    """What a worker (or eager enqueue) is running: one task, or a batch."""

    tasks: tuple[Task, ...]
    batch: bool
    serialized_func: str


_running: ContextVar[RunningTasks | None] = ContextVar("typedtiger_running", default=None)


def current() -> RunningTasks:
    """The running task(s); RuntimeError outside a task."""
    value = _running.get()
    if value is None:
        raise RuntimeError(
            "no typedtiger task is running here: current_task & co. are only available "
            "inside a task run by a worker or an eager enqueue"
        )
    return value


def current_or_none() -> RunningTasks | None:
    """The running task(s), or None outside a task."""
    return _running.get()


@contextmanager
def running(tasks: Sequence[Task], batch: bool, serialized_func: str) -> Iterator[None]:
    """Mark ``tasks`` as running for the duration of the block."""
    token = _running.set(RunningTasks(tuple(tasks), batch, serialized_func))
    try:
        yield
    finally:
        _running.reset(token)


class RunningTaskAccess:
    """The running task(s), as TaskTiger's Tiger shows them. A part of ``Tiger``, kept apart."""

    @property
    def current_task(self) -> Task:
        """The task being run (in a batch: RuntimeError; use current_tasks)."""
        now_running = current()
        if now_running.batch:
            raise RuntimeError("a batch is running: use tiger.current_tasks")
        return now_running.tasks[0]

    @property
    def current_tasks(self) -> list[Task]:
        """The tasks of the batch being run (in a single task: RuntimeError; use
        current_task), as in TaskTiger."""
        now_running = current()
        if not now_running.batch:
            raise RuntimeError("a single task is running: use tiger.current_task")
        return list(now_running.tasks)

    @property
    def current_task_is_batch(self) -> bool:
        """Whether a batch task is being run."""
        return current().batch

    @property
    def current_serialized_func(self) -> str:
        """The "module:qualname" of the function being run."""
        return current().serialized_func
