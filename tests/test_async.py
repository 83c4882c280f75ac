"""async def functions: refused where they become tasks, failed (never done) if run anyway.

Async tasks are not supported yet. A worker calling an async function gets a coroutine back
without the body having run; before the refusal, such a task was recorded as done.
"""

from __future__ import annotations

import functools
import gc
import warnings
from collections.abc import Callable, Iterator

import pytest

from tests import async_tasks
from typedtiger import Config, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import ForkExecutor, SyncExecutor
from typedtiger.spec import Custom, TaskSpec
from typedtiger.task import Task, TaskState
from typedtiger.testing import ExecutionStatus, TaskFailed, fake_tiger

HINT = "async tasks are not supported yet"
FETCH = "tests.async_tasks:fetch"


async def fetch_here(url: str) -> str:
    return url


def tick() -> None:
    pass


class AsyncCallable:
    async def __call__(self, url: str) -> str:
        return url


def passes_through(func: Callable[..., object]) -> Callable[..., object]:
    """A decorator written for plain functions, put on an async one."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        return func(*args, **kwargs)

    return wrapper


@pytest.fixture(autouse=True)
def _no_unawaited_coroutine() -> Iterator[None]:
    """Every test here fails on a "coroutine ... was never awaited" warning."""
    async_tasks.CALLS.clear()
    async_tasks.RESULTS.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()  # an unclosed coroutine warns when it is collected
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert async_tasks.CALLS == []  # no async body ever ran


@pytest.fixture
def app(backend: RedisBackend) -> Tiger:
    """A Tiger on each backend with the test module's tasks, allowed to run its functions."""
    tiger = Tiger(backend, Config(allowed_task_modules=("tests.async_tasks",)))
    tiger.adopt(async_tasks.tiger)
    return tiger


# --- refused where a callable becomes a task ---------------------------------------------


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda tiger: tiger.task(fetch_here), "tests.test_async:fetch_here is an async function"),
        (lambda tiger: tiger.task(queue="q")(fetch_here), "fetch_here is an async function"),
        (lambda tiger: tiger.task(batch=True)(fetch_here), "fetch_here is an async function"),
        (lambda tiger: tiger.task(async_tasks.stream), "tests.async_tasks:stream is an async"),
        (lambda _: TaskSpec.of(fetch_here, "u"), "fetch_here is an async function"),
        (lambda tiger: tiger.delay(fetch_here, ["u"]), "fetch_here is an async function"),
        (
            lambda tiger: tiger.delay(functools.partial(fetch_here, "u")),
            "tests.test_async:fetch_here is an async function",
        ),
        (
            lambda _: TaskSpec.of(passes_through(fetch_here), "u"),
            "tests.test_async:fetch_here is an async function",
        ),
        (lambda _: TaskSpec.of(AsyncCallable(), "u"), "AsyncCallable object"),
        (lambda _: Custom.of(fetch_here), "fetch_here is an async function"),  # type: ignore[arg-type]
        (
            lambda tiger: tiger.task(schedule=fetch_here)(tick),
            "fetch_here is an async function",
        ),
    ],
)
def test_an_async_function_is_refused_where_it_would_become_a_task(
    app: Tiger, backend: RedisBackend, make: Callable[[Tiger], object], named: str
) -> None:
    with pytest.raises(TypeError, match=HINT) as raised:
        make(app)
    assert named in str(raised.value)
    assert backend.client.keys("*") == []  # nothing was enqueued


def test_the_refusal_names_what_a_wrapper_hides() -> None:
    with pytest.raises(TypeError) as raised:
        TaskSpec.of(passes_through(passes_through(fetch_here)), "u")
    assert str(raised.value) == (
        "tests.test_async:fetch_here is an async function: async tasks are not supported yet; "
        "write a plain def (it may call asyncio.run)"
    )


def test_a_plain_function_running_a_coroutine_itself_is_a_task(app: Tiger) -> None:
    app.enqueue(async_tasks.runs_coroutine.spec(20))

    app.run_worker(executor=SyncExecutor(), once=True)

    assert app.get_queue_stats() == {}
    assert async_tasks.RESULTS == [21]


# --- failed when run anyway ----------------------------------------------------------------


def _errored(tiger: Tiger, task: Task) -> tuple[str | None, str]:
    errored = Task.from_id(tiger, task.queue, TaskState.ERROR, task.id, load_executions=1)
    (record,) = errored.executions
    return record.exception_name, record.exception or ""


@pytest.mark.parametrize("executor", [SyncExecutor, ForkExecutor])
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (TaskSpec(func=FETCH, args=("u",)), f"task {FETCH} returned an awaitable (coroutine)"),
        (
            TaskSpec(func="tests.async_tasks:stream"),
            "task tests.async_tasks:stream returned an awaitable (async_generator)",
        ),
        (async_tasks.returns_coroutine.spec("u"), "returns_coroutine returned an awaitable"),
        (async_tasks.batch_returns_coroutine.spec("u"), "batch_returns_coroutine returned"),
    ],
)
def test_a_task_returning_an_awaitable_fails_and_is_never_done(
    app: Tiger, executor: Callable[[], SyncExecutor | ForkExecutor], spec: TaskSpec, message: str
) -> None:
    task = app.enqueue(spec)

    app.run_worker(executor=executor(), once=True)

    assert app.get_queue_stats() == {"default": {TaskState.ERROR: 1}}
    name, error = _errored(app, task)
    assert name == "builtins:TypeError"
    assert message in error and HINT in error


def test_the_harness_reports_a_task_returning_a_coroutine_as_failed() -> None:
    config = Config(allowed_task_modules=("tests.async_tasks",))  # FETCH is not registered
    with fake_tiger(async_tasks.tiger, config) as harness:
        async_tasks.returns_coroutine.delay("u")
        harness.tiger.enqueue(TaskSpec(func=FETCH, args=("v",)))

        result = harness.run_until_idle()

        assert (result.ran, result.succeeded) == (2, 0)
        assert [e.status for e in result.executions] == [ExecutionStatus.ERROR] * 2
        assert all(HINT in (e.exception or "") for e in result.executions)
        assert len(harness.errored()) == 2

        harness.tiger.enqueue(TaskSpec(func=FETCH, args=("w",)))
        with pytest.raises(TaskFailed, match="returned an awaitable"):
            harness.run_until_idle(raise_errors=True)


def test_eager_mode_raises_for_a_task_returning_a_coroutine(backend: RedisBackend) -> None:
    tiger = Tiger(backend, Config(always_eager=True, allowed_task_modules=("tests.async_tasks",)))
    tiger.adopt(async_tasks.tiger)
    with pytest.raises(TypeError, match=f"task {FETCH} returned an awaitable"):
        tiger.enqueue(TaskSpec(func=FETCH, args=("u",)))
    with pytest.raises(TypeError, match="returns_coroutine returned an awaitable"):
        tiger.enqueue(async_tasks.returns_coroutine.spec("u"))
    with pytest.raises(TypeError, match="returned an awaitable"):
        Task.from_spec(tiger, TaskSpec(func=FETCH, args=("u",))).execute()
    assert backend.client.keys("*") == []


def test_a_custom_retry_function_returning_a_coroutine_gives_up(app: Tiger) -> None:
    spec = TaskSpec.of(async_tasks.returns_coroutine, "u").evolve(retry=Custom(FETCH))
    task = app.enqueue(spec)

    app.run_worker(executor=SyncExecutor(), once=True)

    assert app.get_queue_stats() == {"default": {TaskState.ERROR: 1}}
    assert _errored(app, task)[0] == "builtins:TypeError"
