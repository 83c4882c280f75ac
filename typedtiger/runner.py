"""Runners: how a task function is called (singly, as a batch, eagerly) and what happens in the
worker after a permanent failure. Pick one per task with ``runner_class``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypedDict

from typedtiger._json import JSONValue

if TYPE_CHECKING:
    from typedtiger.serialization import ExecutionRecord
    from typedtiger.task import Task
    from typedtiger.tiger import Tiger

__all__ = ["BaseRunner", "BatchCall", "DefaultRunner", "batch_calls"]


class BatchCall(TypedDict):
    """One call in the list a ``batch=True`` task receives."""

    args: list[JSONValue]
    kwargs: dict[str, JSONValue]


def batch_calls(tasks: Sequence[Task]) -> list[BatchCall]:
    """What a batch function is called with for ``tasks``."""
    return [{"args": list(task.args), "kwargs": dict(task.kwargs)} for task in tasks]


class BaseRunner:
    """Calls task functions. Subclass it to wrap calls (tracing, transactions, ...).

    ``run_single_task`` and ``run_batch_tasks`` run where the task runs (the forked child or
    the worker itself, under the hard timeout); ``on_permanent_error`` runs in the worker after
    the task has failed for good. For an ``async def`` task, the ``func`` they receive runs
    the coroutine to its end (``asyncio.run``) before it returns; the asyncio executor calls
    ``arun_single_task`` and ``arun_batch_tasks`` instead, on its event loop.
    """

    def __init__(self, tiger: Tiger) -> None:
        self.tiger = tiger

    def run_single_task(
        self, task: Task, func: Callable[..., object], hard_timeout: float
    ) -> object:
        """Run one task: ``func(*args, **kwargs)``. What it returns is the task's result, kept
        for a task with ``result_ttl`` (a runner that wraps the call should pass it on).

        ``hard_timeout`` is the task's, in seconds (as TaskTiger passes it): the executor
        enforces it, a runner may use it (e.g. to bound what it waits for)."""
        return func(*task.args, **task.kwargs)

    def run_batch_tasks(
        self, tasks: Sequence[Task], func: Callable[..., object], hard_timeout: float
    ) -> object:
        """Run a batch of one ``batch=True`` function: ``func([{"args", "kwargs"}, ...])``;
        ``hard_timeout`` is the batch's (the largest of its tasks')."""
        return func(batch_calls(tasks))

    async def arun_single_task(
        self, task: Task, func: Callable[..., Awaitable[object]], hard_timeout: float
    ) -> object:
        """``run_single_task`` on the asyncio executor's loop: ``await func(*args, **kwargs)``."""
        return await func(*task.args, **task.kwargs)

    async def arun_batch_tasks(
        self, tasks: Sequence[Task], func: Callable[..., Awaitable[object]], hard_timeout: float
    ) -> object:
        """``run_batch_tasks`` on the asyncio executor's loop: ``await func([...])``."""
        return await func(batch_calls(tasks))

    def run_eager_task(self, task: Task, func: Callable[..., object], batch: bool) -> object:
        """Run a task at enqueue time (``Config.always_eager``) or by ``Task.execute``;
        returns what the function does. No hard timeout is enforced here; the hooks are given
        the one the task would have on a worker."""
        hard_timeout = task.payload.hard_timeout or self.tiger.config.default_hard_timeout
        if batch:
            return self.run_batch_tasks([task], func, hard_timeout)
        return self.run_single_task(task, func, hard_timeout)

    def on_permanent_error(self, task: Task, execution: ExecutionRecord) -> None:
        """Called in the worker when ``task`` has failed for good (no retry left)."""


class DefaultRunner(BaseRunner):
    """The runner of tasks that name none."""
