"""Poisoned task data never stops a worker and never loses a task (issue 17).

Malformed payloads and bookkeeping keys are written straight into storage, as a bug, an old
client or an operator could leave them. For each, on both backends: the worker returns
normally, the task is in the error state with a ``PayloadError`` execution record naming what
is wrong, and good tasks queued before and after it run. Enqueue refuses the same values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

from tests import chaos_tasks, tasks, worker_tasks
from tests.conftest import run_worker
from tests.keys import file_task, layout, task_key, task_keys
from tests.worker_main import FAST
from typedtiger import TaskSpec, TaskState, Tiger
from typedtiger.backends.base import EnqueueMode, Failure, NewTask
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.exceptions import ArgumentError
from typedtiger.executor import ForkExecutor
from typedtiger.serialization import ExecutionRecord, decode_execution, encode_execution

QUEUE = "default"
ID = "0123456789abcdef" * 4
FUNC = "tests.tasks:simple"
PAYLOAD_ERROR = "typedtiger.exceptions:PayloadError"


def payload(**fields: object) -> dict[str, object]:
    return {"id": ID, "func": FUNC, "args": [], **fields}


def text(**fields: object) -> str:
    return json.dumps(payload(**fields))


def with_raw(field: str, raw: str) -> str:
    """The payload with ``field`` set to JSON text ``raw`` (what json.dumps would not write)."""
    return text(**{field: "RAW"}).replace('"RAW"', raw)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def utf8(raw: bytes) -> bytes:
    """The payload with ``raw`` bytes inside its first argument."""
    return text(args=["<>"]).encode().replace(b"<>", b"a" + raw + b"z")


#: Keys to plant beside the payload: suffix of the task key -> how to write it.
Keys = dict[str, Callable[["redis.Redis[str]", str], object]]
#: name -> (payload text or bytes, None for none; keys to plant; what the PayloadError says)
CASES: dict[str, tuple[str | bytes | None, Keys, str]] = {
    # Non-finite numbers, wherever they are.
    "hard_timeout NaN": (with_raw("hard_timeout", "NaN"), {}, "payload.hard_timeout is nan"),
    "hard_timeout Infinity": (with_raw("hard_timeout", "Infinity"), {}, "hard_timeout is inf"),
    "hard_timeout -Infinity": (with_raw("hard_timeout", "-Infinity"), {}, "hard_timeout is -inf"),
    "hard_timeout 1e999": (with_raw("hard_timeout", "1e999"), {}, "hard_timeout is inf"),
    "retry delay NaN": (
        with_raw("retry_method", '["tasktiger.retry:_fixed", [NaN, 2]]'),
        {},
        "payload.retry_method[1][0] is nan",
    ),
    "retry delay Infinity": (
        with_raw("retry_method", '["tasktiger.retry:_exponential", [1, Infinity, 3]]'),
        {},
        "payload.retry_method[1][1] is inf",
    ),
    "time_last_queued NaN": (
        with_raw("time_last_queued", "NaN"),
        {},
        "payload.time_last_queued is nan",
    ),
    "time_last_queued Infinity": (
        with_raw("time_last_queued", "Infinity"),
        {},
        "time_last_queued is inf",
    ),
    "scheduled_at -Infinity": (with_raw("scheduled_at", "-Infinity"), {}, "scheduled_at is -inf"),
    "NaN in an argument": (with_raw("args", '[[1, {"x": NaN}]]'), {}, "args[0][1]['x'] is nan"),
    "Infinity in a keyword argument": (
        with_raw("kwargs", '{"value": Infinity}'),
        {},
        "kwargs['value'] is inf",
    ),
    "NaN in a field typedtiger does not read": (with_raw("data", "NaN"), {}, "payload.data is nan"),
    # Numbers out of range.
    "hard_timeout 2**63": (text(hard_timeout=2**63), {}, "hard_timeout is the integer"),
    "hard_timeout 1e300": (text(hard_timeout=1e300), {}, "not > 0 and <= 31536000"),
    "hard_timeout 0": (text(hard_timeout=0), {}, "hard_timeout is 0.0, not > 0"),
    "hard_timeout -5": (text(hard_timeout=-5), {}, "hard_timeout is -5"),
    "retry delay -1": (
        text(retry_method=["tasktiger.retry:_fixed", [-1, 2]]),
        {},
        "delay must be >= 0",
    ),
    "retry count 2**70": (
        text(retry_method=["tasktiger.retry:_fixed", [1, 2**70]]),
        {},
        "retry_method[1][1] is the integer",
    ),
    "an argument 2**63": (
        text(args=[2**63]),
        {},
        "payload.args[0] is the integer 9223372036854775808",
    ),
    "a keyword argument -2**63-1": (
        text(kwargs={"n": -(2**63) - 1}),
        {},
        "kwargs['n'] is the integer -9223372036854775809",
    ),
    "an integer of 5,000 digits": (with_raw("args", f"[{'9' * 5000}]"), {}, "not valid JSON"),
    "max_stored_executions 2**64": (
        text(max_stored_executions=2**64),
        {},
        "max_stored_executions is the integer",
    ),
    "max_stored_executions -1": (text(max_stored_executions=-1), {}, "max_stored_executions is -1"),
    "max_queue_size 0": (text(max_queue_size=0), {}, "max_queue_size is 0, not >= 1"),
    "time_last_queued 1e300": (
        text(time_last_queued=1e300),
        {},
        "time_last_queued is 1e+300, not a time (0 to 253402300799, the year 9999)",
    ),
    "scheduled_at -1": (text(scheduled_at=-1), {}, "scheduled_at is -1.0, not a time"),
    # Nesting.
    "arguments nested 5,000 deep": (
        with_raw("args", f"[{nested(5000)}]"),
        {},
        "nested too deeply",
    ),
    "an argument nested 101 deep": (
        with_raw("args", f"[{nested(101)}]"),
        {},
        "args[0]" + "[0]" * 100 + " is nested more than 100 levels deep",
    ),
    "a keyword argument nested 150 deep": (
        with_raw("kwargs", f'{{"deep": {nested(150)}}}'),
        {},
        "kwargs['deep']" + "[0]" * 100 + " is nested more than 100 levels deep",
    ),
    # Text JSON decodes but UTF-8 cannot carry.
    "a lone surrogate in an argument": (
        with_raw("args", '["a\\ud800"]'),
        {},
        "args[0] holds the lone surrogate '\\ud800' at index 1",
    ),
    "a lone surrogate in a keyword name": (
        with_raw("kwargs", '{"\\udc00": 1}'),
        {},
        "payload.kwargs has a key that holds the lone surrogate",
    ),
    "a lone surrogate in func": (with_raw("func", '"tests.tasks:\\udfff"'), {}, "payload.func"),
    # Bytes that are not UTF-8 (read undecoded by the claim: the reply would not decode).
    "invalid UTF-8 (0xff)": (
        utf8(b"\xff"),
        {},
        "payload is not valid UTF-8 (byte 0xff at character 116)",
    ),
    "a truncated UTF-8 sequence": (
        utf8(b"\xe2\x82"),
        {},
        "payload is not valid UTF-8 (byte 0xe2 at character 116)",
    ),
    "an overlong UTF-8 encoding": (
        utf8(b"\xc0\xaf"),
        {},
        "payload is not valid UTF-8 (byte 0xc0 at character 116)",
    ),
    "a UTF-8-encoded surrogate": (
        utf8(b"\xed\xa0\x80"),
        {},
        "payload is not valid UTF-8 (byte 0xed at character 116)",
    ),
    "a code point past U+10FFFF": (
        utf8(b"\xf4\x90\x80\x80"),
        {},
        "payload is not valid UTF-8 (byte 0xf4 at character 116)",
    ),
    # Keys of the task other than its payload.
    "executions_count 'abc'": (
        text(),
        {":executions_count": lambda c, k: c.set(k, "abc")},
        'executions_count holds "abc", not a count',
    ),
    "executions_count '1.5'": (
        text(),
        {":executions_count": lambda c, k: c.set(k, "1.5")},
        'executions_count holds "1.5"',
    ),
    "executions_count past 2**63": (
        text(),
        {":executions_count": lambda c, k: c.set(k, str(2**64))},
        'executions_count holds "18446744073709551616"',
    ),
    "executions_count of bytes": (
        text(),
        {":executions_count": lambda c, k: c.execute_command("SET", k, b'\x00"\xff')},
        'executions_count holds "\\x00\\x22\\xff"',
    ),
    "executions_count a list": (
        text(),
        {":executions_count": lambda c, k: c.rpush(k, "1")},
        "executions_count is a Redis list, not a string",
    ),
    "executions a hash": (
        text(),
        {":executions": lambda c, k: c.hset(k, "a", "b")},
        "executions is a Redis hash, not a list",
    ),
    "the task key a list": (None, {"": lambda c, k: c.rpush(k, "x")}, "task key is a Redis list"),
    "the task key a set": (None, {"": lambda c, k: c.sadd(k, "x")}, "task key is a Redis set"),
    # Shapes.
    "another task's id": (text(id="f" * 64), {}, "names another id"),
    "a retry_method of one item": (text(retry_method=["x"]), {}, "retry_method must be"),
}


def plant(backend: RedisBackend, data: str | bytes | None, keys: Keys, task_id: str = ID) -> None:
    """File task ``task_id`` as queued with ``data`` as its payload (None: no payload key)."""
    if data is not None:
        # (bytes go as they are)
        backend.client.execute_command("SET", task_key(backend, QUEUE, task_id), data)
    for suffix, write in keys.items():
        write(backend.client, task_key(backend, QUEUE, task_id, suffix))
    file_task(backend, TaskState.QUEUED, QUEUE, task_id)


def records(backend: RedisBackend, task_id: str = ID) -> list[ExecutionRecord]:
    raw = backend.client.lrange(task_key(backend, QUEUE, task_id, ":executions"), 0, -1)
    return [decode_execution(item) for item in raw]


@pytest.mark.parametrize("case", list(CASES))
def test_a_poisoned_task_is_quarantined_and_the_worker_goes_on(
    tiger: Tiger, backend: RedisBackend, case: str
) -> None:
    data, keys, reason = CASES[case]
    tiger.enqueue(TaskSpec.of(tasks.simple, "before"))
    plant(backend, data, keys)
    tiger.enqueue(TaskSpec.of(tasks.simple, "after"))

    run_worker(tiger)
    run_worker(tiger)  # nothing left to do: no loop, no second record

    assert sorted(tasks.CALLS) == [("simple", "after"), ("simple", "before")]
    assert backend.find_task(ID) == [(QUEUE, TaskState.ERROR)]
    (record,) = records(backend)
    assert record.exception_name == PAYLOAD_ERROR
    assert record.exception is not None and reason in record.exception
    assert tiger.get_queue_sizes(QUEUE, with_errors=True)[TaskState.ERROR] == 1
    assert tiger.get_total_queue_size(QUEUE) == 0


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(payload(args=["é ✓ 😀"]), ensure_ascii=False).encode(),
        json.dumps(payload(args=["é ✓ 😀"])),  # escaped: \ud83d\ude00 is a valid pair
        with_raw("args", f"[[[{2**63 - 1}, {-(2**63)}], {nested(99)}]]"),
        text(
            hard_timeout=365 * 24 * 3600,
            max_stored_executions=2**31 - 1,
            time_last_queued=253402300799,
        ),
    ],
    ids=["raw UTF-8", "escaped surrogate pair", "64-bit integers, 100 levels", "largest numbers"],
)
def test_data_at_the_limits_runs(tiger: Tiger, backend: RedisBackend, data: str | bytes) -> None:
    plant(backend, data, {})
    run_worker(tiger)
    assert len(tasks.CALLS) == 1
    assert tiger.get_queue_stats() == {}


def plant_every_case(tiger: Tiger, backend: RedisBackend) -> None:
    """Every case under its own id, each after a good task."""
    for number, (original, keys, _) in enumerate(CASES.values()):
        task_id = f"{number:064x}"
        tiger.enqueue(TaskSpec.of(tasks.simple, number))
        data = original
        if isinstance(original, bytes):
            data = original.replace(ID.encode(), task_id.encode())
        elif isinstance(original, str):
            data = original.replace(ID, task_id)
        plant(backend, data, keys, task_id)


ALL_IN_ERROR = {
    TaskState.QUEUED: 0, TaskState.ACTIVE: 0, TaskState.SCHEDULED: 0, TaskState.ERROR: len(CASES)
}  # fmt: skip


def test_every_poisoned_task_at_once_beside_good_ones(tiger: Tiger, backend: RedisBackend) -> None:
    plant_every_case(tiger, backend)
    run_worker(tiger)
    assert len(tasks.CALLS) == len(CASES)
    assert tiger.get_queue_sizes(QUEUE, with_errors=True) == ALL_IN_ERROR


@pytest.mark.redis
def test_every_poisoned_task_at_once_with_forked_children(
    redis_db: redis.Redis[str], tmp_path: Path
) -> None:
    """What a production worker does: decoding happens before anything is forked."""
    backend = RedisBackend(redis_db)
    tiger = Tiger(backend, FAST)
    plant_every_case(tiger, backend)
    ledger = tmp_path / "ledger"
    tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger), "last"))

    tiger.run_worker(executor=ForkExecutor(kill_grace=0.3), once=True)

    assert "end last" in ledger.read_text()
    assert tiger.get_queue_sizes(QUEUE, with_errors=True) == ALL_IN_ERROR
    for number in range(len(CASES)):
        names = [record.exception_name for record in records(backend, f"{number:064x}")]
        assert names == [PAYLOAD_ERROR]


# --- the scripts check before they write --------------------------------------------------


def test_a_broken_count_found_by_the_requeue_pass_is_quarantined_not_dropped(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "lost"))
    assert backend.claim(QUEUE, clock.now(), 1)
    backend.client.set(task_key(backend, QUEUE, task.id, ":executions_count"), "abc")
    clock.advance(3600)  # its worker is long gone

    run_worker(tiger)

    assert backend.find_task(task.id) == [(QUEUE, TaskState.ERROR)]
    (record,) = records(backend, task.id)
    assert record.exception_name == PAYLOAD_ERROR
    assert record.exception == 'executions_count holds "abc", not a count'
    count = task_key(backend, QUEUE, task.id, ":executions_count")
    assert backend.client.get(count) == "1"  # recounted


def test_a_losses_key_of_another_type_is_quarantined_by_the_requeue_pass(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "lost"))
    assert backend.claim(QUEUE, clock.now(), 1)
    losses = task_key(backend, QUEUE, task.id, ":worker_losses")
    backend.client.rpush(losses, "1")
    clock.advance(3600)

    run_worker(tiger)

    assert backend.find_task(task.id) == [(QUEUE, TaskState.ERROR)]
    assert not backend.client.exists(losses)


def test_a_failure_recorded_on_a_broken_count_keeps_its_record_and_is_quarantined(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, "x"))
    assert backend.claim(QUEUE, clock.now(), 1)
    count = task_key(backend, QUEUE, task.id, ":executions_count")
    backend.client.hset(task_key(backend, QUEUE, task.id, ":executions"), "a", "b")  # running
    backend.client.set(count, "many")
    failed = ExecutionRecord(time_failed=clock.now(), exception_name="builtins:ValueError")
    failure = Failure(
        execution=encode_execution(failed), to_state=TaskState.SCHEDULED, when=clock.now() + 60
    )

    backend.fail(QUEUE, [task.id], [], failure)

    assert backend.find_task(task.id) == [(QUEUE, TaskState.ERROR)]
    first, second = records(backend, task.id)
    assert first.exception_name == "builtins:ValueError"
    assert second.exception_name == PAYLOAD_ERROR
    assert second.exception == 'executions_count holds "many", not a count'  # (the first found)
    assert backend.client.get(count) == "2"


# --- enqueue refuses what decoding would ----------------------------------------------------


def deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "where", "message"),
    [
        (2**63, "", "is the integer 9223372036854775808, outside 64-bit signed range"),
        (-(2**63) - 1, "", "is the integer -9223372036854775809, outside 64-bit signed range"),
        ([10**5000], r"\[0\]", "is the integer of 16610 bits"),
        ("a\ud800", "", r"holds the lone surrogate '\\ud800' at index 1"),
        ({"\udc00": 1}, "", "has a key that holds the lone surrogate"),
        (deep(101), r"(\[0\]){100}", "is nested more than 100 levels deep"),
        (deep(5000), r"(\[0\]){100}", "is nested more than 100 levels deep"),
    ],
    ids=[
        "2**63",
        "-2**63-1",
        "10**5000",
        "lone surrogate",
        "surrogate key",
        "101 deep",
        "5000 deep",
    ],
)
def test_enqueue_refuses_what_a_worker_would_refuse(
    tiger: Tiger, value: object, where: str, message: str
) -> None:
    with pytest.raises(ArgumentError, match=f"^argument 0{where} {message}"):
        tiger.enqueue(TaskSpec.of(tasks.simple, value))
    with pytest.raises(ArgumentError, match=f"^keyword argument 'value'{where} {message}"):
        tiger.delay(tasks.simple, kwargs={"value": value})
    assert tiger.get_queue_stats() == {}


def test_enqueue_takes_the_limits_themselves(tiger: Tiger) -> None:
    edges: list[Any] = [2**63 - 1, -(2**63), "é 😀"]
    tiger.enqueue(TaskSpec.of(tasks.simple, edges))
    tiger.enqueue(TaskSpec.of(tasks.simple, deep(100)))
    run_worker(tiger)
    assert sorted(tasks.CALLS, key=repr) == sorted(
        [("simple", edges), ("simple", deep(100))], key=repr
    )


def test_the_claim_reads_undecoded_through_redis_pys_own_path_too() -> None:
    """A client with a connection of its own goes through execute_command, which loads the
    script on NOSCRIPT (a fresh server has none)."""
    client = fakeredis.FakeRedis(
        server=fakeredis.FakeServer(), decode_responses=True, single_connection_client=True
    )
    backend = RedisBackend(client, clock=ManualClock())
    plant(backend, utf8(b"\xff"), {})
    good = "b" * 64
    client.set(task_key(backend, QUEUE, good), text(id=good, args=["é"]))
    file_task(backend, TaskState.QUEUED, QUEUE, good, 2.0)

    broken, fine = backend.claim(QUEUE, backend.clock.now(), 10)

    assert broken.payload is not None and "\udcff" in broken.payload  # (surrogateescape)
    assert fine.payload == text(id=good, args=["é"])


@pytest.mark.parametrize(
    ("data", "keys", "existing"),
    [
        (utf8(b"\xff"), {}, "\udcff"),  # (kept as surrogateescape: decoding it says why)
        (None, {"": lambda c, k: c.rpush(k, "x")}, None),
    ],
    ids=["not UTF-8", "a list"],
)
def test_a_periodic_registration_over_a_poisoned_copy_reads_it_as_it_is(
    backend: RedisBackend, data: str | bytes | None, keys: Keys, existing: str | None
) -> None:
    plant(backend, data, keys)
    new = NewTask(id=ID, queue=QUEUE, payload=text(), due=0.0, mode=EnqueueMode.IF_ABSENT)

    (result,) = backend.enqueue([new], backend.clock.now(), publish=False)

    assert result.state is TaskState.QUEUED
    if existing is None:
        assert result.existing_payload is None
    else:
        assert result.existing_payload is not None and existing in result.existing_payload


@pytest.mark.redis
def test_an_exception_message_with_a_lone_surrogate_is_recorded(
    redis_db: redis.Redis[str],
) -> None:
    """Only task data is refused so: a child's outcome and a record are messages."""
    backend = RedisBackend(redis_db)
    tiger = Tiger(backend, FAST)
    task = tiger.enqueue(TaskSpec.of(worker_tasks.fail_on_an_undecodable_name))

    tiger.run_worker(executor=ForkExecutor(kill_grace=0.3), once=True)

    (record,) = records(backend, task.id)
    assert record.exception_name == "builtins:FileNotFoundError"
    assert record.exception == "no such file: caf\udce9"


