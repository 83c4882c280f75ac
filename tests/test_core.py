"""Core life cycle, on FakeBackend and real Redis: enqueue, claim, run, done or error."""

from __future__ import annotations

import json
import re
import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests import tasks
from tests.conftest import REDIS_URL, run_worker
from tests.keys import keys_matching, stored_keys, task_keys
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.exceptions import ArgumentError, TypedTigerError


def test_enqueue_then_run_to_done(tiger: Tiger, backend: RedisBackend) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.add, 1, 2))
    assert task.state is TaskState.QUEUED
    assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 1
    assert json.loads(backend.client.get(backend._keys.task(task.queue, task.id)) or "") == {
        "id": task.id,
        "func": "tests.tasks:add",
        "args": [1, 2],
        "time_last_queued": pytest.approx(tiger.clock.now()),
        "scheduled_at": pytest.approx(tiger.clock.now()),
        "queue": "default",  # (typedtiger's: how tiger.status finds the task by its id)
    }

    run_worker(tiger)

    assert tasks.CALLS == [("add", 1, 2)]
    assert tiger.get_queue_stats() == {}
    assert task_keys(backend) == []


def test_failure_lands_in_error_with_an_execution_record(tiger: Tiger, clock: ManualClock) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.failing, "kaput"))
    run_worker(tiger)

    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=5)
    (record,) = errored.executions
    assert record.exception_name == "builtins:ValueError"
    assert record.exception == "kaput"
    assert record.success is False
    assert record.time_started == clock.now() and record.time_failed == clock.now()
    assert record.traceback is not None and "ValueError: kaput" in record.traceback
    assert record.host
    assert errored.n_executions() == 1


def test_scheduled_task_waits_for_the_clock(tiger: Tiger, clock: ManualClock) -> None:
    relative = tiger.enqueue(TaskSpec.of(tasks.simple, "later"), when=timedelta(hours=1))
    absolute_naive = datetime.fromtimestamp(clock.now() + 7200, UTC).replace(tzinfo=None)
    tiger.enqueue(TaskSpec.of(tasks.simple, "much later"), when=absolute_naive)
    assert relative.state is TaskState.SCHEDULED
    assert relative.scheduled_at == datetime.fromtimestamp(clock.now() + 3600, UTC)

    run_worker(tiger)
    assert tasks.CALLS == []

    clock.advance(timedelta(hours=1))
    run_worker(tiger)
    assert tasks.CALLS == [("simple", "later")]

    clock.advance(3600)
    run_worker(tiger)
    assert tasks.CALLS == [("simple", "later"), ("simple", "much later")]


def test_past_when_queues_immediately(tiger: Tiger, clock: ManualClock) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple), when=datetime(2000, 1, 1, tzinfo=UTC))
    assert task.state is TaskState.QUEUED


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((object(),), {}, "argument 0 is a builtins.object"),
        ((), {"value": {1: "x"}}, "keyword argument 'value' has the key 1"),
        ((float("nan"),), {}, "argument 0 is nan"),
        (([1, float("inf")],), {}, r"argument 0\[1\] is inf"),
    ],
)
def test_arguments_json_cannot_carry_are_refused_and_nothing_is_written(
    tiger: Tiger,
    backend: RedisBackend,
    args: tuple[object, ...],
    kwargs: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ArgumentError, match=message):
        tiger.enqueue(TaskSpec.of(tasks.simple, *args, **kwargs))
    assert keys_matching(backend, "*") == []


def test_functions_a_worker_cannot_import_are_refused_at_spec_time() -> None:
    def nested() -> None: ...

    with pytest.raises(ValueError, match="lambda"):
        TaskSpec.of(lambda: None)
    with pytest.raises(ValueError, match="inside a function"):
        TaskSpec.of(nested)
    main_function = types.FunctionType(nested.__code__, {"__name__": "__main__"}, "main_function")
    with pytest.raises(ValueError, match="__main__"):
        TaskSpec.of(main_function)


def test_call_arguments_are_checked_against_the_signature() -> None:
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        TaskSpec.of(tasks.add, 1)  # type: ignore[call-arg]


def test_current_task_is_visible_inside_the_task(tiger: Tiger) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.record_current))
    run_worker(tiger)
    assert [("current", task.id, "tests.tasks:record_current")] == tasks.CALLS
    with pytest.raises(RuntimeError, match="no typedtiger task is running"):
        _ = tiger.current_task


def test_unimportable_function_goes_to_error_and_the_worker_goes_on(
    tiger: Tiger, backend: RedisBackend
) -> None:
    ghost = tiger.enqueue(TaskSpec.of(tasks.simple, "x"))
    payload = json.loads(backend.client.get(backend._keys.task(ghost.queue, ghost.id)) or "")
    payload["func"] = "tests.no_such_module:gone"
    backend.client.set(backend._keys.task(ghost.queue, ghost.id), json.dumps(payload))
    tiger.enqueue(TaskSpec.of(tasks.simple, "after"))

    run_worker(tiger)

    assert tasks.CALLS == [("simple", "after")]
    errored = Task.from_id(tiger, "default", TaskState.ERROR, ghost.id, load_executions=1)
    assert errored.executions[0].exception_name == "typedtiger.exceptions:TaskImportError"
    assert "tests.no_such_module" in (errored.executions[0].exception or "")


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON list"),
        ('{"id": "ID"}', "required field missing @ task payload.func"),
        (None, "payload of task ID is missing"),
    ],
)
def test_corrupt_payloads_are_quarantined_in_error(
    tiger: Tiger, backend: RedisBackend, payload: str | None, error: str
) -> None:
    broken = tiger.enqueue(TaskSpec.of(tasks.simple, "broken"))
    if payload is None:
        backend.client.delete(backend._keys.task(broken.queue, broken.id))
    else:
        backend.client.set(
            backend._keys.task(broken.queue, broken.id), payload.replace("ID", broken.id)
        )
    tiger.enqueue(TaskSpec.of(tasks.simple, "fine"))

    run_worker(tiger)

    assert tasks.CALLS == [("simple", "fine")]
    total, (listed,) = Task.tasks_from_queue(tiger, "default", TaskState.ERROR)
    assert total == 1 and listed.id == broken.id
    if payload is not None:
        assert listed.broken is not None
        stored = backend.client.lrange(
            backend._keys.task(broken.queue, broken.id) + ":executions", 0, -1
        )
        assert error.replace("ID", broken.id) in json.loads(stored[0])["exception"]
    listed.delete()
    assert stored_keys(backend) == []


