"""Queues and scheduling (issue 5), on FakeBackend and real Redis with a ManualClock: subqueue
filters, fair selection, batch queues, scheduled and periodic tasks, queue slots, queue system
locks and single-worker queues."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest

from tests import option_tasks
from tests.conftest import run_worker
from tests.keys import task_keys
from tests.option_tasks import (
    CALLS,
    HeartbeatingExecutor,
    RecordingExecutor,
    due_at,
    make_tiger,
    stored,
    tasktiger_id,
)
from typedtiger import Config, Task, TaskNotFound, TaskSpec, TaskState, Tiger, Worker
from typedtiger.backends.base import Backend
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import Job, SyncExecutor

MODULE = "tests.option_tasks"


@pytest.fixture
def tiger(backend: RedisBackend) -> Tiger:
    return make_tiger(backend)


@pytest.fixture(autouse=True)
def _reset_option_tasks() -> Iterator[None]:
    option_tasks.reset()
    yield
    option_tasks.reset()


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def enqueue_records(tiger: Tiger, queues: Sequence[str]) -> None:
    """One ``record(queue)`` task in each queue."""
    tiger.enqueue_many([TaskSpec.of(option_tasks.record, q).evolve(queue=q) for q in queues])


def recorded_values() -> list[object]:
    return [call[1] for call in CALLS if call[0] == "record"]


class SpinGuard:
    """A backend wrapper that stops the worker it watches once the worker has listed the
    queued queues more than ``limit`` times: ``Worker.run(once=True)`` lists them once per
    pass, so a worker that keeps passing over a queue it cannot claim from would never return.
    ``spun`` tells whether the guard had to stop it."""

    def __init__(self, inner: RedisBackend, limit: int = 25) -> None:
        self._inner = inner
        self._limit = limit
        self._listings = 0
        self._worker: Worker | None = None
        self.spun = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def with_prefix(self, prefix: str, cluster: bool = False) -> SpinGuard:
        assert prefix == self._inner.prefix
        return self

    def without_retries(self) -> SpinGuard:
        return self

    def queues_with_tasks(self, state: TaskState) -> set[str]:
        if state is TaskState.QUEUED:
            self._listings += 1
            if self._listings > self._limit and self._worker is not None:
                self.spun = True
                self._worker.stop()
        return self._inner.queues_with_tasks(state)

    def run(self, worker: Worker) -> None:
        """``worker.run(once=True)``, stopped if it spins."""
        self._worker, self._listings, self.spun = worker, 0, False
        worker.run(once=True)


def guarded_tiger(backend: RedisBackend, config: Config | None = None) -> tuple[Tiger, SpinGuard]:
    guard = SpinGuard(backend)
    return make_tiger(cast(Backend, guard), config), guard


# --- subqueues and queue filters ---------------------------------------------------------------

EMAIL_QUEUES = (
    "email",
    "email.outgoing.CUSTOMER1",
    "email.outgoing.CUSTOMER2",
    "email.incoming",
    "email.incoming.CUSTOMER1",
    "email.incoming.CUSTOMER2",
    "emailer",  # a name with the same prefix, not a subqueue
    "other",
)


@pytest.mark.parametrize(
    ("only", "exclude", "served"),
    [
        # TaskTiger's README: -q email,email.incoming.CUSTOMER1 -e email.incoming
        (
            ["email", "email.incoming.CUSTOMER1"],
            ["email.incoming"],
            {"email", "email.outgoing.CUSTOMER1", "email.outgoing.CUSTOMER2"}
            | {"email.incoming.CUSTOMER1"},
        ),
        (
            ["email"],
            [],
            {q for q in EMAIL_QUEUES if q == "email" or q.startswith("email.")},
        ),
        ([], ["email"], {"emailer", "other"}),
        ([], ["email.incoming"], set(EMAIL_QUEUES) - {q for q in EMAIL_QUEUES if "incoming" in q}),
        (["email.incoming.CUSTOMER2"], ["email"], {"email.incoming.CUSTOMER2"}),
        (["email.outgoing"], [], {"email.outgoing.CUSTOMER1", "email.outgoing.CUSTOMER2"}),
        ([], [], set(EMAIL_QUEUES)),
    ],
    ids=["readme", "q-email", "e-email", "e-incoming", "q-specific-e-general", "q-sub", "all"],
)
def test_workers_serve_queues_with_their_subqueues_the_most_specific_rule_winning(
    tiger: Tiger, only: list[str], exclude: list[str], served: set[str]
) -> None:
    enqueue_records(tiger, EMAIL_QUEUES)
    run_worker(tiger, queues=only, exclude_queues=exclude)
    assert sorted(map(str, recorded_values())) == sorted(served)
    assert set(tiger.backend.queues_with_tasks(TaskState.QUEUED)) == set(EMAIL_QUEUES) - served


def test_config_only_and_exclude_queues_apply_when_a_worker_is_given_none(
    backend: RedisBackend,
) -> None:
    tiger = make_tiger(backend, Config(only_queues=("email",), exclude_queues=("email.incoming",)))
    enqueue_records(tiger, EMAIL_QUEUES)

    run_worker(tiger)
    assert sorted(map(str, recorded_values())) == [
        "email",
        "email.outgoing.CUSTOMER1",
        "email.outgoing.CUSTOMER2",
    ]

    CALLS.clear()
    run_worker(tiger, queues=["email.incoming.CUSTOMER1", "other"])  # overrides only_queues
    assert sorted(map(str, recorded_values())) == ["email.incoming.CUSTOMER1", "other"]

    CALLS.clear()
    run_worker(tiger, exclude_queues=[])  # overrides exclude_queues; only_queues still applies
    assert sorted(map(str, recorded_values())) == ["email.incoming", "email.incoming.CUSTOMER2"]


# --- fair selection ----------------------------------------------------------------------------

BIG, SMALL, CLAIM_BOUND = 1000, 10, 100


def test_a_small_subqueue_is_not_starved_by_a_big_one(tiger: Tiger) -> None:
    """A worker serving ``a`` finishes all of ``a.small`` (10 tasks) within its first 100
    claims although ``a.big`` holds 1,000 tasks queued first.

    Why 100: every claim picks one of the worker's non-empty queues at random, so while both
    are non-empty a claim takes from ``a.small`` with probability 1/2; its 10 tasks take about
    20 claims. The test fails only if fewer than 10 of the first 100 picks chose ``a.small``:
    P = P(Binomial(100, 1/2) <= 9) ~ 1.7e-18 (computed below). A FIFO worker needs 1,010
    claims, and one that drains the queue it picked first does so half the time. ``random``
    is seeded for repeatability (the order of the worker's queue set still depends on the hash
    seed; the bound holds regardless)."""
    miss = sum(math.comb(CLAIM_BOUND, k) for k in range(SMALL)) / 2**CLAIM_BOUND
    assert miss < 1e-17

    tiger.enqueue_many(
        [TaskSpec.of(option_tasks.record, n).evolve(queue="a.big") for n in range(BIG)]
    )
    tiger.enqueue_many(
        [TaskSpec.of(option_tasks.record, -n).evolve(queue="a.small") for n in range(SMALL)]
    )
    claims: list[str] = []

    def count_claim(job: Job) -> None:
        claims.append(job.queue)
        if claims.count("a.small") == SMALL:
            worker.stop()  # the rest of a.big is of no interest

    worker = Worker(tiger, queues=["a"], executor=RecordingExecutor(count_claim))
    state = random.getstate()
    random.seed(20260101)
    try:
        worker.run(once=True)
    finally:
        random.setstate(state)

    assert claims.count("a.small") == SMALL
    assert len(claims) <= CLAIM_BOUND
    assert tiger.get_queue_sizes("a.small")[TaskState.QUEUED] == 0
    assert tiger.get_queue_sizes("a.big")[TaskState.QUEUED] == BIG - claims.count("a.big")


# --- batch queues ------------------------------------------------------------------------------

BATCH_CONFIG = Config(batch_queues={"batch": 3, "batch.small": 2})


def test_batch_size_of_the_most_specific_subqueue_wins() -> None:
    sizes = {q: BATCH_CONFIG.batch_size_for(q) for q in ("batch", "batch.small", "batch.small.x")}
    sizes |= {q: BATCH_CONFIG.batch_size_for(q) for q in ("batch.other", "batchy", "other")}
    assert sizes == {
        "batch": 3,
        "batch.small": 2,
        "batch.small.x": 2,
        "batch.other": 3,
        "batchy": 1,
        "other": 1,
    }


def test_batch_tasks_receive_calls_in_batches_of_their_queues_size(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger = make_tiger(backend, BATCH_CONFIG)
    counts = {"batch": 7, "batch.small.x": 5, "batch.other": 4}
    for queue, count in counts.items():
        for n in range(count):
            tiger.enqueue(option_tasks.batch_record.spec(queue, n, n=n).evolve(queue=queue))
            clock.advance(0.001)  # claimed in this order

    run_worker(tiger)

    by_queue: dict[object, list[list[list[object]]]] = {}
    for name, args, kwargs, current_args, is_batch in CALLS:
        assert name == "batch" and is_batch is True
        assert isinstance(args, list) and isinstance(kwargs, list)
        assert current_args == args  # tiger.current_tasks: the batch's tasks, in order
        assert kwargs == [{"n": call_args[1]} for call_args in args]
        by_queue.setdefault(args[0][0], []).append(args)
    assert {queue: [len(batch) for batch in batches] for queue, batches in by_queue.items()} == {
        "batch": [3, 3, 1],
        "batch.small.x": [2, 2, 1],
        "batch.other": [3, 1],
    }
    assert by_queue["batch"][0] == [["batch", 0], ["batch", 1], ["batch", 2]]


def test_a_failing_batch_fails_and_is_retried_as_a_whole(
    backend: RedisBackend, clock: ManualClock
) -> None:
    # batch_fail: @tiger.task(batch=True, queue="batch", retry=fixed(10, 1))
    tiger = make_tiger(backend, BATCH_CONFIG)
    tasks = [tiger.enqueue(option_tasks.batch_fail.spec(n)) for n in range(3)]

    run_worker(tiger)
    assert [sorted(map(str, call[1])) for call in CALLS] == [["[0]", "[1]", "[2]"]]  # type: ignore[call-overload]
    for task in tasks:
        assert due_at(tiger, "batch", task.id) == clock.now() + 10
    clock.advance(10)
    run_worker(tiger)

    assert len(CALLS) == 2 and len(CALLS[1][1]) == 3  # type: ignore[arg-type]
    for task in tasks:
        assert stored(tiger, task.id) == [("batch", TaskState.ERROR)]
        assert Task.from_id(tiger, "batch", TaskState.ERROR, task.id).n_executions() == 2


def test_a_task_that_is_not_batch_runs_singly_in_a_batch_queue(backend: RedisBackend) -> None:
    tiger = make_tiger(backend, BATCH_CONFIG)
    for n in range(3):
        tiger.delay(option_tasks.record_batchness, args=[n], queue="batch")
    executor = RecordingExecutor()

    tiger.run_worker(executor=executor, once=True)

    assert [len(job.tasks) for job in executor.jobs] == [1, 1, 1]
    assert sorted(CALLS) == [("single", n, True, False) for n in range(3)]


# --- scheduled tasks ---------------------------------------------------------------------------


def test_when_is_a_datetime_aware_or_utc_naive_or_a_timedelta(
    tiger: Tiger, clock: ManualClock
) -> None:
    t0 = clock.now()
    start = datetime.fromtimestamp(t0, UTC)
    plus_two = timezone(timedelta(hours=2))
    tasks = [
        tiger.delay(option_tasks.record, args=["relative"], when=timedelta(hours=1)),
        tiger.delay(
            option_tasks.record,
            args=["naive"],
            when=(start + timedelta(hours=2)).replace(tzinfo=None),
        ),
        tiger.delay(
            option_tasks.record,
            args=["aware"],
            when=(start + timedelta(hours=3)).astimezone(plus_two),
        ),
    ]
    for hours, task in enumerate(tasks, start=1):
        assert task.state is TaskState.SCHEDULED
        assert task.scheduled_at == start + timedelta(hours=hours)
        assert due_at(tiger, "default", task.id) == t0 + 3600 * hours

    for hours, value in enumerate(["relative", "naive", "aware"], start=1):
        clock.set(t0 + 3600 * hours - 1)
        run_worker(tiger)
        assert len(CALLS) == hours - 1
        clock.set(t0 + 3600 * hours)
        run_worker(tiger)
        assert CALLS[-1] == ("record", value)


def test_due_tasks_move_to_queued_in_batches_of_scheduled_task_batch_size(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger = make_tiger(backend, Config(scheduled_task_batch_size=3))
    t0 = clock.now()
    for n in range(5):
        tiger.delay(
            option_tasks.record_sizes,
            args=[n, "sched"],
            queue="sched",
            when=timedelta(seconds=10 + n),
        )
    clock.set(t0 + 20)

    run_worker(tiger)

    # The first task ran after one move of 3 (the earliest due): 1 active, 2 queued, 2 left.
    first_sizes = CALLS[0][2]
    assert first_sizes == {TaskState.QUEUED: 2, TaskState.ACTIVE: 1, TaskState.SCHEDULED: 2}
    assert {call[1] for call in CALLS[:3]} == {0, 1, 2}
    assert {call[1] for call in CALLS[3:]} == {3, 4}
    assert tiger.get_queue_stats() == {}


def test_move_due_scheduled_limits_each_queue(tiger: Tiger, clock: ManualClock) -> None:
    for queue in ("s1", "s2"):
        for n in range(4):
            tiger.delay(option_tasks.record, args=[n], queue=queue, when=timedelta(seconds=n + 1))
    clock.advance(10)
    assert tiger.backend.move_due_scheduled(clock.now(), 3) == 6
    assert tiger.backend.move_due_scheduled(clock.now(), 3) == 2
    assert tiger.backend.move_due_scheduled(clock.now(), 3) == 0
    assert tiger.get_queue_sizes("s1")[TaskState.QUEUED] == 4


def test_update_scheduled_time(tiger: Tiger, clock: ManualClock) -> None:
    t0 = clock.now()
    task = tiger.delay(option_tasks.record, args=["moved"], when=timedelta(hours=1))

    task.update_scheduled_time(timedelta(minutes=10))
    assert due_at(tiger, "default", task.id) == t0 + 600
    assert Task.from_id(tiger, "default", TaskState.SCHEDULED, task.id).scheduled_at == utc(
        2026, 1, 1, 0, 10
    )
    clock.advance(599)
    run_worker(tiger)
    assert CALLS == []
    clock.advance(1)
    run_worker(tiger)
    assert CALLS == [("record", "moved")]

    later = tiger.delay(option_tasks.record, args=["later"], when=timedelta(minutes=1))
    later.update_scheduled_time(utc(2026, 1, 2))
    assert due_at(tiger, "default", later.id) == utc(2026, 1, 2).timestamp()

    queued = tiger.delay(option_tasks.record, args=["queued"])
    with pytest.raises(TaskNotFound):
        queued.update_scheduled_time(timedelta(minutes=1))


def test_cancel_a_scheduled_task(tiger: Tiger, backend: RedisBackend, clock: ManualClock) -> None:
    task = tiger.delay(option_tasks.record, args=["cancelled"], when=timedelta(minutes=5))
    kept = tiger.delay(option_tasks.record, args=["kept"], when=timedelta(minutes=5))

    task.cancel()

    assert stored(tiger, task.id) == []
    assert task_keys(backend, task.id) == []
    with pytest.raises(TaskNotFound):
        task.cancel()
    clock.advance(timedelta(minutes=5))
    run_worker(tiger)
    assert CALLS == [("record", "kept")]
    assert stored(tiger, kept.id) == []


def test_cancel_a_unique_scheduled_task_rebuilt_from_its_spec(
    tiger: Tiger, clock: ManualClock
) -> None:
    # TaskTiger's README, example 1: re-create the unique task, then cancel it.
    task = tiger.enqueue(option_tasks.unique_task.spec(9), when=timedelta(minutes=5))
    Task.from_spec(tiger, option_tasks.unique_task.spec(9)).cancel()
    assert stored(tiger, task.id) == []


# --- periodic tasks ----------------------------------------------------------------------------


@pytest.fixture
def periodic_tiger(tiger: Tiger) -> Tiger:
    tiger.adopt(option_tasks.periodic_tiger)
    return tiger


def test_a_periodic_task_is_registered_once_however_many_workers_start(
    periodic_tiger: Tiger, clock: ManualClock
) -> None:
    clock.set(utc(2026, 1, 1, 0, 2, 30))
    task_id = tasktiger_id(f"{MODULE}:every_five_minutes", [], {})

    run_worker(periodic_tiger, queues=["other"])  # does not serve it: does not register it
    assert stored(periodic_tiger, task_id) == []

    for _ in range(3):
        Worker(periodic_tiger, queues=["periodic.five"], executor=SyncExecutor()).run(once=True)
    assert stored(periodic_tiger, task_id) == [("periodic.five", TaskState.SCHEDULED)]
    assert periodic_tiger.get_total_queue_size("periodic.five") == 1
    assert due_at(periodic_tiger, "periodic.five", task_id) == utc(2026, 1, 1, 0, 5).timestamp()


NEVER = None


@pytest.mark.parametrize(
    ("name", "start", "runs", "ends"),
    [
        (
            "five",  # periodic(minutes=5)
            utc(2026, 1, 1, 0, 2, 30),
            [
                (utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 10)),
                (utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 15)),
            ],
            False,
        ),
        (
            "weekly",  # periodic(weeks=1, start_date=Sunday 2026-01-04 04:00)
            utc(2026, 1, 1),
            [(utc(2026, 1, 4, 4), utc(2026, 1, 11, 4)), (utc(2026, 1, 11, 4), utc(2026, 1, 18, 4))],
            False,
        ),
        (
            "cron",  # cron("0 4 * * SUN")
            utc(2026, 1, 1),
            [(utc(2026, 1, 4, 4), utc(2026, 1, 11, 4)), (utc(2026, 1, 11, 4), utc(2026, 1, 18, 4))],
            False,
        ),
        (
            "custom",  # a function: 00:30, 01:30, 02:30, then None
            utc(2026, 1, 1),
            [
                (utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 1, 30)),
                (utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 2, 30)),
                (utc(2026, 1, 1, 2, 30), NEVER),
            ],
            True,
        ),
        (
            "ending",  # periodic(minutes=5, end_date=00:10): a run at the end date is the last
            utc(2026, 1, 1, 0, 2),
            [(utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 10)), (utc(2026, 1, 1, 0, 10), NEVER)],
            True,
        ),
    ],
)
def test_periodic_first_and_next_runs(
    periodic_tiger: Tiger,
    clock: ManualClock,
    name: str,
    start: datetime,
    runs: list[tuple[datetime, datetime | None]],
    ends: bool,
) -> None:
    """Each run happens at its time and not a second earlier; while it runs, the next run is
    already scheduled; the end date, or a schedule returning None, stops it."""
    func = {
        "five": "every_five_minutes",
        "weekly": "weekly",
        "cron": "sundays_at_four",
        "custom": "custom_scheduled",
        "ending": "ending",
    }[name]
    queue = f"periodic.{name}"
    task_id = tasktiger_id(f"{MODULE}:{func}", [], {})
    clock.set(start)
    run_worker(periodic_tiger, queues=[queue])
    assert due_at(periodic_tiger, queue, task_id) == runs[0][0].timestamp()

    for number, (run_at, next_run) in enumerate(runs, start=1):
        clock.set(run_at - timedelta(seconds=1))
        run_worker(periodic_tiger, queues=[queue])
        assert len(CALLS) == number - 1, "ran early"
        clock.set(run_at)
        run_worker(periodic_tiger, queues=[queue])
        assert CALLS[-1] == (name, run_at, next_run)
        assert len(CALLS) == number
        if next_run is not None:
            assert stored(periodic_tiger, task_id) == [(queue, TaskState.SCHEDULED)]
            assert due_at(periodic_tiger, queue, task_id) == next_run.timestamp()

    if ends:
        assert stored(periodic_tiger, task_id) == []
        clock.advance(timedelta(days=30))
        run_worker(periodic_tiger, queues=[queue])
        assert len(CALLS) == len(runs)
        assert stored(periodic_tiger, task_id) == []


# --- max workers per queue ---------------------------------------------------------------------


def test_queue_slots_bound_the_workers_of_a_queue_and_expire(
    backend: RedisBackend, clock: ManualClock
) -> None:
    now = clock.now()
    slot = backend.acquire_queue_slot
    assert slot("q", "worker-1", 1, now, 20)
    assert not slot("q", "worker-2", 1, now, 20)
    assert slot("q", "worker-1", 1, now + 10, 20)  # its own slot: refreshed, until now + 30
    assert slot("q2", "worker-2", 1, now, 20)  # one semaphore per queue
    assert slot("q", "worker-2", 2, now, 20)  # a limit of 2 has room for a second worker
    assert not slot("q", "worker-3", 2, now, 20)
    backend.release_queue_slot("q", "worker-2")
    assert slot("q", "worker-3", 2, now, 20)
    backend.release_queue_slot("q", "worker-3")

    # worker-1 dies: its slot is free once its expiry (now + 30) has passed.
    assert not slot("q", "worker-4", 1, now + 29, 20)
    assert slot("q", "worker-4", 1, now + 30.5, 20)


def test_a_worker_skips_a_queue_whose_slots_are_taken(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger, guard = guarded_tiger(backend)
    timeout = tiger.config.active_task_update_timeout
    assert backend.acquire_queue_slot("slotted", "another-worker", 1, clock.now(), timeout)
    enqueue_records(tiger, ["slotted", "free"])

    guard.run(Worker(tiger, max_workers_per_queue=1, executor=SyncExecutor()))
    assert recorded_values() == ["free"]

    clock.advance(timeout)  # the other worker stopped refreshing its slot: it expires
    guard.run(Worker(tiger, max_workers_per_queue=1, executor=SyncExecutor()))
    assert recorded_values() == ["free", "slotted"]
    # ... and the worker gave its slot back when it was done.
    assert backend.acquire_queue_slot("slotted", "a-third-worker", 1, clock.now(), timeout)


def test_a_worker_holds_its_slot_while_it_processes_the_queue(tiger: Tiger) -> None:
    tiger.delay(option_tasks.probe_queue_slot, args=["slotted"], queue="slotted")
    tiger.run_worker(max_workers_per_queue=1, executor=SyncExecutor(), once=True)
    tiger.delay(option_tasks.probe_queue_slot, args=["slotted"], queue="slotted")
    tiger.run_worker(executor=SyncExecutor(), once=True)  # no limit: no slot taken

    assert CALLS == [("probe", "slotted", False), ("probe", "slotted", True)]


def test_a_worker_keeps_its_slot_through_a_long_task(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger = make_tiger(backend)
    timeout = tiger.config.active_task_update_timeout
    probes: list[bool] = []

    def try_a_slot(job: Job) -> None:
        probes.append(backend.acquire_queue_slot("slotted", "intruder", 1, clock.now(), timeout))

    executor = HeartbeatingExecutor(clock, 3 * timeout, try_a_slot)
    tiger.delay(option_tasks.record, args=["long"], queue="slotted")
    executor.run_worker(tiger, max_workers_per_queue=1)

    assert recorded_values() == ["long"]
    assert probes == [False]


@pytest.mark.parametrize("blocked_by", ["slot", "system lock"])
def test_run_once_returns_when_only_blocked_queues_are_left(
    backend: RedisBackend, clock: ManualClock, blocked_by: str
) -> None:
    tiger, guard = guarded_tiger(backend)
    if blocked_by == "slot":
        assert backend.acquire_queue_slot("blocked", "another-worker", 1, clock.now(), 20.0)
    else:
        tiger.set_queue_system_lock("blocked", 60)
    enqueue_records(tiger, ["blocked", "free"])

    guard.run(Worker(tiger, max_workers_per_queue=1, executor=SyncExecutor()))

    assert recorded_values() == ["free"]
    assert not guard.spun, "run(once=True) kept passing over the blocked queue"


def test_a_queue_system_lock_pauses_the_queue_until_it_expires(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger, guard = guarded_tiger(backend)
    t0 = clock.now()
    tiger.set_queue_system_lock("paused", 60)
    assert tiger.get_queue_system_lock("paused") == t0 + 60
    assert tiger.get_queue_system_lock("free") is None
    enqueue_records(tiger, ["paused", "free"])

    guard.run(Worker(tiger, executor=SyncExecutor()))
    guard.run(Worker(tiger, max_workers_per_queue=3, executor=SyncExecutor()))
    assert recorded_values() == ["free"]

    clock.advance(59)
    guard.run(Worker(tiger, executor=SyncExecutor()))
    assert recorded_values() == ["free"]
    assert tiger.get_queue_system_lock("paused") == t0 + 60

    clock.advance(1)
    assert tiger.get_queue_system_lock("paused") is None
    guard.run(Worker(tiger, executor=SyncExecutor()))
    assert recorded_values() == ["free", "paused"]


def test_single_worker_queues_and_their_subqueues_take_one_worker_at_a_time(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger, guard = guarded_tiger(backend, Config(single_worker_queues=("solo",)))
    for queue in ("solo", "solo.sub"):
        assert backend.acquire_queue_slot(queue, "another-worker", 1, clock.now(), 20.0)
    enqueue_records(tiger, ["solo", "solo.sub", "solo2", "free"])

    guard.run(Worker(tiger, executor=SyncExecutor()))
    assert sorted(map(str, recorded_values())) == ["free", "solo2"]

    for queue in ("solo", "solo.sub"):
        backend.release_queue_slot(queue, "another-worker")
    tiger.delay(option_tasks.probe_queue_slot, args=["solo"], queue="solo")
    guard.run(Worker(tiger, executor=SyncExecutor()))
    assert sorted(map(str, recorded_values())) == ["free", "solo", "solo.sub", "solo2"]
    assert ("probe", "solo", False) in CALLS
