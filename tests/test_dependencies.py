"""Dependencies (issue 23), on FakeBackend and real Redis with a ManualClock: a task enqueued
``after`` others runs once they all succeeded, waits through their retries, is cancelled with a
DependencyFailed record when one fails for good (and so is what waits for it), and works with
unique and scheduled tasks; inspection shows the wait."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests import tasks
from tests.conftest import run_worker
from tests.keys import layout, stored_keys
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger.backends.base import WAITING_SCORE, Completion, TaskRef
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.spec import fixed

pytestmark = pytest.mark.timeout(60)

DEPENDENCY_FAILED = "typedtiger.exceptions:DependencyFailed"
#: Why a test of a wait across queues does not run on the cluster.
AFTER_ACROSS_QUEUES = "a task may wait only for tasks of its own queue"


def simple(value: str) -> TaskSpec:
    return TaskSpec.of(tasks.simple, value)


def failing(value: str) -> TaskSpec:
    return TaskSpec.of(tasks.failing, value)


def calls() -> list[object]:
    return [call[1] for call in tasks.CALLS]


def run_all(tiger: Tiger) -> None:
    """Run workers until nothing is queued (a released task is queued by the last completion)."""
    for _ in range(10):
        run_worker(tiger)
        if not tiger.backend.queues_with_tasks(TaskState.QUEUED):
            return
    raise AssertionError("tasks are still queued")


def refs(*handles: Task) -> tuple[TaskRef, ...]:
    return tuple(sorted((TaskRef(t.queue, t.id) for t in handles), key=lambda ref: ref.id))


def errored(tiger: Tiger, task: Task) -> Task:
    return Task.from_id(tiger, task.queue, TaskState.ERROR, task.id, load_executions=10)


@pytest.mark.across_queues(AFTER_ACROSS_QUEUES)
def test_a_task_after_another_waits_until_it_succeeded(tiger: Tiger) -> None:
    first = tiger.enqueue(simple("first").evolve(queue="other"))
    second = tiger.enqueue(simple("second"), after=first)
    assert (second.state, second.waiting) == (TaskState.SCHEDULED, True)
    assert second.dependencies().waiting_for == refs(first)
    assert first.dependencies().dependents == refs(second)
    run_worker(tiger, queues=["default"])  # its queue alone: nothing to run yet
    assert calls() == []
    run_all(tiger)
    assert calls() == ["first", "second"]
    assert tiger.get_queue_stats() == {}
    assert tiger.backend.dependencies(first.id).dependents == ()


@pytest.mark.across_queues(AFTER_ACROSS_QUEUES)
def test_a_task_after_several_waits_for_all(tiger: Tiger, clock: ManualClock) -> None:
    one, two = tiger.enqueue(simple("one")), tiger.enqueue(simple("two").evolve(queue="q2"))
    last = tiger.enqueue(simple("last"), after=[one, two])
    run_worker(tiger, queues=["default"])
    assert calls() == ["one"]
    assert last.dependencies().waiting_for == refs(two)
    run_all(tiger)
    assert calls() == ["one", "two", "last"]


@pytest.mark.across_queues(AFTER_ACROSS_QUEUES)
def test_a_chain_runs_in_order_in_one_round_trip(tiger: Tiger) -> None:
    chain = tiger.chain([simple("a"), simple("b").evolve(queue="q2"), simple("c")])
    assert [task.state for task in chain] == [TaskState.QUEUED] + [TaskState.SCHEDULED] * 2
    assert chain[2].dependencies().waiting_for == refs(chain[1])
    run_all(tiger)
    assert calls() == ["a", "b", "c"]


def test_a_permanent_failure_cancels_what_waits_for_it_with_a_record(
    tiger: Tiger, clock: ManualClock
) -> None:
    broken, second, third = tiger.chain([failing("boom"), simple("second"), simple("third")])
    side = tiger.enqueue(simple("side"), after=third)
    run_all(tiger)
    assert calls() == ["boom"]
    for task, gone in ((second, broken), (third, second), (side, third)):
        (record,) = errored(tiger, task).executions
        assert record.exception_name == DEPENDENCY_FAILED
        assert record.exception is not None and record.exception.startswith(f"task {gone.id} ")
        assert record.time_failed == clock.now()
    assert "failed for good" in (errored(tiger, second).executions[0].exception or "")
    assert "was cancelled" in (errored(tiger, third).executions[0].exception or "")
    assert tiger.get_queue_stats() == {"default": {"error": 4}}


def test_a_retried_task_keeps_its_dependents_waiting(tiger: Tiger, clock: ManualClock) -> None:
    flaky = tiger.task(retry=fixed(60, 2))(tasks.failing)
    first = flaky.delay("flaky")
    second = tiger.enqueue(simple("second"), after=first)
    run_all(tiger)
    assert calls() == ["flaky"]
    assert Task.from_id(tiger, "default", TaskState.SCHEDULED, second.id).waiting
    clock.advance(60)
    run_all(tiger)
    assert calls() == ["flaky", "flaky"]  # retried, failed again: still waiting
    assert second.dependencies().waiting_for == refs(first)
    clock.advance(60)
    run_all(tiger)  # the last retry fails for good
    assert calls() == ["flaky"] * 3
    assert errored(tiger, second).executions[0].exception_name == DEPENDENCY_FAILED


def test_a_task_that_succeeds_on_a_retry_releases_its_dependents(
    tiger: Tiger, clock: ManualClock
) -> None:
    once = tiger.task(retry=fixed(30, 3))(tasks.fails_once)
    after = tiger.enqueue(simple("after"), after=once.delay("key"))
    run_all(tiger)
    assert calls() == ["key"]
    assert after.dependencies().waiting_for != ()
    clock.advance(30)
    run_all(tiger)
    assert calls() == ["key", "key", "after"]


def test_a_task_after_one_already_done_or_failed(tiger: Tiger, clock: ManualClock) -> None:
    done = tiger.enqueue(simple("done"))
    clock.advance(1)
    broken = tiger.enqueue(failing("broken"))
    run_all(tiger)
    # Gone from storage: it succeeded, so the task after it is queued at once.
    assert tiger.enqueue(simple("after done"), after=done).state is TaskState.QUEUED
    cancelled = tiger.enqueue(simple("after broken"), after=broken)
    assert cancelled.state is TaskState.ERROR
    (record,) = errored(tiger, cancelled).executions
    assert record.exception == f"task {broken.id} had failed when this one was enqueued"
    run_all(tiger)
    assert calls() == ["done", "broken", "after done"]


def test_deleting_a_task_cancels_what_waits_for_it(tiger: Tiger, clock: ManualClock) -> None:
    first = tiger.enqueue(simple("first"), when=timedelta(hours=1))
    second = tiger.enqueue(simple("second"), after=first)
    first.cancel()
    (record,) = errored(tiger, second).executions
    assert record.exception == f"task {first.id} was deleted"
    # Cancelling the waiting task itself forgets its wait.
    third = tiger.enqueue(simple("third"), when=timedelta(hours=1))
    fourth = tiger.enqueue(simple("fourth"), after=third)
    Task.from_id(tiger, "default", TaskState.SCHEDULED, fourth.id).cancel()
    assert third.dependencies().dependents == refs(fourth)  # (left, and skipped on release)
    clock.advance(3600)
    run_all(tiger)
    assert calls() == ["third"]
    assert tiger.get_queue_stats() == {"default": {"error": 1}}


def test_a_scheduled_task_after_another_runs_at_its_time(tiger: Tiger, clock: ManualClock) -> None:
    first = tiger.enqueue(simple("first"))
    later = tiger.enqueue(simple("later"), when=timedelta(minutes=10), after=first)
    assert later.waiting
    assert later.scheduled_at is not None
    assert later.scheduled_at.timestamp() == clock.now() + 600
    run_all(tiger)
    assert calls() == ["first"]
    assert Task.from_id(tiger, "default", TaskState.SCHEDULED, later.id).ts == later.scheduled_at
    clock.advance(600)
    run_all(tiger)
    assert calls() == ["first", "later"]


def test_a_task_after_a_scheduled_one_waits_for_its_run(tiger: Tiger, clock: ManualClock) -> None:
    first = tiger.enqueue(simple("first"), when=timedelta(minutes=5))
    tiger.enqueue(simple("second"), after=first)
    run_all(tiger)
    assert calls() == []
    clock.advance(300)
    run_all(tiger)
    assert calls() == ["first", "second"]


def test_a_unique_task_enqueued_after_twice_runs_once_after_both(tiger: Tiger) -> None:
    unique = tiger.task(unique=True)(tasks.simple)
    one, two = tiger.enqueue(simple("one")), tiger.enqueue(simple("two"))
    first = tiger.enqueue(unique.spec("u"), after=one)
    again = tiger.enqueue(unique.spec("u"), after=two)
    assert again.id == first.id and again.waiting
    assert first.dependencies().waiting_for == refs(one, two)
    run_all(tiger)
    assert calls() == ["one", "two", "u"]


def test_tasks_after_a_unique_task_wait_for_its_run(tiger: Tiger) -> None:
    unique = tiger.task(unique=True)(tasks.simple)
    first = unique.delay("u")
    tiger.enqueue(simple("after"), after=unique.delay("u"))  # the same task
    run_all(tiger)
    assert calls() == ["u", "after"]
    assert first.dependencies() == tiger.backend.dependencies(first.id)


@pytest.mark.across_queues(AFTER_ACROSS_QUEUES)
def test_a_dependent_released_keeps_its_priority(tiger: Tiger, clock: ManualClock) -> None:
    first = tiger.enqueue(simple("first").evolve(queue="other"))
    tiger.enqueue(simple("urgent").evolve(priority=5), after=first)
    clock.advance(1)
    tiger.enqueue(simple("plain"))
    run_worker(tiger, queues=["other"])
    run_all(tiger)
    assert calls() == ["first", "urgent", "plain"]


def test_after_takes_stored_tasks_only(tiger: Tiger) -> None:
    with pytest.raises(ValueError, match="is not stored"):
        tiger.enqueue(simple("b"), after=Task.from_spec(tiger, simple("a")))
    with pytest.raises(TypeError, match="after= takes Task handles"):
        tiger.enqueue(simple("b"), after=["an id"])  # type: ignore[arg-type, list-item]


def test_in_eager_mode_the_task_after_runs_after(backend: RedisBackend) -> None:
    tiger = Tiger(backend, Config(always_eager=True, allowed_task_modules=("tests",)))
    tiger.chain([simple("a"), simple("b")])
    tiger.enqueue(simple("c"), after=tiger.enqueue(simple("d")))
    assert calls() == ["a", "b", "d", "c"]


def test_the_wait_is_a_scheduled_score_no_pass_finds_due(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    first = tiger.enqueue(simple("first"), when=timedelta(days=365 * 50))
    second = tiger.enqueue(simple("second"), after=first)
    stored = backend.get_task("default", TaskState.SCHEDULED, second.id, 0)
    assert stored is not None and stored.score == WAITING_SCORE
    clock.advance(timedelta(days=365 * 60))
    run_all(tiger)
    assert calls() == ["first", "second"]


def test_completion_without_dependents_writes_no_dependency_keys(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    task = tiger.enqueue(simple("x"))
    backend.claim("default", clock.now(), 1)
    backend.complete(Completion("default", (task.id,)), clock.now())
    assert stored_keys(backend) == []


@pytest.mark.across_queues(AFTER_ACROSS_QUEUES)
@pytest.mark.parametrize("outcome", ["succeeds", "fails"])
def test_a_dependent_whose_queue_keys_hold_another_type_is_left_waiting(
    tiger: Tiger, backend: RedisBackend, outcome: str
) -> None:
    first = tiger.enqueue((simple if outcome == "succeeds" else failing)(outcome))
    second = tiger.enqueue(simple("second").evolve(queue="q2"), after=first)
    planted = layout(backend).state(
        TaskState.QUEUED if outcome == "succeeds" else TaskState.ERROR, "q2"
    )
    backend.client.set(planted, "planted")
    run_worker(tiger, queues=["default"])  # the completion or failure of the first stands
    assert calls() == [outcome]
    state = TaskState.QUEUED if outcome == "succeeds" else TaskState.ERROR
    assert tiger.backend.queue_sizes(["default"])["default"][state] == (state is TaskState.ERROR)
    assert Task.from_id(tiger, "q2", TaskState.SCHEDULED, second.id).waiting
    assert backend.client.get(planted) == "planted"


def test_per_queue_a_task_waits_only_for_tasks_of_its_own_queue(backend: RedisBackend) -> None:
    """The per-queue cluster layout keeps each queue in a slot of its own (docs/scaling.md): a
    wait across queues is refused before anything is stored, a chain's too; one within a queue
    works. (Config(cluster=True) lays keys out per queue on every backend.)"""
    tiger = Tiger(backend, Config(cluster=True, allowed_task_modules=("tests",)))
    tiger.adopt(tasks.tiger)
    first = tiger.enqueue(simple("first").evolve(queue="other"))
    with pytest.raises(ValueError, match="cannot wait for a task of queue 'other'"):
        tiger.enqueue(simple("second"), after=first)
    with pytest.raises(ValueError, match="cannot wait for a task of queue 'q1'"):
        tiger.chain([simple("a").evolve(queue="q1"), simple("b").evolve(queue="q2")])
    assert tiger.get_queue_stats() == {"other": {TaskState.QUEUED: 1}}
    second = tiger.enqueue(simple("second").evolve(queue="other"), after=first)
    assert second.waiting
    run_all(tiger)
    assert calls() == ["first", "second"]
