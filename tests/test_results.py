"""Task results (``result_ttl``, ``Task.result()``), on both backends."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
import redis

from tests import result_tasks
from tests.conftest import run_worker
from tests.keys import task_key, task_keys
from tests.waiting import scaled
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.exceptions import ResultExpired, ResultTimeout, TaskFailed
from typedtiger.executor import ForkExecutor
from typedtiger.worker.prefork import PreforkExecutor

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def tiger(backend: RedisBackend) -> Tiger:
    """The Tiger the result tasks enqueue through, on each backend."""
    result_tasks.tiger.init(backend=backend, config=Config(allowed_task_modules=("tests",)))
    return result_tasks.tiger


def test_a_task_returns_its_value_once_a_worker_ran_it(tiger: Tiger) -> None:
    task = result_tasks.multiply.delay(6, 7)
    run_worker(tiger)
    assert task.result(timeout=0) == 42
    assert task.result() == 42  # read again: kept for its result_ttl
    assert task_keys(tiger, task.id) == [task_key(tiger, "default", task.id, ":result")]


def test_json_results_come_back_as_the_annotated_types(tiger: Tiger) -> None:
    summary = result_tasks.summarise.delay(["b", "a"])
    none = result_tasks.nothing.delay()
    run_worker(tiger)
    assert summary.result(timeout=0) == {"total": 2, "names": ["a", "b"]}
    assert none.result(timeout=0) is None


def test_the_result_key_expires_with_the_result_ttl_as_a_backstop(tiger: Tiger) -> None:
    task = result_tasks.multiply.delay(2, 3)
    run_worker(tiger)
    assert isinstance(tiger.backend, RedisBackend)
    ttl_ms = tiger.backend.client.pttl(task_key(tiger, "default", task.id, ":result"))
    assert 3600_000 < ttl_ms <= 3600_000 + 60_000


def test_a_result_expires_after_its_ttl_by_the_clock(tiger: Tiger, clock: ManualClock) -> None:
    task = result_tasks.multiply.delay(2, 3)
    run_worker(tiger)
    clock.advance(timedelta(minutes=59))
    assert task.result(timeout=0) == 6
    clock.advance(timedelta(minutes=2))
    with pytest.raises(ResultExpired, match="expired"):
        task.result(timeout=0)


def test_a_permanent_failure_is_raised_as_task_failed(tiger: Tiger) -> None:
    task = result_tasks.explode.delay("kaboom")
    run_worker(tiger)
    with pytest.raises(TaskFailed) as caught:
        task.result(timeout=0)
    failure = caught.value
    assert failure.task_id == task.id
    assert failure.exception_name == "builtins:ValueError"
    assert failure.message == "kaboom"
    assert failure.traceback is not None and "ValueError: kaboom" in failure.traceback
    assert failure.time_failed is not None


def test_a_task_waiting_for_a_retry_has_no_result_yet(tiger: Tiger, clock: ManualClock) -> None:
    task = result_tasks.explode_with_retries.delay("again")
    run_worker(tiger)
    with pytest.raises(ResultTimeout):
        task.result(timeout=0)
    for _ in range(2):
        clock.advance(31)
        run_worker(tiger)
    with pytest.raises(TaskFailed, match="KeyError") as caught:
        task.result(timeout=0)
    assert caught.value.message == "'again'"


def test_a_failure_removed_without_a_trace_still_reaches_the_waiter(tiger: Tiger) -> None:
    task = result_tasks.give_up_quietly.delay()
    run_worker(tiger)
    assert task_keys(tiger, task.id) == [
        task_key(tiger, "default", task.id, ":result")
    ]  # the task is gone
    with pytest.raises(TaskFailed, match="RetryException"):
        task.result(timeout=0)


def test_a_result_json_cannot_carry_fails_the_task(tiger: Tiger) -> None:
    task = result_tasks.lies_about_its_type.delay()
    run_worker(tiger)
    with pytest.raises(TaskFailed) as caught:
        task.result(timeout=0)
    assert caught.value.exception_name == "typedtiger.exceptions:ArgumentError"
    assert "the result of tests.result_tasks:lies_about_its_type is a builtins.set" in str(
        caught.value
    )


def test_a_task_without_result_ttl_keeps_nothing(tiger: Tiger) -> None:
    task = result_tasks.keeps_nothing.delay(3)
    run_worker(tiger)
    assert task_keys(tiger, task.id) == []
    with pytest.raises(ValueError, match="keeps no result: give it result_ttl"):
        task.result(timeout=0)


def test_result_ttl_is_given_per_call_too(tiger: Tiger) -> None:
    task = tiger.enqueue(
        result_tasks.keeps_nothing.spec(5).evolve(result_ttl=timedelta(seconds=30))
    )
    run_worker(tiger)
    assert task.result(timeout=0) == 5
    cancelled = tiger.enqueue(result_tasks.multiply.spec(1, 1).evolve(result_ttl=None))
    assert cancelled.payload.result_ttl == 3600  # None inherits the task's default again


def test_a_deleted_task_has_no_result_to_wait_for(tiger: Tiger) -> None:
    task = tiger.enqueue(result_tasks.multiply.spec(1, 2), when=timedelta(hours=1))
    task.cancel()
    with pytest.raises(ResultExpired, match="no longer stored"):
        task.result(timeout=10)


def test_a_timeout_passes_while_the_task_waits_to_run(tiger: Tiger) -> None:
    task = result_tasks.later.delay(1)
    started = time.monotonic()
    with pytest.raises(ResultTimeout, match=r"no result after 0\.3 s"):
        task.result(timeout=timedelta(seconds=0.3))
    assert 0.3 <= time.monotonic() - started < scaled(3)
    run_worker(tiger)
    assert task.result(timeout=0) == 1


def test_a_waiter_is_woken_when_the_result_is_stored(tiger: Tiger) -> None:
    task = result_tasks.later.delay(9)

    def run_soon() -> None:  # (time for the waiter to start waiting)
        time.sleep(0.5)
        run_worker(tiger)

    worker = threading.Thread(target=run_soon)
    worker.start()
    try:
        started = time.monotonic()
        assert task.result(timeout=scaled(30)) == 9
        # Woken by the store, long before the waiter would have looked again (5 s).
        assert time.monotonic() - started < scaled(3)
    finally:
        worker.join()


def test_eager_tasks_keep_their_result_on_the_handle(backend: RedisBackend) -> None:
    config = Config(always_eager=True, allowed_task_modules=("tests",))
    result_tasks.tiger.init(backend=backend, config=config)
    assert result_tasks.multiply.delay(3, 3).result() == 9
    with pytest.raises(ValueError, match="keeps no result"):
        result_tasks.keeps_nothing.delay(3).result()


def test_result_ttl_is_refused_where_the_result_cannot_be_kept() -> None:
    tiger = Tiger()
    refusals = [
        (result_tasks.as_set, r"but the return type set\[int\] is not a JSON type"),
        (result_tasks.as_tuple, "comes back from JSON as a list: annotate list"),
        (result_tasks.int_keys, "has keys that are not str"),
    ]
    for func, message in refusals:
        with pytest.raises(TypeError, match=message):
            tiger.task(result_ttl=1)(func)
    with pytest.raises(ValueError, match="not available for batch tasks"):
        tiger.task(result_ttl=1, batch=True)(result_tasks.as_set)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="result_ttl must be > 0"):
        TaskSpec(func="m:f", result_ttl=0)


def test_accepted_return_types() -> None:
    tiger = Tiger()
    optional_list = tiger.task(result_ttl=1)(result_tasks.optional_list)
    unannotated = tiger.task(result_ttl=timedelta(minutes=1))(result_tasks.unannotated)
    assert optional_list.registration.defaults.result_ttl == 1
    assert unannotated.registration.defaults.result_ttl == 60


@pytest.mark.redis
@pytest.mark.parametrize("executor", ["fork", "prefork"])
def test_results_from_forked_children_reach_redis(
    redis_db: redis.Redis[str], executor: str
) -> None:
    backend = RedisBackend(redis_db)  # (the system clock: children run on their own)
    result_tasks.tiger.init(backend=backend, config=Config(allowed_task_modules=("tests",)))
    product = result_tasks.multiply.delay(4, 5)
    failure = result_tasks.explode.delay("in a child")
    chosen = ForkExecutor() if executor == "fork" else PreforkExecutor()
    result_tasks.tiger.run_worker(executor=chosen, once=True)
    assert product.result(timeout=scaled(10)) == 20
    with pytest.raises(TaskFailed, match="in a child"):
        failure.result(timeout=scaled(10))


def test_the_async_twin_awaits_results_and_failures(tiger: Tiger) -> None:
    product = result_tasks.multiply.delay(3, 4)
    failure = result_tasks.explode.delay("async")
    waiting = result_tasks.later.delay(5)
    run_worker(tiger, queues=["default"])

    async def main() -> tuple[int, int]:
        try:
            value = await product.aresult(timeout=0)
            with pytest.raises(TaskFailed, match="async"):
                await failure.aresult(timeout=0)
            with pytest.raises(ResultTimeout):
                await waiting.aresult(timeout=0.2)
            # Woken by the store: the worker runs in a thread while the loop awaits.
            worker = asyncio.create_task(asyncio.to_thread(run_worker, tiger))
            later = await waiting.aresult(timeout=scaled(30))
            await worker
            return value, later
        finally:
            await tiger.aclose()

    started = time.monotonic()
    assert asyncio.run(main()) == (12, 5)
    assert time.monotonic() - started < scaled(4)  # (woken, not after a 5 s recheck)
