"""Priorities within a queue (issue 23), on FakeBackend and real Redis with a ManualClock:
higher priorities claimed first, equal ones in queue order, through every way a task becomes
queued (enqueue, due, retry, requeue of a lost task), with subqueues still chosen fairly."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import timedelta
from importlib import resources

import pytest

from tests import tasks
from tests.conftest import run_worker
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger._priorities import MAX_PRIORITY, MIN_PRIORITY, PRIORITY_STEP, queued_score
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.exceptions import PayloadError
from typedtiger.serialization import TaskPayload, decode_payload, encode_payload
from typedtiger.spec import MAX_PRIORITY as PUBLIC_MAX
from typedtiger.spec import MIN_PRIORITY as PUBLIC_MIN

pytestmark = pytest.mark.timeout(60)


def enqueue_in_turn(
    tiger: Tiger, clock: ManualClock, priorities: Sequence[int], queue: str = "default"
) -> list[Task]:
    """``simple(i)`` for each priority, one second apart (each a distinct queue time)."""
    handles: list[Task] = []
    for value, priority in enumerate(priorities):
        spec = TaskSpec.of(tasks.simple, value).evolve(queue=queue, priority=priority)
        handles.append(tiger.enqueue(spec))
        clock.advance(1)
    return handles


def run_order() -> list[object]:
    return [call[1] for call in tasks.CALLS]


def by_priority(priorities: Sequence[int]) -> list[int]:
    """The indexes of ``priorities``, highest first and in their order within a priority."""
    return sorted(range(len(priorities)), key=lambda i: -priorities[i])


def test_higher_priorities_are_claimed_first_equal_ones_in_queue_order(
    tiger: Tiger, clock: ManualClock
) -> None:
    priorities = [0, 5, -3, 5, 0, 10, -10, 5, 0]
    enqueue_in_turn(tiger, clock, priorities)
    run_worker(tiger)
    assert run_order() == by_priority(priorities)


def test_a_batch_claim_takes_the_highest_priorities(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    handles = enqueue_in_turn(tiger, clock, [1, 2, 3, 2, 1])
    claimed = backend.claim("default", clock.now(), 3)
    assert [task.id for task in claimed] == [handles[i].id for i in (2, 1, 3)]
    assert not claimed.queue_empty


def test_priority_comes_from_the_registration_and_is_overridden_per_call(
    tiger: Tiger, clock: ManualClock
) -> None:
    urgent = tiger.task(priority=7)(tasks.add)
    handles = [
        urgent.delay(1, 2),
        tiger.enqueue(urgent.spec(3, 4).evolve(priority=-2)),
        tiger.enqueue(urgent.spec(5, 6).evolve(priority=None)),  # the registration's again
        tiger.delay(tasks.simple, args=["x"], priority=MAX_PRIORITY),
        tiger.delay(tasks.simple, args=["y"]),
    ]
    assert [task.priority for task in handles] == [7, -2, 7, MAX_PRIORITY, 0]
    clock.advance(1)
    run_worker(tiger)
    assert {run_order()[1], run_order()[2]} == {1, 5}  # (queued at the same time: either first)
    assert [run_order()[i] for i in (0, 3, 4)] == ["x", "y", 3]


@pytest.mark.parametrize("bad", [MAX_PRIORITY + 1, MIN_PRIORITY - 1, 1000])
def test_a_priority_out_of_range_is_refused(tiger: Tiger, bad: int) -> None:
    with pytest.raises(ValueError, match=f"priority must be between -10 and 10, got {bad}"):
        TaskSpec.of(tasks.simple).evolve(priority=bad)
    with pytest.raises(ValueError, match="priority must be between"):
        tiger.task(priority=bad)(tasks.add)
    with pytest.raises(ValueError, match="priority must be between"):
        tiger.delay(tasks.simple, priority=bad)


@pytest.mark.parametrize("bad", [True, 1.5, "3"])
def test_a_priority_that_is_not_an_int_is_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="priority must be an int"):
        TaskSpec(func="tests.tasks:simple", priority=bad)  # type: ignore[arg-type]


def test_the_range_is_public_and_the_scripts_use_the_same_numbers() -> None:
    assert (PUBLIC_MIN, PUBLIC_MAX) == (MIN_PRIORITY, MAX_PRIORITY) == (-10, 10)
    common = resources.files("typedtiger.backends").joinpath("lua", "_common.lua").read_text()
    pattern = r"local PRIORITY_STEP, MIN_PRIORITY, MAX_PRIORITY = (\S+), (\S+), (\S+)"
    found = re.search(pattern, common)
    assert found is not None
    assert [float(number) for number in found.groups()] == [PRIORITY_STEP, -10, 10]


def test_the_queued_score_is_the_queued_time_less_the_priority_head_start(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    now = clock.now()
    task = tiger.enqueue(TaskSpec.of(tasks.simple).evolve(priority=3))
    stored = backend.get_task("default", TaskState.QUEUED, task.id, 0)
    assert stored is not None
    assert stored.score == now - 3 * PRIORITY_STEP == queued_score(now, 3)
    # What the handles show is the time it was queued.
    assert task.ts is not None and task.ts.timestamp() == now
    (listed,) = Task.tasks_from_queue(tiger, "default", TaskState.QUEUED)[1]
    assert listed.ts is not None and listed.ts.timestamp() == now
    assert listed.priority == 3


def test_scheduled_tasks_keep_their_priority_when_due(tiger: Tiger, clock: ManualClock) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, "plain"))
    for value, priority in (("low", -1), ("high", 4)):
        spec = TaskSpec.of(tasks.simple, value).evolve(priority=priority)
        tiger.enqueue(spec, when=timedelta(seconds=5))  # due after the plain task was queued
    clock.advance(10)
    run_worker(tiger)
    assert run_order() == ["high", "plain", "low"]


def test_a_retried_task_keeps_its_priority(tiger: Tiger, clock: ManualClock) -> None:
    failing = tiger.enqueue(TaskSpec.of(tasks.failing, "again").evolve(priority=2))
    run_worker(tiger)
    tiger.enqueue(TaskSpec.of(tasks.simple, "plain"))
    clock.advance(1)
    errored = Task.from_id(tiger, "default", TaskState.ERROR, failing.id)
    errored.retry()
    assert errored.ts is not None and errored.ts.timestamp() == clock.now()
    run_worker(tiger)
    assert run_order() == ["again", "again", "plain"]


def test_a_task_retried_by_its_policy_keeps_its_priority(tiger: Tiger, clock: ManualClock) -> None:
    flaky = tiger.task(retry=True, priority=1)(tasks.failing)
    flaky.delay("flaky")
    run_worker(tiger)  # fails once; its retry is scheduled
    tiger.enqueue(TaskSpec.of(tasks.simple, "plain"))
    clock.advance(3600)
    run_worker(tiger)
    assert run_order()[:3] == ["flaky", "flaky", "plain"]


def test_a_lost_task_is_requeued_with_its_priority(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple).evolve(priority=-4))
    assert len(backend.claim("default", clock.now(), 1)) == 1
    clock.advance(600)
    requeued, failed = backend.requeue_expired(clock.now(), 60, 100, 5, "{}", 10)
    assert (requeued, failed) == (1, 0)
    stored = backend.get_task("default", TaskState.QUEUED, task.id, 0)
    assert stored is not None and stored.score == queued_score(clock.now(), -4)


def test_subqueues_are_chosen_fairly_whatever_their_priorities(
    backend: RedisBackend, clock: ManualClock
) -> None:
    tiger = Tiger(backend, Config(allowed_task_modules=("tests",)))
    for value in range(10):
        tiger.enqueue(TaskSpec.of(tasks.simple, f"hi{value}").evolve(queue="a.hi", priority=10))
        tiger.enqueue(TaskSpec.of(tasks.simple, f"lo{value}").evolve(queue="a.lo", priority=-10))
        clock.advance(1)
    random.seed(23)
    run_worker(tiger, queues=["a"])
    order = [str(value) for value in run_order()]
    # Each subqueue in its own order; both served from the start (a random choice each time).
    assert [v for v in order if v.startswith("hi")] == [f"hi{i}" for i in range(10)]
    assert [v for v in order if v.startswith("lo")] == [f"lo{i}" for i in range(10)]
    assert {v[:2] for v in order[:10]} == {"hi", "lo"}


def test_a_unique_task_enqueued_again_keeps_its_queued_time_with_the_new_priority(
    tiger: Tiger, clock: ManualClock
) -> None:
    unique = tiger.task(unique=True)(tasks.simple)
    first = tiger.enqueue(unique.spec("u"))
    clock.advance(1)
    tiger.enqueue(TaskSpec.of(tasks.simple, "plain"))
    again = tiger.enqueue(unique.spec("u").evolve(priority=5))
    assert again.id == first.id
    assert again.ts == first.ts  # TaskTiger's rule: the queued time is kept...
    stored = Task.from_id(tiger, "default", TaskState.QUEUED, first.id)
    assert (stored.priority, stored.ts) == (5, first.ts)  # ...with its new priority
    run_worker(tiger)
    assert run_order() == ["u", "plain"]


def test_the_payload_carries_a_priority_only_when_it_is_not_zero() -> None:
    assert '"priority"' not in encode_payload(TaskPayload(id="a", func="m:f"))
    encoded = encode_payload(TaskPayload(id="a", func="m:f", priority=-3))
    assert '"priority":-3' in encoded.replace(" ", "")
    assert decode_payload(encoded).priority == -3
    with pytest.raises(PayloadError, match="priority is 11, not -10 to 10"):
        decode_payload('{"id": "a", "func": "m:f", "priority": 11}')