def test_enqueue_many_stores_every_task(tiger: Tiger) -> None:
    created = tiger.enqueue_many([TaskSpec.of(tasks.simple, n) for n in range(5)])
    assert len({task.id for task in created}) == 5
    run_worker(tiger)
    assert sorted(call[1] for call in tasks.CALLS) == [0, 1, 2, 3, 4]  # type: ignore[type-var]


def test_enqueue_many_handles_match_storage_exactly(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    clock.advance(0.123456789)  # a time whose every digit must survive the round trip
    already = tiger.enqueue(TaskSpec.of(tasks.simple, "u").evolve(unique=True))
    clock.advance(1.5)
    later = datetime.fromtimestamp(clock.now() + 3600.987654321, UTC)
    specs = [
        TaskSpec.of(tasks.simple, 1),
        TaskSpec.of(tasks.simple, 2).evolve(queue="other"),
        TaskSpec.of(tasks.simple, 3),
        TaskSpec.of(tasks.simple, "u").evolve(unique=True),  # equal to one already stored
        TaskSpec.of(tasks.simple, "v").evolve(unique=True),
        TaskSpec.of(tasks.simple, "v").evolve(unique=True),  # equal to one earlier in the batch
    ]
    created = tiger.enqueue_many(specs) + tiger.enqueue_many(specs[:2], when=later)

    expected_states = [TaskState.QUEUED] * 6 + [TaskState.SCHEDULED] * 2
    assert [task.state for task in created] == expected_states
    assert created[3].id == already.id and created[3].ts == already.ts
    assert created[5].id == created[4].id
    assert created[6].ts == later
    for task in created:
        assert task.state is not None
        stored = backend.client.zscore(backend._keys.state(task.state, task.queue), task.id)
        assert stored is not None and task.ts == datetime.fromtimestamp(stored, UTC), task
    assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 4


def test_a_script_the_server_does_not_know_is_loaded(
    tiger: Tiger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (SCRIPT FLUSH would be server-wide: an unknown sha gets the same NOSCRIPT reply)
    backend = tiger.backend
    assert isinstance(backend, RedisBackend)
    monkeypatch.setattr(backend._scripts["enqueue"], "sha", "0" * 40)
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    tiger.enqueue(TaskSpec.of(tasks.simple, 2))
    assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 2


class _DroppingConnection(redis.Connection):
    """Loses the next reply (and its socket) while ``drops`` is positive."""

    drops = 0

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = super().read_response(*args, **kwargs)
        if type(self).drops > 0:
            type(self).drops -= 1
            self.disconnect()
            raise redis.exceptions.ConnectionError("connection lost (test)")
        return reply


def test_a_connection_lost_before_the_reply_is_replaced(redis_db: redis.Redis[str]) -> None:
    pool = redis.ConnectionPool.from_url(  # (a pool given to a client brings its own retry)
        REDIS_URL,
        decode_responses=True,
        connection_class=_DroppingConnection,
        retry=Retry(NoBackoff(), 1),
    )
    client: redis.Redis[str] = redis.Redis(connection_pool=pool, decode_responses=True)
    tiger = Tiger(RedisBackend(client), Config())
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    _DroppingConnection.drops = 1

    tiger.enqueue(TaskSpec.of(tasks.simple, 2))  # the script ran, its reply was lost: retried

    assert _DroppingConnection.drops == 0
    # The retry sent the same task id: stored once.
    assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 2
    client.close()


def test_decorated_task_delay_and_spec(tiger: Tiger) -> None:
    spec = tasks.Holder.static_task.spec(3)
    assert spec.queue == "static"
    tiger.enqueue(spec)
    run_worker(tiger)
    assert tasks.CALLS == [("static", 3)]


def test_a_script_refuses_a_key_its_caller_did_not_declare(
    tiger: Tiger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each script names its keys only from KEYS (Redis Cluster routes and checks by them): a
    # key missing there is a bug, reported as such, never as bad data or an outage.
    backend = tiger.backend
    assert isinstance(backend, RedisBackend)
    task = tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    monkeypatch.setattr(backend._keys, "queue_keys", lambda queue: [])
    with pytest.raises(
        TypedTigerError,
        match=re.escape(f"UNDECLARED key {backend._keys.state(TaskState.QUEUED, 'default')}"),
    ) as raised:
        backend.move("default", TaskState.QUEUED, task.id, TaskState.ERROR, 1.0, False)
    assert type(raised.value) is TypedTigerError
    assert tiger.get_queue_sizes("default")[TaskState.QUEUED] == 1  # nothing was written
