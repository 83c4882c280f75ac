"""What each page of the dashboard shows, read through the Tiger: plain values for the templates.

Every read is bounded: a page of a queue is one ZREVRANGE slice (``list_tasks``), and a filtered
page looks at no more than ``SCAN_BUDGET`` tasks before it offers the next page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import attrs

from typedtiger._schedules import Cron, Periodic, Schedule
from typedtiger.backends.base import StoredTask, TaskState
from typedtiger.backends.locks import REQUEUE_LOCK, HeldLock
from typedtiger.commands._admin_common import (
    Decoded,
    call_text,
    escaped,
    exception_text,
    format_seconds,
)
from typedtiger.serialization import ExecutionRecord, payload_as_dict
from typedtiger.tiger import Tiger
from typedtiger.worker.claims import lock_id_for

__all__ = [
    "SCAN_BUDGET",
    "ExecutionView",
    "Filters",
    "Location",
    "LockRow",
    "Overview",
    "PeriodicRow",
    "QueueRow",
    "TaskList",
    "TaskRow",
    "held_locks",
    "overview",
    "periodic_tasks",
    "task_list",
    "task_locations",
]

#: How many tasks a filtered page looks at, at most, before it offers the next page.
SCAN_BUDGET: Final = 500
#: How many tasks a filtered page reads at a time.
_CHUNK: Final = 250


# --- queues ------------------------------------------------------------------------------


@attrs.frozen
class QueueRow:
    name: str
    counts: Mapping[TaskState, int]
    #: How long its oldest queued task has waited (seconds), None if none is queued.
    oldest_age: float | None
    #: When the queue's pause ends, None if it is not paused.
    paused_until: float | None


@attrs.frozen
class Overview:
    queues: tuple[QueueRow, ...]
    totals: Mapping[TaskState, int]


def overview(tiger: Tiger) -> Overview:
    """Every queue that holds tasks: its counts, the age of its oldest queued task, its pause.
    (A paused queue that holds no task is left out: finding it would scan the keyspace.)"""
    stats = tiger.get_queue_stats()
    names = sorted(stats)
    paused = tiger.get_paused_queues(names)
    ages = tiger.get_queued_ages([q for q in names if stats.get(q, {}).get(TaskState.QUEUED)])
    rows = tuple(
        QueueRow(
            name=queue,
            counts={state: stats.get(queue, {}).get(state, 0) for state in TaskState},
            oldest_age=ages.get(queue),
            paused_until=paused.get(queue),
        )
        for queue in names
    )
    totals = {state: sum(row.counts[state] for row in rows) for state in TaskState}
    return Overview(rows, totals)


# --- the tasks of a queue ----------------------------------------------------------------


@attrs.frozen
class Filters:
    """Case-insensitive substrings a listed task must contain (empty: any)."""

    func: str = ""
    error: str = ""

    @property
    def active(self) -> bool:
        return bool(self.func or self.error)

    def matches(self, row: TaskRow) -> bool:
        func = (row.func or "").lower()
        error = (row.last_error or "").lower()
        return self.func.lower() in func and self.error.lower() in error


@attrs.frozen
class TaskRow:
    id: str
    #: The queued, heartbeat, due or failed time.
    time: float
    #: "module:qualname", None for a broken payload.
    func: str | None
    call: str
    broken: str | None
    executions_count: int
    last_error: str | None

    @classmethod
    def of(cls, stored: StoredTask) -> TaskRow:
        decoded = Decoded.of(stored)
        payload = decoded.payload
        return cls(
            id=stored.id,
            time=decoded.time,
            func=None if payload is None else payload.func,
            call="" if payload is None else call_text(payload),
            broken=decoded.broken,
            executions_count=stored.executions_count,
            last_error=decoded.last_exception,
        )


@attrs.frozen
class TaskList:
    queue: str
    state: TaskState
    #: How many tasks the queue has in the state.
    total: int
    skip: int
    limit: int
    rows: tuple[TaskRow, ...]
    filters: Filters
    #: Where the tasks looked at end (past ``skip``): the next page starts there.
    looked_to: int

    @property
    def next_skip(self) -> int | None:
        return self.looked_to if self.looked_to < self.total else None

    @property
    def previous_skip(self) -> int | None:
        """The previous page's start (a filtered list only knows its first page)."""
        if self.skip == 0:
            return None
        return 0 if self.filters.active else max(0, self.skip - self.limit)


def task_list(
    tiger: Tiger, queue: str, state: TaskState, skip: int, limit: int, filters: Filters
) -> TaskList:
    """A page of the tasks of ``queue`` in ``state``, newest first. With filters, the tasks
    from ``skip`` on are read a chunk at a time until ``limit`` match or ``SCAN_BUDGET`` were
    looked at."""
    load = 1 if state is TaskState.ERROR else 0
    if not filters.active:
        total, stored = tiger.backend.list_tasks(queue, state, skip, limit, load)
        rows = tuple(TaskRow.of(item) for item in stored)
        return TaskList(queue, state, total, skip, limit, rows, filters, skip + len(rows))
    found: list[TaskRow] = []
    position, total = skip, skip + 1  # (the first read, always made, tells the total)
    while len(found) < limit and position < total and position - skip < SCAN_BUDGET:
        total, stored = tiger.backend.list_tasks(queue, state, position, _CHUNK, load)
        if not stored:
            break
        for item in stored:
            position += 1
            row = TaskRow.of(item)
            if filters.matches(row):
                found.append(row)
                if len(found) == limit:
                    break
    return TaskList(queue, state, total, skip, limit, tuple(found), filters, position)


