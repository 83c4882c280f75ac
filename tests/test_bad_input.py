"""No input stops a worker: unimportable functions, corrupt payloads, arguments JSON cannot carry
(or would change), huge arguments, children that die, non-JSON return values, huge log lines,
Redis errors at enqueue.

Workers run in this process (``once=True``) with forked children, on real Redis, with the short
timings of tests/worker_main.py. Broken payloads are written straight into Redis, as a bug or an
old client could leave them.
"""

from __future__ import annotations

import json
import math
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
import structlog.testing

from tests import chaos_tasks, worker_tasks
from tests.conftest import REDIS_URL, throwaway_module
from tests.worker_main import FAST
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger, fixed
from typedtiger.backends.redis import RedisBackend
from typedtiger.exceptions import (
    ArgumentError,
    BackendUnavailable,
    ChildProcessDied,
    JobTimeoutException,
    QueueFullException,
    TypedTigerError,
)
from typedtiger.executor import ForkExecutor, SyncExecutor
from typedtiger.serialization import ExecutionRecord, decode_execution

pytestmark = pytest.mark.redis

QUEUE = "default"


@pytest.fixture
def tiger(redis_db: redis.Redis[str]) -> Tiger:
    return Tiger(RedisBackend(redis_db), FAST)


@pytest.fixture
def patient_client(redis_db: redis.Redis[str]) -> Iterator[redis.Redis[str]]:
    """A client on the test database that waits up to a minute for a reply: a Lua call
    carrying tens of MB can take seconds on a Redis shared with other test runs."""
    client: redis.Redis[str] = redis.Redis.from_url(
        REDIS_URL, decode_responses=True, socket_timeout=60
    )
    yield client
    client.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.txt"


def lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


def fork_worker(tiger: Tiger) -> None:
    """Run a worker with forked children until nothing is due; it must return normally."""
    tiger.run_worker(executor=ForkExecutor(kill_grace=0.3), once=True)


def plant(
    client: redis.Redis[str],
    task_id: str,
    payload: str | None,
    *,
    state: str = "queued",
    score: float | None = None,
) -> None:
    """File ``task_id`` in ``state`` of the default queue with ``payload`` (None: no task key)."""
    if payload is not None:
        client.set(f"t:task:{task_id}", payload)
    client.zadd(
        f"t:{state}:{QUEUE}", {task_id: datetime.now(UTC).timestamp() if score is None else score}
    )
    client.sadd(f"t:{state}", QUEUE)


def payload_json(task_id: str, func: str, *args: object, **fields: object) -> str:
    return json.dumps({"id": task_id, "func": func, "args": list(args), **fields})


def executions(client: redis.Redis[str], task_id: str) -> list[ExecutionRecord]:
    return [decode_execution(text) for text in client.lrange(f"t:task:{task_id}:executions", 0, -1)]


def in_state(client: redis.Redis[str], state: str, task_id: str) -> bool:
    return client.zscore(f"t:{state}:{QUEUE}", task_id) is not None


def new_id() -> str:
    return uuid.uuid4().hex


def normal_task(tiger: Tiger, ledger: Path, item: str = "normal") -> Task:
    return tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger), item))


def finished(ledger: Path, item: str = "normal") -> bool:
    return any(line.split()[:2] == ["end", item] for line in lines(ledger))


# --- unimportable functions ------------------------------------------------------------


UNIMPORTABLE: dict[str, tuple[Callable[[Path], str], str]] = {
    "missing module": (lambda _: "tests.no_such_module_here:func", "cannot import module"),
    "missing attribute": (lambda _: "tests.chaos_tasks:no_such_function", "has no attribute"),
    "module raising on import": (
        lambda folder: throwaway_module(folder, "raise RuntimeError('cannot start')\n") + ":f",
        "cannot start",
    ),
    "module exiting on import": (
        lambda folder: throwaway_module(folder, "import sys\nsys.exit('no config')\n") + ":f",
        "no config",
    ),
}


