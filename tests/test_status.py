"""Status by id alone (``tiger.status``, ``Task.from_id(tiger, id)``), on both backends."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests import result_tasks, tasks
from tests.conftest import run_worker
from tests.keys import task_key
from typedtiger import Config, Status, TaskSpec, TaskState, TaskStatus, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.exceptions import TaskNotFound
from typedtiger.task import Task


@pytest.fixture
def tiger(backend: RedisBackend) -> Tiger:
    """The Tiger the result tasks enqueue through, on each backend (the tests tasks adopted)."""
    result_tasks.tiger.init(backend=backend, config=Config(allowed_task_modules=("tests",)))
    result_tasks.tiger.adopt(tasks.tiger)
    return result_tasks.tiger


def status_of(tiger: Tiger, task: Task) -> tuple[Status, str | None]:
    found = tiger.status(task.id)
    assert found.task_id == task.id
    return found.status, found.queue


def test_every_state_is_found_by_the_id_alone(tiger: Tiger, clock: ManualClock) -> None:
    queued = result_tasks.later.delay(1)
    scheduled = result_tasks.later.delay_at(timedelta(hours=1), 2)
    assert status_of(tiger, queued) == (Status.QUEUED, "later")
    assert status_of(tiger, scheduled) == (Status.SCHEDULED, "later")

    failed = tiger.enqueue(TaskSpec.of(tasks.failing, "no"))
    run_worker(tiger, queues=["default"])
    assert status_of(tiger, failed) == (Status.ERROR, "default")
    assert tiger.status(failed.id).failure is None  # (it keeps no result)

    assert status_of(tiger, result_tasks.later.delay(3)) == (Status.QUEUED, "later")
    run_worker(tiger, queues=["later"])
    done = tiger.status(queued.id)
    assert (done.status, done.queue, done.result) == (Status.SUCCEEDED, None, 1)
    clock.advance(61)
    assert tiger.status(queued.id).status is Status.UNKNOWN  # its result expired
    assert tiger.status("no-such-task") == TaskStatus(task_id="no-such-task", status=Status.UNKNOWN)


def test_an_active_task_and_a_kept_failure(tiger: Tiger) -> None:
    explode = result_tasks.explode.delay("boom")
    backend = tiger.backend
    (claimed,) = backend.claim("default", tiger.clock.now(), 1)
    assert claimed.id == explode.id
    assert status_of(tiger, explode) == (Status.ACTIVE, "default")

    quiet = result_tasks.give_up_quietly.delay()
    run_worker(tiger, queues=["default"])
    gone = tiger.status(quiet.id)  # removed from storage, its failure kept as its result
    assert (gone.status, gone.queue) == (Status.ERROR, None)
    assert gone.failure is not None and "RetryException" in gone.failure.exception_name


def test_task_from_id_finds_a_task_by_its_id_alone(tiger: Tiger) -> None:
    task = result_tasks.later.delay_at(timedelta(minutes=5), 4)
    found = Task.from_id(tiger, task.id)
    assert (found.id, found.queue, found.state) == (task.id, "later", TaskState.SCHEDULED)
    assert found.args == (4,)
    assert Task.from_id(tiger, task.id, load_executions=1).executions == ()
    task.cancel()
    with pytest.raises(TaskNotFound, match="is not stored"):
        Task.from_id(tiger, task.id)


def test_a_payload_without_its_queue_is_looked_for_in_every_queue(tiger: Tiger) -> None:
    """As a TaskTiger client writes it: no "queue" field."""
    task = result_tasks.later.delay(5)
    assert isinstance(tiger.backend, RedisBackend)
    client = tiger.backend.client
    key = task_key(tiger, "later", task.id)
    data = json.loads(client.get(key) or "{}")
    assert data.pop("queue") == "later"
    client.set(key, json.dumps(data))
    assert status_of(tiger, task) == (Status.QUEUED, "later")
    client.set(key, "not json")  # a broken payload: found all the same
    assert status_of(tiger, task) == (Status.QUEUED, "later")


def test_a_queue_named_by_a_keyword_argument_is_not_the_tasks(tiger: Tiger) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "x").evolve(queue="real"))
    spoof = tiger.enqueue(
        TaskSpec(func="tests.tasks:simple", kwargs={"queue": "fake"}).evolve(queue="real")
    )
    assert status_of(tiger, task) == (Status.QUEUED, "real")
    assert status_of(tiger, spoof) == (Status.QUEUED, "real")