# --- one task ----------------------------------------------------------------------------


@attrs.frozen
class ExecutionView:
    number: int
    record: ExecutionRecord | None
    #: Why the stored record cannot be read, with its text, when it cannot.
    broken: str | None
    raw: str

    @property
    def error(self) -> str:
        return "" if self.record is None else exception_text(self.record)


@attrs.frozen
class Location:
    """The task as filed in one queue and state (a task is filed in one place, but a damaged
    store or a unique task may file it twice)."""

    queue: str
    state: TaskState
    time: float
    func: str | None
    call: str
    broken: str | None
    #: The payload as indented JSON, or the raw text (escaped) when it is broken.
    payload: str
    executions_count: int
    executions: tuple[ExecutionView, ...]


def task_locations(tiger: Tiger, task_id: str, load_executions: int) -> list[Location]:
    """Where ``task_id`` is filed, each with the latest ``load_executions`` failures."""
    found = []
    for queue, state in tiger.backend.find_task(task_id):
        stored = tiger.backend.get_task(queue, state, task_id, load_executions)
        if stored is not None:
            found.append(_location(stored))
    return found


def _location(stored: StoredTask) -> Location:
    decoded = Decoded.of(stored)
    if decoded.payload is not None:
        payload = json.dumps(payload_as_dict(decoded.payload), indent=2, ensure_ascii=False)
    else:
        payload = "(missing)" if stored.payload is None else escaped(stored.payload)
    first = stored.executions_count - len(decoded.executions) + 1
    executions = tuple(
        ExecutionView(first + index, item.record, item.broken, escaped(item.raw))
        for index, item in enumerate(decoded.executions)
    )
    return Location(
        queue=stored.queue,
        state=stored.state,
        time=decoded.time,
        func=None if decoded.payload is None else decoded.payload.func,
        call="" if decoded.payload is None else call_text(decoded.payload),
        broken=decoded.broken,
        payload=payload,
        executions_count=stored.executions_count,
        executions=tuple(reversed(executions)),
    )


# --- periodic tasks ----------------------------------------------------------------------


@attrs.frozen
class PeriodicRow:
    func: str
    queue: str
    schedule: str
    #: The schedule's next run after now, None once it has ended.
    next_run: float | None
    task_id: str
    #: Where its next run is filed now (scheduled, or queued/active while it runs), if at all.
    state: TaskState | None
    #: That state's time: for scheduled, when the run is due.
    stored_time: float | None


def periodic_tasks(tiger: Tiger) -> list[PeriodicRow]:
    """The periodic tasks the Tiger knows (registered by its application's modules), each
    with its next run by its schedule and where its stored run is."""
    now = datetime.fromtimestamp(tiger.clock.now(), UTC)
    rows = []
    for name, registration in sorted(tiger.registrations.items()):
        if registration.schedule is None:
            continue
        payload, queue = tiger.build(registration.defaults)
        places = [(q, s) for q, s in tiger.backend.find_task(payload.id) if q == queue]
        state = places[0][1] if places else None
        stored = None if state is None else tiger.backend.get_task(queue, state, payload.id, 0)
        next_run = registration.schedule.next_run(now)
        rows.append(
            PeriodicRow(
                func=name,
                queue=queue,
                schedule=describe_schedule(registration.schedule),
                next_run=None if next_run is None else next_run.timestamp(),
                task_id=payload.id,
                state=state,
                stored_time=None if stored is None else stored.score,
            )
        )
    return rows


def describe_schedule(schedule: Schedule) -> str:
    if isinstance(schedule, Periodic):
        text = f"every {format_seconds(schedule.period)}"
    elif isinstance(schedule, Cron):
        text = f"cron {schedule.expr}"
    else:
        func = schedule.func
        text = f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', repr(func))}"
    end = getattr(schedule, "end_date", None)
    return text if end is None else f"{text}, until {end:%Y-%m-%d %H:%M} UTC"


# --- locks -------------------------------------------------------------------------------


@attrs.frozen
class LockRow:
    lock: HeldLock
    #: Whether its time is past (the next task may take it; the key is not gone yet).
    expired: bool


def held_locks(tiger: Tiger, *, scan: bool, limit: int) -> tuple[list[LockRow], bool]:
    """The locks held, and whether more were left out. By default those of the running
    tasks (a task holds its lock while it is active) and of the requeue pass: a read per
    running task. ``scan`` lists every lock key instead, whatever holds it (a TaskTiger token,
    a lock whose task was lost): that scans the keyspace, slower the more tasks are stored."""
    if scan:
        locks, more = tiger.get_held_locks(limit)
    else:
        found: dict[tuple[str, str], HeldLock] = {}
        more = False
        for queue in sorted(tiger.backend.queues_with_tasks(TaskState.ACTIVE)):
            total, running = tiger.backend.list_tasks(queue, TaskState.ACTIVE, 0, limit, 0)
            more = more or total > len(running)  # (running tasks past the first ``limit``)
            payloads = (Decoded.of(stored).payload for stored in running)
            lock_ids = {lock_id_for(p) for p in payloads if p is not None and p.lock}
            # (per queue, each queue's own locks; classic, one lock may be read twice)
            for lock in tiger.backend.read_locks(sorted(lock_ids), queue):
                found[lock.id, lock.queue or ""] = lock
        # The requeue pass's lock: every queue's (per queue, one per queue).
        locks = [*tiger.backend.read_locks([REQUEUE_LOCK]), *(found[at] for at in sorted(found))]
    now = tiger.clock.now()
    rows = [LockRow(lock, lock.expires is not None and lock.expires <= now) for lock in locks]
    return rows, more