@pytest.mark.parametrize(
    "case",
    [
        "missing module",
        "missing attribute",
        "module raising on import",
        pytest.param(
            "module exiting on import",
        ),
    ],
)
def test_unimportable_function_fails_once_and_the_worker_goes_on(
    tiger: Tiger, redis_db: redis.Redis[str], ledger: Path, module_dir: Path, case: str
) -> None:
    name_of, expected = UNIMPORTABLE[case]
    name = name_of(module_dir)
    # allowed, so the worker tries to import it: the failure under test is the import itself
    tiger.reconfigure(attrs.evolve(FAST, allowed_task_modules=("tests", name.partition(":")[0])))
    task_id = new_id()
    # Retries configured: an import error is still final, or it would loop.
    plant(
        redis_db,
        task_id,
        payload_json(task_id, name, retry_method=["tasktiger.retry:_fixed", [0, 5]]),
    )
    normal_task(tiger, ledger)

    fork_worker(tiger)

    (record,) = executions(redis_db, task_id)
    assert record.exception_name == "typedtiger.exceptions:TaskImportError"
    assert record.exception is not None and expected in record.exception
    assert in_state(redis_db, "error", task_id)
    assert finished(ledger)
    assert tiger.get_queue_sizes(QUEUE, with_errors=True) == {
        TaskState.QUEUED: 0, TaskState.ACTIVE: 0, TaskState.SCHEDULED: 0, TaskState.ERROR: 1
    }  # fmt: skip


# --- corrupt payloads ------------------------------------------------------------------


