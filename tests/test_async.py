"""async def functions as tasks in the executors that run jobs in a thread without a loop (sync,
fork, prefork), in eager mode and in the harness: the coroutine is run to its end."""

from __future__ import annotations

import asyncio
import functools
import gc
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests import async_periodic_tasks, async_tasks
from typedtiger import Config, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import ForkExecutor, PreforkExecutor, SyncExecutor
from typedtiger.spec import Custom, TaskSpec
from typedtiger.task import Task, TaskState
from typedtiger.testing import ExecutionStatus, TaskFailed, fake_tiger
from typedtiger.worker.executor import Executor

EXECUTORS: list[Callable[[], Executor]] = [SyncExecutor, ForkExecutor, PreforkExecutor]


async def here(url: str) -> str:
    return url


def tick() -> None:
    pass


@pytest.fixture(autouse=True)
def _no_unawaited_coroutine() -> Iterator[None]:
    """Every test here fails on a "coroutine ... was never awaited" warning."""
    async_tasks.CALLS.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()  # an unclosed coroutine warns when it is collected
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


@pytest.fixture
def app(backend: RedisBackend) -> Tiger:
    """A Tiger on each backend with the async test tasks, allowed to run their module."""
    tiger = Tiger(backend, Config(allowed_task_modules=("tests.async_tasks",)))
    tiger.adopt(async_tasks.tiger)
    return tiger


def _errored(tiger: Tiger, task: Task) -> tuple[str | None, str]:
    errored = Task.from_id(tiger, task.queue, TaskState.ERROR, task.id, load_executions=1)
    (record,) = errored.executions
    return record.exception_name, record.exception or ""


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_async_task_runs_to_its_end_in_each_executor(
    app: Tiger, executor: Callable[[], Executor], tmp_path: Path
) -> None:
    done = tmp_path / "done"
    app.enqueue(async_tasks.touch.spec(str(done), "async"))
    app.enqueue(async_tasks.returns_coroutine.spec("u"))

    app.run_worker(executor=executor(), once=True)

    assert done.read_text() == "async"
    assert app.get_queue_stats() == {}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_async_task_raising_fails_with_its_exception(
    app: Tiger, executor: Callable[[], Executor]
) -> None:
    task = app.enqueue(async_tasks.fail.spec("boom"))

    app.run_worker(executor=executor(), once=True)

    assert app.get_queue_stats() == {"default": {TaskState.ERROR: 1}}
    name, error = _errored(app, task)
    assert name == "builtins:ValueError"
    assert "boom" in error


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_async_tasks_result_is_what_its_coroutine_returns_in_each_executor(
    app: Tiger, executor: Callable[[], Executor]
) -> None:
    task = app.enqueue(async_tasks.double.spec(21))
    by_spec = app.enqueue(TaskSpec.of(async_tasks.double, 4))

    app.run_worker(executor=executor(), once=True)

    answer: int = task.result(timeout=0)  # a Task[int], not a Task of a coroutine
    assert (answer, by_spec.result(timeout=0)) == (42, 8)


def test_an_async_task_past_its_hard_timeout_fails_with_job_timeout(app: Tiger) -> None:
    task = app.enqueue(async_tasks.sleeps.spec(5))  # hard_timeout=0.3: the alarm stops the loop

    app.run_worker(executor=SyncExecutor(), once=True)

    name, _ = _errored(app, task)
    assert name == "tasktiger.exceptions:JobTimeoutException"


def test_an_async_batch_function_gets_its_calls(backend: RedisBackend, tmp_path: Path) -> None:
    config = Config(batch_queues={"default": 10}, allowed_task_modules=("tests.async_tasks",))
    app = Tiger(backend, config)
    app.adopt(async_tasks.tiger)
    paths = [tmp_path / "a", tmp_path / "b"]
    for path in paths:
        app.enqueue(async_tasks.batch_touch.spec(str(path), "batch"))

    app.run_worker(executor=SyncExecutor(), once=True)

    assert [p.read_text() for p in paths] == ["batch of 2", "batch of 2"]
    assert app.get_queue_stats() == {}


def test_a_payload_naming_an_async_function_by_string_runs_it(app: Tiger) -> None:
    app.enqueue(TaskSpec(func="tests.async_tasks:fetch", args=("by name",)))

    app.run_worker(executor=SyncExecutor(), once=True)

    assert async_tasks.CALLS == ["fetch by name"]


def test_a_task_returning_an_async_generator_fails(app: Tiger) -> None:
    task = app.enqueue(async_tasks.returns_generator.spec())

    app.run_worker(executor=SyncExecutor(), once=True)

    name, error = _errored(app, task)
    assert name == "builtins:TypeError"
    assert "returned an awaitable (async_generator) that is not a coroutine" in error
    assert async_tasks.CALLS == []


