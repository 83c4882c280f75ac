"""Batch tasks as TaskTiger runs them, on FakeBackend and real Redis: the tasks of one batch
function claimed together are one batch (other functions' tasks between them or not),
lock_key and unique_key work, and a batch mixing runner classes fails. Tasks defined here are
importable as ``tests.test_batches:<name>``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.keys import keys_matching, layout
from tests.option_tasks import RecordingExecutor, stored
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.runner import BatchCall, DefaultRunner
from typedtiger.serialization import unique_task_id

#: What the tasks below were called with.
CALLS: list[tuple[str, list[str]]] = []

btiger = Tiger()
QUEUE = "bq"


@btiger.task(batch=True, queue=QUEUE)
def collect(calls: list[BatchCall]) -> None:
    CALLS.append(("collect", [str(call["args"][0]) for call in calls]))


def single(label: str) -> None:
    CALLS.append(("single", [label]))


@btiger.task(batch=True, queue=QUEUE, lock_key=["account"])
def per_account(calls: list[BatchCall]) -> None:
    CALLS.append(("per_account", sorted(str(call["kwargs"]["note"]) for call in calls)))


@btiger.task(batch=True, queue=QUEUE, unique_key=["account"])
def latest_per_account(calls: list[BatchCall]) -> None:
    CALLS.append(("latest", sorted(str(call["kwargs"]["note"]) for call in calls)))


class OtherRunner(DefaultRunner):
    """A runner some tasks of a batch name."""


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


@pytest.fixture
def btiger_on(backend: RedisBackend) -> Tiger:
    # single runs by name, unregistered
    tiger = Tiger(backend, Config(batch_queues={QUEUE: 10}, allowed_task_modules=("tests",)))
    tiger.adopt(btiger)
    return tiger


def test_a_batch_functions_tasks_claimed_together_run_as_one_batch(
    btiger_on: Tiger, clock: ManualClock
) -> None:
    # Claimed in this order: b1, n5, b2 -> [b1, b2], then n5 (TaskTiger groups by function).
    for spec in (collect.spec("b1"), TaskSpec.of(single, "n5").evolve(queue=QUEUE)):
        btiger_on.enqueue(spec)
        clock.advance(1)
    btiger_on.enqueue(collect.spec("b2"))
    executor = RecordingExecutor()

    btiger_on.run_worker(executor=executor, once=True)

    assert [[task.args[0] for task in job.tasks] for job in executor.jobs] == [["b1", "b2"], ["n5"]]
    assert CALLS == [("collect", ["b1", "b2"]), ("single", ["n5"])]


def test_lock_key_of_a_batch_function(
    btiger_on: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    for account, note in ((1, "a"), (1, "b"), (2, "c")):
        btiger_on.enqueue(per_account.spec(account=account, note=note))
    # Another job holds account 2's lock.
    busy = unique_task_id("tests.test_batches:per_account", None, {"account": 2})
    # (from another queue; per queue a lock covers one queue's tasks: from this one)
    elsewhere = QUEUE if layout(backend).sharded else "elsewhere"
    backend.acquire_locks(elsewhere, {"holder": busy}, clock.now(), 60, clock.now())

    btiger_on.run_worker(executor=RecordingExecutor(), once=True)

    # Account 1's lock is taken once for both of its tasks; account 2's task waits.
    assert CALLS == [("per_account", ["a", "b"])]
    assert btiger_on.get_queue_sizes(QUEUE) == {"queued": 0, "active": 0, "scheduled": 1}
    clock.advance(61)
    btiger_on.run_worker(executor=RecordingExecutor(), once=True)
    assert CALLS[-1] == ("per_account", ["c"])
    assert keys_matching(backend, layout(backend).lock(elsewhere, "*")) == []


def test_unique_key_of_a_batch_function(btiger_on: Tiger) -> None:
    first = btiger_on.enqueue(latest_per_account.spec(account=1, note="first"))
    last = btiger_on.enqueue(latest_per_account.spec(account=1, note="last"))
    other = btiger_on.enqueue(latest_per_account.spec(account=2, note="other"))
    per_call = btiger_on.enqueue(collect.spec("x", n=1).evolve(unique_key=["n"]))
    assert btiger_on.enqueue(collect.spec("y", n=1).evolve(unique_key=["n"])).id == per_call.id
    assert first.id == last.id != other.id
    # TaskTiger-style, untyped: the keys name the call's keyword arguments too.
    untyped = btiger_on.delay(collect, args=["z"], kwargs={"n": 1}, unique_key=["n"])
    assert untyped.id == per_call.id

    btiger_on.run_worker(executor=RecordingExecutor(), once=True)

    assert sorted(CALLS) == [("collect", ["z"]), ("latest", ["last", "other"])]


def test_batch_whose_tasks_name_different_runner_classes_fails(btiger_on: Tiger) -> None:
    plain = btiger_on.enqueue(collect.spec("plain"))
    other = btiger_on.enqueue(collect.spec("other").evolve(runner_class=OtherRunner))
    executor = RecordingExecutor()

    btiger_on.run_worker(executor=executor, once=True)

    assert executor.jobs == [] and CALLS == []
    for task in (plain, other):
        assert stored(btiger_on, task.id) == [(QUEUE, TaskState.ERROR)]
        errored = Task.from_id(btiger_on, QUEUE, TaskState.ERROR, task.id, load_executions=1)
        (record,) = errored.executions
        assert record.exception_name == "builtins:ValueError"
        assert "different runner classes" in (record.exception or "")
        assert "tests.test_batches:OtherRunner" in (record.exception or "")
