"""Recording outcomes: what the worker writes once a job has ended (or could not run)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs
import structlog

from typedtiger._results import failure_text, success_text
from typedtiger.backends.base import Backend, Completion, Failure, KeptResult, TaskState
from typedtiger.serialization import ExecutionRecord, encode_execution
from typedtiger.task import Task
from typedtiger.worker.events import Result
from typedtiger.worker.job import Failed, Outcome
from typedtiger.worker.resolve import Resolver
from typedtiger.worker.retry import decide

if TYPE_CHECKING:
    from typedtiger.tiger import Tiger

__all__ = ["HOST", "PendingDone", "Recorder"]

HOST = socket.gethostname()

#: Runs a storage operation that records something, through the worker's outage handling.
Call = Callable[[Callable[[], object]], None]


@attrs.frozen
class PendingDone:
    """Jobs' successes not recorded yet: they ride on the worker's next claim.

    Successes of one queue are joined into one completion (the script removes each task of it
    alike), so jobs ending side by side cost one round trip, not one each.
    """

    completion: Completion
    #: Each job's log and run time, for its ``done`` line once recorded.
    jobs: tuple[tuple[structlog.typing.FilteringBoundLogger, float], ...]

    def joined(
        self, done: Completion, log: structlog.typing.FilteringBoundLogger, duration: float
    ) -> PendingDone:
        """These successes and ``done`` (of the same queue) as one."""
        mine = self.completion
        # Lock ids pair with task ids by position: pad ours to our tasks' count first.
        padding = ("",) * (len(mine.task_ids) - len(mine.lock_ids))
        completion = Completion(
            mine.queue,
            mine.task_ids + done.task_ids,
            mine.lock_ids + padding + done.lock_ids,
            mine.results + done.results,
        )
        return PendingDone(completion, (*self.jobs, (log, duration)))

    def log_done(self) -> None:
        for log, duration in self.jobs:
            log.info("done", duration=duration)


class Recorder:
    """Records jobs' outcomes through ``backend`` (every write through ``call``)."""

    def __init__(self, tiger: Tiger, backend: Backend, resolver: Resolver, call: Call) -> None:
        self._tiger = tiger
        self._backend = backend
        self._resolver = resolver
        self._call = call
        #: Successful jobs whose completion rides on the next claim (one round trip less).
        self.pending: PendingDone | None = None
        #: Functions the worker has not imported, by whether a child found a batch function.
        self.batch_functions: dict[str, bool] = {}

    def record(
        self,
        queue: str,
        tasks: Sequence[Task],
        executions: int,
        lock_ids: list[str],
        runner_class: str | None,
        outcome: Outcome,
        log: structlog.typing.FilteringBoundLogger,
        *,
        flush: bool,
    ) -> Result:
        """Record how a job of ``tasks`` ended (its first task had run ``executions`` times
        before); what became of them. A success is kept for the next claim (joined to those kept
        of its queue) unless ``flush``."""
        ids = [task.id for task in tasks]
        if outcome.batch_function is not None:  # its child imported the function
            self.batch_functions[tasks[0].serialized_func] = outcome.batch_function
        if not isinstance(outcome, Failed):
            duration = round(outcome.time_finished - outcome.time_started, 6)
            kept = self._kept(tasks[0], outcome.result, success_text)
            done = Completion(queue, tuple(ids), tuple(lock_ids), () if kept is None else (kept,))
            pending = self.pending
            if pending is not None and pending.completion.queue != queue:
                self.flush_done()
                pending = None
            self.pending = (
                PendingDone(done, ((log, duration),))
                if pending is None
                else pending.joined(done, log, duration)
            )
            if flush:
                self.flush_done()
            return Result.SUCCEEDED
        first = tasks[0]
        config = self._tiger.config
        now = self._tiger.clock.now()
        decision = decide(
            first.payload, outcome, executions + 1, now, config.default_retry, self._tiger.allowlist
        )
        record = ExecutionRecord(
            time_started=outcome.time_started,
            time_failed=outcome.time_failed,
            exception_name=outcome.exception_name,
            exception=outcome.message or None,
            traceback=outcome.traceback,
            host=HOST,
            retry=True if outcome.retry_requested else None,
            retry_method=outcome.retry_method,
            log_error=outcome.log_error if outcome.retry_requested else None,
        )
        self.record_failure(
            queue,
            ids,
            lock_ids,
            record,
            decision.to_state,
            first.payload.max_stored_executions,
            when=decision.when,
            result_of=first,
        )
        event = (
            log.error
            if decision.to_state is TaskState.ERROR and decision.log_error
            else log.warning
        )
        event(
            "error" if decision.to_state is not TaskState.SCHEDULED else "retrying",
            exception_name=outcome.exception_name,
            exception=outcome.message,
            retry_in=decision.retry_delay,
            retry_number=executions + 1,
            reason=decision.reason,
            traceback=outcome.traceback,
        )
        if decision.to_state is TaskState.ERROR:
            self._permanent_error(tasks, runner_class, record, log)
        return Result.RETRIED if decision.to_state is TaskState.SCHEDULED else Result.FAILED

    def _permanent_error(
        self,
        tasks: Sequence[Task],
        runner_class: str | None,
        record: ExecutionRecord,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        """The runner's ``on_permanent_error``, here in the worker (the one runner the worker
        makes, as TaskTiger's parent does)."""
        try:
            runner = self._resolver.runner(runner_class)
        except Exception:
            log.exception("on_permanent_error not called: no runner")
            return
        for task in tasks:
            try:
                runner.on_permanent_error(task, record)
            except Exception:
                log.exception("on_permanent_error failed")

    def flush_done(self) -> None:
        """Record the pending success now (the worker is not about to claim again)."""
        pending = self.pending
        if pending is not None:
            self._call(lambda: self._backend.complete(pending.completion, self._tiger.clock.now()))
            self.pending = None
            pending.log_done()

    def claimed_with(self, pending: PendingDone) -> None:
        """``pending`` was recorded by the claim that carried it."""
        self.pending = None
        pending.log_done()

    def record_failure(
        self,
        queue: str,
        ids: list[str],
        lock_ids: list[str],
        record: ExecutionRecord,
        to_state: TaskState | None,
        max_stored: int | None,
        when: float | None = None,
        result_of: Task | None = None,
    ) -> None:
        """Record a failed execution of ``ids``; they go to ``to_state`` (None: removed). The
        task ``result_of``, if it keeps its result, keeps this failure as its result (unless
        it is rescheduled)."""
        execution = encode_execution(record)
        kept = None
        if result_of is not None and to_state is not TaskState.SCHEDULED:
            kept = self._kept(result_of, execution, failure_text)
        failure = Failure(
            execution=execution,
            to_state=to_state,
            when=self._tiger.clock.now() if when is None else when,
            max_stored_executions=max_stored,
            result=kept,
        )
        self._call(lambda: self._backend.fail(queue, ids, lock_ids, failure))

    def _kept(
        self, task: Task, text: str | None, as_stored: Callable[[str, float], str]
    ) -> KeptResult | None:
        """What ``task`` keeps as its result (``text``, stored as ``as_stored`` makes it),
        if it keeps one."""
        keep_for = task.payload.result_ttl
        if keep_for is None or text is None:
            return None
        expires = self._tiger.clock.now() + keep_for
        return KeptResult(task.id, as_stored(text, expires), keep_for)

    def not_run(self, exc: Exception) -> ExecutionRecord:
        """The execution record of a task refused before it ran."""
        return ExecutionRecord(
            time_failed=self._tiger.clock.now(),
            exception_name=f"{type(exc).__module__}:{type(exc).__qualname__}",
            exception=str(exc),
            host=HOST,
        )

    def fail_unrunnable(
        self,
        queue: str,
        tasks: Sequence[Task],
        exc: Exception,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        """Fail ``tasks`` for good, before they ran: ``exc`` says why."""
        log.error(
            "task not runnable",
            queue=queue,
            func=tasks[0].serialized_func,
            task_ids=[task.id for task in tasks],
            error=str(exc),
        )
        ids = [t.id for t in tasks]
        self.record_failure(queue, ids, [], self.not_run(exc), TaskState.ERROR, None)