# --- ids and queue names that are not UTF-8 -------------------------------------------------


BAD_ID = b"\xfe\xff" + b"0" * 62


@pytest.mark.parametrize("state", ["queued", "scheduled", "active"])
def test_a_task_id_that_is_not_utf8_is_quarantined_and_can_be_deleted(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock, state: str
) -> None:
    bad_key = task_key(backend, QUEUE, "").encode() + BAD_ID
    backend.client.execute_command("SET", bad_key, text().encode())
    file_task(backend, TaskState(state), QUEUE, BAD_ID)
    tiger.enqueue(TaskSpec.of(tasks.simple, "good"))
    clock.advance(3600)  # (a scheduled one is due, an active one's worker long gone)

    run_worker(tiger)

    assert tasks.CALLS == [("simple", "good")]
    _total, (listed,) = backend.list_tasks(QUEUE, TaskState.ERROR, 0, 10, 10)
    assert listed.id.encode("utf-8", "surrogateescape") == BAD_ID
    record = decode_execution(listed.executions[-1])
    assert record.exception_name == PAYLOAD_ERROR
    assert record.exception == "the task id is not valid UTF-8"
    assert backend.remove(QUEUE, TaskState.ERROR, listed.id, backend.clock.now())
    assert task_keys(backend) == []


def test_a_queue_name_that_is_not_utf8_is_left_alone(tiger: Tiger, backend: RedisBackend) -> None:
    client, keys = backend.client, layout(backend)
    name = b"\xff".decode("utf-8", "surrogateescape")  # (how the layout names its keys)
    queued = keys.state(TaskState.QUEUED, name).encode("utf-8", "surrogateescape")
    client.sadd(keys.names(TaskState.QUEUED, name).encode("utf-8", "surrogateescape"), b"\xff")
    if keys.sharded:
        client.sadd(keys.registry(), b"\xff")
    client.zadd(queued, {ID: 1.0})
    tiger.enqueue(TaskSpec.of(tasks.simple, "good"))

    run_worker(tiger)

    assert tasks.CALLS == [("simple", "good")]
    assert tiger.get_queue_stats() == {}
    assert backend.find_task(ID) == []
    assert client.zcard(queued) == 1  # (not typedtiger's to serve; kept)