CORRUPT = {
    "garbage JSON": ("{this is not json", "not valid JSON"),
    "a JSON list": ('["tests.chaos_tasks:noop", [], {}]', "JSON list"),
    "a missing field": ('{"id": "ID", "args": []}', "func"),
    "a field of the wrong type": (
        '{"id": "ID", "func": "tests.chaos_tasks:noop", "args": 5}',
        "args",
    ),
    "a missing task key": (None, "missing"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_payload_is_quarantined_once_and_logged(
    tiger: Tiger, redis_db: redis.Redis[str], ledger: Path, case: str
) -> None:
    text, expected = CORRUPT[case]
    task_id = new_id()
    plant(redis_db, task_id, None if text is None else text.replace("ID", task_id))
    normal_task(tiger, ledger)

    with structlog.testing.capture_logs() as logs:
        fork_worker(tiger)
        fork_worker(tiger)  # a second pass changes nothing: no crash loop, no retry loop

    assert in_state(redis_db, "error", task_id)
    assert finished(ledger)
    quarantined = [event for event in logs if event.get("task_id") == task_id]
    assert [event["event"] for event in quarantined] == ["broken task quarantined"]
    assert expected in quarantined[0]["error"]
    if text is not None:
        (record,) = executions(redis_db, task_id)
        assert record.exception_name == "typedtiger.exceptions:PayloadError"
        assert record.exception is not None and expected in record.exception
    (listed,) = Task.tasks_from_queue(tiger, QUEUE, TaskState.ERROR)[1]
    assert listed.id == task_id and listed.broken is not None and expected in listed.broken


def test_corrupt_payloads_do_not_block_the_requeue_of_other_expired_tasks(
    tiger: Tiger, redis_db: redis.Redis[str], ledger: Path
) -> None:
    long_ago = datetime.now(UTC).timestamp() - 3600
    broken = [new_id() for _ in range(3)]
    plant(redis_db, broken[0], "{garbage", state="active", score=long_ago)
    plant(redis_db, broken[1], "[1, 2]", state="active", score=long_ago + 1)
    plant(redis_db, broken[2], None, state="active", score=long_ago + 2)
    orphan = normal_task(tiger, ledger, "orphan")  # its worker died an hour ago:
    redis_db.zrem(f"t:queued:{QUEUE}", orphan.id)
    redis_db.srem("t:queued", QUEUE)
    plant(redis_db, orphan.id, None, state="active", score=long_ago + 3)

    fork_worker(tiger)

    assert finished(ledger, "orphan")
    assert all(in_state(redis_db, "error", task_id) for task_id in broken)
    assert tiger.get_queue_sizes(QUEUE, with_errors=True)[TaskState.ERROR] == 3
    assert tiger.get_total_queue_size(QUEUE) == 0


# --- arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, b"bytes", datetime(2024, 1, 1, tzinfo=UTC), Decimal("1.5"), [1, object()]],
    ids=["object", "set", "bytes", "datetime", "Decimal", "nested object"],
)
def test_arguments_json_cannot_carry_are_refused_at_enqueue(
    tiger: Tiger, redis_db: redis.Redis[str], value: object
) -> None:
    with pytest.raises(ArgumentError, match="JSON cannot carry"):
        tiger.enqueue(TaskSpec.of(chaos_tasks.accept, value))
    with pytest.raises(ArgumentError, match="JSON cannot carry"):
        tiger.delay(chaos_tasks.accept, kwargs={"data": value})
    assert redis_db.dbsize() == 0


def test_a_ten_megabyte_argument_works(patient_client: redis.Redis[str], ledger: Path) -> None:
    tiger = Tiger(RedisBackend(patient_client), FAST)
    tiger.enqueue(TaskSpec.of(chaos_tasks.record_size, str(ledger), "x" * 10_000_000))
    fork_worker(tiger)
    assert lines(ledger) == ["size 10000000"]
    assert tiger.get_queue_stats() == {}


@pytest.mark.parametrize("limit", [None, 1_000_000], ids=["default limit", "1 MB limit"])
def test_an_argument_over_max_payload_bytes_is_refused(
    redis_db: redis.Redis[str], ledger: Path, limit: int | None
) -> None:
    config = (
        Config(allowed_task_modules=("tests",))
        if limit is None
        else Config(max_payload_bytes=limit, allowed_task_modules=("tests",))
    )
    tiger = Tiger(RedisBackend(redis_db), config)
    size = config.max_payload_bytes + 1
    with pytest.raises(ArgumentError, match=r"over Config\.max_payload_bytes"):
        tiger.enqueue(TaskSpec.of(chaos_tasks.record_size, str(ledger), "x" * size))
    assert redis_db.dbsize() == 0


def test_args_json_would_change_are_documented_or_refused(
    tiger: Tiger, redis_db: redis.Redis[str], ledger: Path
) -> None:
    # Documented: a tuple travels as a JSON array and arrives as a list.
    task = tiger.enqueue(TaskSpec.of(chaos_tasks.record_type, str(ledger), (1, "a")))
    assert task.args == (str(ledger), [1, "a"])
    fork_worker(tiger)
    assert lines(ledger) == ["type list [1, 'a']"]

    # Refused: JSON would turn int keys into strings, and NaN/Infinity are not JSON.
    keys_before = redis_db.dbsize()
    refused: list[tuple[object, str]] = [
        ({1: "a"}, "keys must be strings"),
        ({"outer": {2: "b"}}, "keys must be strings"),
        (math.nan, "NaN and Infinity"),
        (math.inf, "NaN and Infinity"),
        (-math.inf, "NaN and Infinity"),
        ([1.0, {"x": math.nan}], "NaN and Infinity"),
    ]
    for value, message in refused:
        with pytest.raises(ArgumentError, match=message):
            tiger.enqueue(TaskSpec.of(chaos_tasks.accept, value))
        with pytest.raises(ArgumentError, match=message):
            tiger.delay(chaos_tasks.accept, args=[value])
    assert redis_db.dbsize() == keys_before


# --- children that die, return values ---------------------------------------------------


DEATHS: dict[str, tuple[Callable[..., None], tuple[int, ...], str]] = {
    "os._exit(1)": (worker_tasks.exit_with, (1,), "exited with code 1"),
    "segfault": (chaos_tasks.segfault, (), "SIGSEGV"),
    "OOM killer (SIGKILL)": (worker_tasks.kill_self, (signal.SIGKILL,), "SIGKILL"),
}


@pytest.mark.parametrize(
    "retry_on",
    [None, ChildProcessDied, JobTimeoutException],
    ids=["no retry", "retry_on ChildProcessDied", "retry_on JobTimeoutException (TaskTiger's)"],
)
@pytest.mark.parametrize("death", list(DEATHS))
def test_child_that_dies_fails_with_its_exit_status_and_is_retried_if_configured(
    tiger: Tiger,
    redis_db: redis.Redis[str],
    ledger: Path,
    death: str,
    retry_on: type[Exception] | None,
) -> None:
    func, args, expected = DEATHS[death]
    spec = TaskSpec.of(func, *args)
    retried = retry_on is not None
    if retry_on is not None:
        spec = spec.evolve(retry=fixed(0, 2), retry_on=[retry_on])
    task = tiger.enqueue(spec)
    normal_task(tiger, ledger)

    fork_worker(tiger)  # runs the retries too: they are due at once

    records = executions(redis_db, task.id)
    assert len(records) == (3 if retried else 1)
    for record in records:
        assert record.exception_name == "typedtiger.exceptions:ChildProcessDied"
        assert record.exception is not None and expected in record.exception
    assert in_state(redis_db, "error", task.id)
    assert finished(ledger)


def test_a_non_json_return_value_is_ignored(tiger: Tiger, ledger: Path) -> None:
    # Documented: what a task returns is ignored (never serialized, never stored).
    tiger.enqueue(TaskSpec.of(chaos_tasks.return_unserializable, str(ledger)))
    fork_worker(tiger)
    assert lines(ledger) == ["returned"]
    assert tiger.get_queue_stats() == {}


# --- log lines -------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["args", "kwargs"])
@pytest.mark.parametrize("max_chars", [None, 50])
def test_a_50_mb_argument_does_not_become_a_50_mb_log_line(
    patient_client: redis.Redis[str], where: str, max_chars: int | None
) -> None:
    config = Config(max_payload_bytes=0, allowed_task_modules=("tests",))
    if max_chars is not None:
        config = Config(
            max_payload_bytes=0, log_args_max_chars=max_chars, allowed_task_modules=("tests",)
        )
    tiger = Tiger(RedisBackend(patient_client), config)
    big = "x" * 50_000_000
    spec = (
        TaskSpec.of(chaos_tasks.accept, big)
        if where == "args"
        else TaskSpec.of(chaos_tasks.accept, data=big)
    )
    tiger.enqueue(spec)
    del big, spec

    with structlog.testing.capture_logs() as logs:
        tiger.run_worker(executor=SyncExecutor(), once=True)

    (processing,) = [event for event in logs if event["event"] == "processing"]
    shown = processing[where]
    assert isinstance(shown, str)
    limit = config.log_args_max_chars
    assert len(shown) <= limit + 40  # the cut text plus "... (N chars)"
    assert "50000" in shown  # says how long it was
    total = sum(len(repr(event)) for event in logs)
    assert total < 20_000, f"log events hold {total} characters"
    assert tiger.get_queue_stats() == {}


# --- Redis errors at enqueue -----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_redis_errors_at_enqueue_reach_the_caller_as_backend_unavailable(ledger: Path) -> None:
    backend = RedisBackend.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    tiger = Tiger(backend, Config(allowed_task_modules=("tests",)))
    spec = TaskSpec.of(chaos_tasks.run, str(ledger), "a")
    attempts: list[Callable[[], Any]] = [
        lambda: tiger.enqueue(spec),
        lambda: tiger.enqueue(spec.evolve(unique=True)),
        lambda: tiger.enqueue_many([spec, spec]),
        lambda: tiger.delay(chaos_tasks.run, args=[str(ledger), "b"]),
    ]
    try:
        for attempt in attempts:
            with pytest.raises(BackendUnavailable, match="Redis is unavailable"):
                attempt()
    finally:
        backend.client.close()


def test_enqueue_many_that_overflows_max_queue_size_writes_nothing(
    tiger: Tiger, redis_db: redis.Redis[str], ledger: Path
) -> None:
    specs = [
        TaskSpec.of(chaos_tasks.run, str(ledger), f"t{n}").evolve(max_queue_size=2)
        for n in range(3)
    ]
    with pytest.raises(QueueFullException):
        tiger.enqueue_many(specs)
    assert redis_db.dbsize() == 0


def test_a_redis_error_in_the_middle_of_enqueue_many_leaves_nothing_half_written(
    tiger: Tiger, redis_db: redis.Redis[str], ledger: Path
) -> None:
    redis_db.set(f"t:queued:{QUEUE}.broken", "a string where a sorted set belongs")
    specs = [
        TaskSpec.of(chaos_tasks.run, str(ledger), "a"),
        TaskSpec.of(chaos_tasks.run, str(ledger), "b").evolve(queue=f"{QUEUE}.broken"),
        TaskSpec.of(chaos_tasks.run, str(ledger), "c"),
    ]
    with pytest.raises(TypedTigerError, match="WRONGTYPE"):
        tiger.enqueue_many(specs)
    assert redis_db.keys("t:*") == [f"t:queued:{QUEUE}.broken"]
