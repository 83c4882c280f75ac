"""The resolver: what a Job names, rebuilt where the job runs, and the job run there.

A Job is plain data; the function, runner instance and Task handles it names are made from it
here and nowhere else: in the forked child (or the worker's own process, with SyncExecutor)
through ``Resolver.run_job``, which the worker hands its executor. The worker itself only checks
names before it takes locks (``runner_class``) and makes a runner after a permanent failure
(``runner``), as TaskTiger's parent does for ``on_permanent_error``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import attrs
import structlog

from typedtiger._context import running
from typedtiger._coroutines import is_async, running_to_end
from typedtiger._results import encode_value
from typedtiger.backends.base import TaskState
from typedtiger.exceptions import TaskImportError
from typedtiger.task import Task
from typedtiger.worker.job import Job, Outcome, Succeeded, failed_from_exception

if TYPE_CHECKING:
    from typedtiger.runner import BaseRunner
    from typedtiger.tiger import Tiger

__all__ = ["Resolver"]

_log = structlog.get_logger("typedtiger.executor")


class Resolver:
    """Rebuilds and runs the Jobs of one Tiger (its registry, allowlist, Config and clock)."""

    def __init__(self, tiger: Tiger) -> None:
        self._tiger = tiger

    def runner_class(self, name: str | None) -> type[BaseRunner]:
        """The runner class a payload names, imported and checked, not instantiated;
        TaskImportError if it cannot be had."""
        return self._tiger.runner_class_for(name)

    def runner(self, name: str | None) -> BaseRunner:
        """An instance of the runner class ``name`` (DefaultRunner for None)."""
        return self._tiger.runner_class_for(name)(self._tiger)

    def tasks(self, job: Job) -> tuple[Task, ...]:
        """Handles on the job's tasks (active in its queue)."""
        return tuple(
            Task(self._tiger, payload=payload, queue=job.queue, state=TaskState.ACTIVE)
            for payload in job.tasks
        )

    def function(self, job: Job) -> tuple[Callable[..., object], bool]:
        """The job's function (imported if its module is not yet) and whether it runs as a
        batch; TaskImportError if it cannot be had."""
        func, batch = self._tiger.resolve_function(job.func)
        if len(job.tasks) > 1 and not batch:  # (the worker batched it as it ran before)
            raise TaskImportError(f"{job.func!r} is no longer a batch function")
        return func, batch

    def run_job(self, job: Job) -> Outcome:
        """Run ``job`` in this process: resolve it, enter ``Config.child_context_managers``,
        mark its tasks as current, call its runner; how it ended (never raises for the task).
        An async task's coroutine is run to its end (``asyncio.run``)."""
        now = self._tiger.clock.now
        started = now()
        learned: bool | None = None  # what the import here showed, for the worker
        result: str | None = None
        try:
            func, batch = self.function(job)
            learned = batch if job.batch is None else None
            with self._entered(job, batch) as (runner, tasks):
                func = running_to_end(func, job.func)
                if batch:
                    runner.run_batch_tasks(tasks, func, job.hard_timeout)
                else:
                    value = runner.run_single_task(tasks[0], func, job.hard_timeout)
                    if job.tasks[0].result_ttl is not None:
                        result = encode_value(value, job.func)
        except (Exception, SystemExit) as exc:
            return self._failed(job, exc, started, learned)
        return Succeeded(
            time_started=started, time_finished=now(), batch_function=learned, result=result
        )

    async def arun_job(self, job: Job) -> Outcome:
        """``run_job`` on this thread's event loop: the runner's ``arun_*`` methods await the
        task's coroutine. A plain function fails with TypeError (it would block the loop)."""
        now = self._tiger.clock.now
        started = now()
        learned: bool | None = None
        result: str | None = None
        try:
            func, batch = self.function(job)
            learned = batch if job.batch is None else None
            if not is_async(func):
                raise TypeError(
                    f"{job.func} is a plain function: the asyncio executor runs async def tasks "
                    "only; serve its queue with a worker of another executor (fork, prefork)"
                )
            with self._entered(job, batch) as (runner, tasks):
                if batch:
                    await runner.arun_batch_tasks(tasks, func, job.hard_timeout)
                else:
                    value = await runner.arun_single_task(tasks[0], func, job.hard_timeout)
                    if job.tasks[0].result_ttl is not None:
                        result = encode_value(value, job.func)
        except (Exception, SystemExit) as exc:
            return self._failed(job, exc, started, learned)
        return Succeeded(
            time_started=started, time_finished=now(), batch_function=learned, result=result
        )

    @contextmanager
    def _entered(self, job: Job, batch: bool) -> Iterator[tuple[BaseRunner, tuple[Task, ...]]]:
        """``Config.child_context_managers`` entered, the job's runner and its tasks, marked as
        the current ones."""
        with ExitStack() as stack:
            for factory in self._tiger.config.child_context_managers:
                stack.enter_context(factory())
            runner = self.runner(job.runner_class)
            tasks = self.tasks(job)
            stack.enter_context(running(tasks, batch, job.func))
            yield runner, tasks

    def _failed(
        self, job: Job, exc: BaseException, started: float, learned: bool | None
    ) -> Outcome:
        _log.debug("task raised", task_ids=[t.id for t in job.tasks], exception=type(exc).__name__)
        failed = failed_from_exception(exc, started, self._tiger.clock.now(), job.store_traceback)
        return failed if learned is None else attrs.evolve(failed, batch_function=learned)