# --- eager mode and the harness ----------------------------------------------------------


def test_eager_mode_runs_an_async_task(backend: RedisBackend) -> None:
    tiger = Tiger(backend, Config(always_eager=True, allowed_task_modules=("tests.async_tasks",)))
    tiger.adopt(async_tasks.tiger)

    tiger.enqueue(async_tasks.fetch.spec("eager"))
    Task.from_spec(tiger, async_tasks.fetch.spec("execute")).execute()
    doubled: int = tiger.enqueue(async_tasks.double.spec(5)).result()

    assert async_tasks.CALLS == ["fetch eager", "fetch execute"]
    assert doubled == 10
    assert backend.client.keys("*") == []


def test_eager_mode_inside_a_running_loop_runs_the_task_beside_it(backend: RedisBackend) -> None:
    tiger = Tiger(backend, Config(always_eager=True, allowed_task_modules=("tests.async_tasks",)))
    tiger.adopt(async_tasks.tiger)

    async def handler() -> None:  # e.g. an ASGI handler enqueueing in eager mode
        tiger.enqueue(async_tasks.fetch.spec("in a loop"))

    asyncio.run(handler())

    assert async_tasks.CALLS == ["fetch in a loop"]


def test_eager_mode_raises_what_an_async_task_raises(backend: RedisBackend) -> None:
    tiger = Tiger(backend, Config(always_eager=True, allowed_task_modules=("tests.async_tasks",)))
    tiger.adopt(async_tasks.tiger)

    with pytest.raises(ValueError, match="eager boom"):
        tiger.enqueue(async_tasks.fail.spec("eager boom"))


def test_the_harness_runs_async_tasks() -> None:
    config = Config(allowed_task_modules=("tests.async_tasks",))
    with fake_tiger(async_tasks.tiger, config) as harness:
        async_tasks.fetch.delay("one")
        async_tasks.fail.delay("two")

        result = harness.run_until_idle()

        assert (result.ran, result.succeeded) == (2, 1)
        statuses = sorted(e.status for e in result.executions)
        assert statuses == sorted([ExecutionStatus.DONE, ExecutionStatus.ERROR])
        assert async_tasks.CALLS == ["fetch one"]

        async_tasks.fail.delay("three")
        with pytest.raises(TaskFailed, match="three"):
            harness.run_until_idle(raise_errors=True)


def test_the_harness_travels_in_time_for_async_retries_and_schedules() -> None:
    async_periodic_tasks.CALLS.clear()
    with fake_tiger(async_periodic_tasks.tiger) as harness:
        start = harness.clock.now()
        async_periodic_tasks.flaky.delay(3)  # fails twice, retried every 60 s

        result = harness.advance(timedelta(minutes=10))

        flaky = result.of(async_periodic_tasks.flaky).executions
        assert [e.status for e in flaky] == [
            ExecutionStatus.RETRYING,
            ExecutionStatus.RETRYING,
            ExecutionStatus.DONE,
        ]
        assert [e.started_at.timestamp() - start for e in flaky] == [0, 60, 120]
        assert async_periodic_tasks.CALLS.count("tick") == 2  # every five minutes


# --- what is refused -----------------------------------------------------------------------


async def generate() -> object:
    yield 1


def passes_through(func: Callable[..., object]) -> Callable[..., object]:
    """A decorator written for plain functions, put on an async one."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        return func(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize(
    "make",
    [
        lambda tiger: tiger.task(generate),
        lambda _: TaskSpec.of(generate),
        lambda tiger: tiger.delay(generate),
        lambda _: TaskSpec.of(passes_through(generate)),
    ],
)
def test_an_async_generator_function_is_refused_as_a_task(
    app: Tiger, backend: RedisBackend, make: Callable[[Tiger], object]
) -> None:
    with pytest.raises(TypeError, match=r"tests\.test_async:generate is an async generator"):
        make(app)
    assert backend.client.keys("*") == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda _: Custom.of(here), "here is an async function: a retry function must be"),  # type: ignore[arg-type]
        (
            lambda tiger: tiger.task(schedule=here)(tick),
            "here is an async function: a schedule function must be",
        ),
    ],
)
def test_async_retry_and_schedule_functions_are_refused(
    app: Tiger, make: Callable[[Tiger], object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        make(app)


def test_a_custom_retry_function_returning_a_coroutine_gives_up(app: Tiger) -> None:
    spec = TaskSpec.of(async_tasks.fail, "u").evolve(retry=Custom("tests.async_tasks:retry_delay"))
    task = app.enqueue(spec)

    app.run_worker(executor=SyncExecutor(), once=True)

    assert app.get_queue_stats() == {"default": {TaskState.ERROR: 1}}
    assert _errored(app, task)[0] == "builtins:ValueError"
