"""TigerHarness: a Tiger on a FakeBackend whose time moves when told to, with workers run
in-process; and ``fake_tiger``, which makes one for a block."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from typedtiger.backends.base import StoredTask, TaskState
from typedtiger.clock import ManualClock, duration_seconds, to_timestamp
from typedtiger.config import Config
from typedtiger.exceptions import NotInitialized
from typedtiger.executor import (
    ExecutorSettings,
    Failed,
    Job,
    Outcome,
    RunJob,
    Running,
    SyncExecutor,
)
from typedtiger.testing.records import (
    Execution,
    ExecutionStatus,
    RunResult,
    TaskFailed,
    TaskRecord,
    execution_of,
    func_name,
    utc,
)
from typedtiger.tiger import Tiger
from typedtiger.worker import Worker

if TYPE_CHECKING:
    from typedtiger.backends.fake import FakeBackend

__all__ = ["DEFAULT_MAX_TASKS", "TigerHarness", "fake_tiger"]

#: How many task executions one ``run_*``/``advance`` call allows before it stops and raises
#: (a task that keeps enqueueing itself would otherwise never let the run end).
DEFAULT_MAX_TASKS = 10_000

_PAGE = 1000


class _Budget:
    def __init__(self, max_tasks: int) -> None:
        self.left = max_tasks
        self.exhausted = False


class _RecordingExecutor:
    """Runs jobs in-process (``SyncExecutor``) and writes down how each one ended.

    The worker records a job's outcome in storage right after it is waited for, so the
    fate of a failed task (retry, error, removed) is read from storage when the next job
    starts, or when the run ends (``settle``).
    """

    side_by_side = False

    def __init__(
        self, backend: FakeBackend, clock: ManualClock, *, stop_on_failure: bool, budget: _Budget
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._inner = SyncExecutor()
        self._stop_on_failure = stop_on_failure
        self._budget = budget
        self._pending: list[tuple[Job, Outcome]] = []
        self.executions: list[Execution] = []
        self.stop: Callable[[], None] = lambda: None

    def bind(self, settings: ExecutorSettings) -> None:
        self._inner.bind(settings)

    def start(self, job: Job, run: RunJob) -> _RecordedJob:
        self.settle()  # the previous job's fate, read before this one can change it
        return _RecordedJob(self, job, self._inner.start(job, run))

    def ended(self, job: Job, outcome: Outcome) -> None:
        """``job`` ended with ``outcome`` (the worker records it next)."""
        self._pending = [(job, outcome)]
        self._budget.left -= len(job.tasks)
        if self._budget.left <= 0:
            self._budget.exhausted = True
            self.stop()
        if self._stop_on_failure and isinstance(outcome, Failed):
            self.stop()

    def close(self) -> None:
        self._inner.close()

    def settle(self) -> None:
        for job, outcome in self._pending:
            for payload in job.tasks:
                execution = execution_of(
                    self._backend, job.queue, payload, outcome, self._clock.now()
                )
                self.executions.append(execution)
        self._pending = []


@attrs.define
class _RecordedJob:
    """A job of the recording executor: runs (SyncExecutor) when waited for, then noted."""

    _executor: _RecordingExecutor
    _job: Job
    _inner: Running

    def wait(self, timeout: float | None) -> Outcome | None:
        outcome = self._inner.wait(timeout)
        if outcome is not None:
            self._executor.ended(self._job, outcome)
        return outcome


class TigerHarness:
    """Drives a Tiger on a FakeBackend with a ManualClock: run what is due, move time, inspect.

    Make one with :func:`fake_tiger` (or the ``typedtiger_harness`` fixture). Runs use a real
    ``Worker`` with an in-process executor; tasks that enqueue tasks write to the same store,
    and a run goes on until nothing is due.
    """

    def __init__(self, tiger: Tiger) -> None:
        from typedtiger.backends.fake import FakeBackend

        backend, clock = tiger.backend, tiger.clock
        if not isinstance(backend, FakeBackend):
            raise TypeError(f"a TigerHarness needs a Tiger on a FakeBackend, not {backend!r}")
        if not isinstance(clock, ManualClock):
            raise TypeError(f"a TigerHarness needs a Tiger on a ManualClock, not {clock!r}")
        self.tiger: Tiger = tiger
        self.backend: FakeBackend = backend
        self.clock: ManualClock = clock

    def __repr__(self) -> str:
        return f"<TigerHarness at {self.now.isoformat()}>"

    @property
    def now(self) -> datetime:
        """The clock's time (aware UTC)."""
        return utc(self.clock.now())

    # --- running ------------------------------------------------------------------------

    def run_until_idle(
        self,
        *,
        raise_errors: bool = False,
        queues: Sequence[str] | None = None,
        max_tasks: int = DEFAULT_MAX_TASKS,
    ) -> RunResult:
        """Run everything due now (and what those tasks enqueue) without moving the clock.

        As a worker starting up would, it first registers periodic tasks. With
        ``raise_errors`` the run stops at the first failed execution and raises TaskFailed
        (with the task's traceback). ``queues`` limits the queues served (default: the
        Config's ``only_queues``/``exclude_queues``).
        """
        return self._run_passes(None, raise_errors, queues, _Budget(max_tasks))

    def advance(
        self,
        by: float | timedelta,
        *,
        raise_errors: bool = False,
        queues: Sequence[str] | None = None,
        max_tasks: int = DEFAULT_MAX_TASKS,
    ) -> RunResult:
        """Move the clock ``by`` seconds (or a timedelta), running everything that comes due.

        The clock steps to each scheduled time inside the window in turn, so a task retried
        at +60 s and again 120 s after that runs at both times, and a periodic task runs at
        every one of its times; it ends at ``now + by``. ``harness.clock.advance`` moves time
        without running anything.
        """
        delta = duration_seconds(by)
        if delta < 0:
            raise ValueError(f"cannot advance by a negative time ({delta} s)")
        return self._run_passes(self.clock.now() + delta, raise_errors, queues, _Budget(max_tasks))

    def run_until(
        self,
        when: datetime,
        *,
        raise_errors: bool = False,
        queues: Sequence[str] | None = None,
        max_tasks: int = DEFAULT_MAX_TASKS,
    ) -> RunResult:
        """Like ``advance``, up to the time ``when`` (a naive datetime is read as UTC)."""
        end = to_timestamp(when)
        if end < self.clock.now():
            raise ValueError(f"{when} is before the clock's time {self.now}")
        return self._run_passes(end, raise_errors, queues, _Budget(max_tasks))

    def run_next_scheduled(
        self,
        *,
        raise_errors: bool = False,
        queues: Sequence[str] | None = None,
        max_tasks: int = DEFAULT_MAX_TASKS,
    ) -> RunResult:
        """Move the clock to the next scheduled task's time and run what is due then.

        Raises LookupError when nothing is scheduled (in the queues served).
        """
        due = self.next_due(queues=queues)
        if due is None:
            raise LookupError("no task is scheduled")
        return self.run_until(due, raise_errors=raise_errors, queues=queues, max_tasks=max_tasks)

    def next_due(self, *, queues: Sequence[str] | None = None) -> datetime | None:
        """When something next comes due (a scheduled task, or a paused queue with queued
        tasks resuming), or None."""
        due = self._next_due(self.clock.now(), Worker(self.tiger, queues=queues))
        return None if due is None else utc(due)

    def _paused_with_queued_tasks(self) -> dict[str, float]:
        now = self.clock.now()
        queued = self.backend.queues_with_tasks(TaskState.QUEUED)
        return {
            queue: until
            for queue, until in self.backend.get_queue_system_locks().items()
            if until > now and queue in queued
        }

    def _run_passes(
        self,
        end: float | None,
        raise_errors: bool,
        queues: Sequence[str] | None,
        budget: _Budget,
    ) -> RunResult:
        result = self._run_once(raise_errors, queues, budget)
        if end is None:
            return result
        served = Worker(self.tiger, queues=queues)
        while (due := self._next_due(self.clock.now(), served)) is not None and due <= end:
            self.clock.set(due)
            result += self._run_once(raise_errors, queues, budget, result)
        if end > self.clock.now():
            self.clock.set(end)
            result += self._run_once(raise_errors, queues, budget, result)
        return result

    def _run_once(
        self,
        raise_errors: bool,
        queues: Sequence[str] | None,
        budget: _Budget,
        before: RunResult | None = None,
    ) -> RunResult:
        errored_before = self._error_counts()
        recorder = _RecordingExecutor(
            self.backend, self.clock, stop_on_failure=raise_errors, budget=budget
        )
        worker = Worker(self.tiger, queues=queues, executor=recorder)
        recorder.stop = worker.stop
        worker.run(once=True)
        recorder.settle()
        executions = recorder.executions + self._unrecorded_failures(
            errored_before, {e.task_id for e in recorder.executions if not e.succeeded}
        )
        result = RunResult(tuple(executions))
        so_far = result if before is None else before + result
        if raise_errors and result.failures:
            raise TaskFailed(result.failures[0], so_far)
        if budget.exhausted:
            raise RuntimeError(
                f"stopped after {so_far.ran} task executions (max_tasks): does a task keep "
                "enqueueing itself? Pass a larger max_tasks if this is expected."
            )
        return result

    def _next_due(self, after: float, served: Worker) -> float | None:
        """The earliest time after ``after`` when a scheduled task of a served queue is due,
        or a paused queue holding queued tasks resumes."""
        resumes = [
            until
            for queue, until in self._paused_with_queued_tasks().items()
            if served.serves(queue)
        ]
        earliest: float | None = min(resumes) if resumes else None
        for queue in self.backend.queues_with_tasks(TaskState.SCHEDULED):
            if not served.serves(queue):
                continue
            # Pages come latest first; walk back from the earliest task until one is after
            # ``after`` (usually the very first look: nothing due is left after a run).
            end, _ = self.backend.list_tasks(queue, TaskState.SCHEDULED, 0, 1, 0)
            size = 1
            while end > 0:
                start = max(0, end - size)
                _, page = self.backend.list_tasks(queue, TaskState.SCHEDULED, start, end - start, 0)
                later = [stored.score for stored in page if stored.score > after]
                if later:
                    earliest = min(later) if earliest is None else min(earliest, *later)
                    break
                end, size = start, _PAGE
        return earliest

    def _error_counts(self) -> dict[tuple[str, str], int]:
        return {
            (stored.queue, stored.id): stored.executions_count
            for stored in self._stored(TaskState.ERROR, 0)
        }

    def _unrecorded_failures(
        self, before: dict[tuple[str, str], int], recorded: set[str]
    ) -> list[Execution]:
        """Tasks the worker failed without running them (an unimportable function, a payload
        that cannot be read): they reach the error state without passing the executor."""
        found = []
        for stored in self._stored(TaskState.ERROR, 1):
            key = (stored.queue, stored.id)
            if stored.id in recorded or stored.executions_count <= before.get(key, 0):
                continue
            record = TaskRecord.from_stored(self.tiger, stored)
            last = record.task.executions[-1] if record.task.executions else None
            when = utc(last.time_failed if last and last.time_failed else self.clock.now())
            found.append(
                Execution(
                    task_id=record.id,
                    func=record.func,
                    args=record.args,
                    kwargs=record.kwargs,
                    queue=record.queue,
                    started_at=when,
                    finished_at=when,
                    status=ExecutionStatus.ERROR,
                    exception_name=record.last_exception,
                    exception=record.last_error,
                    traceback=None if last is None else last.traceback,
                )
            )
        return found

    # --- inspecting ---------------------------------------------------------------------

    def _stored(self, state: TaskState, load_executions: int) -> list[StoredTask]:
        found: list[StoredTask] = []
        for queue in sorted(self.backend.queues_with_tasks(state)):
            skip = 0
            while True:
                total, page = self.backend.list_tasks(queue, state, skip, _PAGE, load_executions)
                found += page
                skip += _PAGE
                if skip >= total or not page:
                    break
        return found

    def tasks(
        self, state: TaskState | str, func: Callable[..., object] | str | None = None
    ) -> list[TaskRecord]:
        """The tasks in ``state`` (of ``func`` only, if given), across queues.

        Ordered by their time in the state (queued, due or failed), then queue, function and
        arguments: tasks stored at the same instant of the manual clock come out in a stable
        order.
        """
        name = None if func is None else func_name(func)
        stored = self._stored(TaskState(state), 1)
        records = [TaskRecord.from_stored(self.tiger, item) for item in stored]
        by_score = {(item.queue, item.id): item.score for item in stored}
        records.sort(
            key=lambda r: (
                by_score[r.queue, r.id],
                r.queue,
                r.func,
                json.dumps(r.args, sort_keys=True),
                json.dumps(r.kwargs, sort_keys=True),
                r.id,
            )
        )
        return [record for record in records if name is None or record.func == name]

    def queued(self, func: Callable[..., object] | str | None = None) -> list[TaskRecord]:
        """The queued tasks (waiting for a worker), oldest first."""
        return self.tasks(TaskState.QUEUED, func)

    def scheduled(self, func: Callable[..., object] | str | None = None) -> list[TaskRecord]:
        """The scheduled tasks (delayed, retries, periodic runs), soonest first."""
        return self.tasks(TaskState.SCHEDULED, func)

    def errored(self, func: Callable[..., object] | str | None = None) -> list[TaskRecord]:
        """The tasks in the error state, earliest failure first."""
        return self.tasks(TaskState.ERROR, func)


@contextmanager
def fake_tiger(
    tiger: Tiger | None = None,
    config: Config | None = None,
    *,
    clock: ManualClock | None = None,
) -> Iterator[TigerHarness]:
    """A TigerHarness on a fresh FakeBackend, for the duration of the block.

    With ``tiger`` (an application's Tiger, initialised or not) that Tiger itself is bound
    to the FakeBackend for the block and restored afterwards, so the application's tasks'
    ``.delay()`` and ``tiger.enqueue`` go to the fake store. ``config`` defaults to the
    Tiger's own config if it has one, else ``Config()``; ``clock`` to a ManualClock at
    2026-01-01 00:00 UTC.
    """
    from typedtiger.backends.fake import FakeBackend

    backend = FakeBackend(clock)
    if tiger is None:
        yield TigerHarness(Tiger(backend, config))
        return
    if config is None:
        try:
            config = tiger.config
        except NotInitialized:
            config = None
    with tiger.bound_to(backend, config) as bound:
        yield TigerHarness(bound)
