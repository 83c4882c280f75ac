"""An async test awaits the async client on the harness, then runs the harness.

Our suite runs its async tests with anyio's pytest plugin (anyio comes with fastapi, a dev
dependency): ``@pytest.mark.anyio``, on asyncio only (the ``anyio_backend`` fixture below).
The ``typedtiger_harness`` fixture is a plain one: an async test takes it as a sync test does,
awaits ``adelay``/``aenqueue``/``Task.afrom_id``/``aresult`` on its FakeBackend (fakeredis's
asyncio client on the same in-process store) and calls the harness between its awaits.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from tests import async_tasks
from tests.test_testing import _plugin_args
from typedtiger import Config, ResultExpired, ResultTimeout, Task, Tiger
from typedtiger.task import TaskState
from typedtiger.testing import ExecutionStatus, TaskFailed, TigerHarness

pytest_plugins = ["pytester"]


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: typedtiger's async client is on redis.asyncio."""
    return "asyncio"


@pytest.fixture
def typedtiger_app() -> Tiger:
    """The Tiger the async test tasks are registered on (the harness binds it per test)."""
    return async_tasks.tiger


@pytest.fixture
def typedtiger_config() -> Config:
    return Config(allowed_task_modules=("tests.async_tasks",))


@pytest.fixture(autouse=True)
def _calls() -> None:
    async_tasks.CALLS.clear()


@pytest.mark.anyio
async def test_an_async_test_awaits_the_client_then_runs_the_harness(
    typedtiger_harness: TigerHarness,
) -> None:
    tiger = typedtiger_harness.tiger
    task = await async_tasks.double.adelay(21)
    by_spec = await tiger.aenqueue(async_tasks.double.spec(4))
    fetched, failing = await tiger.aenqueue_many(
        [async_tasks.fetch.spec("page"), async_tasks.fail.spec("boom")]
    )
    found = await Task.afrom_id(tiger, task.queue, TaskState.QUEUED, task.id)
    assert (found.id, found.args) == (task.id, (21,))
    queued = {record.id for record in typedtiger_harness.queued()}
    assert queued == {t.id for t in (task, by_spec, fetched, failing)}

    result = typedtiger_harness.run_until_idle()  # in the test's loop: async tasks run beside it

    assert (result.ran, result.succeeded) == (4, 3)
    assert [e.status for e in result.of(async_tasks.fail).executions] == [ExecutionStatus.ERROR]
    assert async_tasks.CALLS == ["fetch page"]
    answer: int = await task.aresult(timeout=1)
    assert (answer, await by_spec.aresult(timeout=1)) == (42, 8)
    assert answer == task.result(timeout=0)  # the sync client sees the same store
    assert typedtiger_harness.queued() == []


@pytest.mark.anyio
async def test_time_travel_runs_what_an_async_test_scheduled(
    typedtiger_harness: TigerHarness,
) -> None:
    later = await async_tasks.double.adelay_at(timedelta(minutes=5), 1)
    soon = await typedtiger_harness.tiger.aenqueue(
        async_tasks.double.spec(2), when=timedelta(minutes=1)
    )

    assert typedtiger_harness.run_until_idle().ran == 0  # neither is due yet
    first = typedtiger_harness.advance(timedelta(seconds=90))
    assert [e.task_id for e in first.executions] == [soon.id]
    assert await soon.aresult(timeout=1) == 4
    assert [e.task_id for e in typedtiger_harness.advance(timedelta(minutes=4)).executions] == [
        later.id
    ]

    assert await later.aresult(timeout=1) == 2
    with pytest.raises(ResultExpired):  # kept 60 s (result_ttl), and the clock says 4 min passed
        await soon.aresult(timeout=1)


@pytest.mark.anyio
async def test_awaiting_a_result_the_harness_has_not_made_times_out(
    typedtiger_harness: TigerHarness,
) -> None:
    task = await async_tasks.double.adelay(3)

    began = time.monotonic()
    with pytest.raises(ResultTimeout):
        await task.aresult(timeout=0.1)  # the task waits for the harness: no worker runs it
    assert time.monotonic() - began < 5

    typedtiger_harness.run_until_idle()
    assert await task.aresult(timeout=0) == 6


@pytest.mark.anyio
async def test_a_failure_the_harness_raises_in_an_async_test(
    typedtiger_harness: TigerHarness,
) -> None:
    await async_tasks.fail.adelay("loud")

    with pytest.raises(TaskFailed, match="loud"):
        typedtiger_harness.run_until_idle(raise_errors=True)


@pytest.mark.anyio
async def test_the_loop_is_free_while_the_test_awaits_the_client(
    typedtiger_harness: TigerHarness,
) -> None:
    beside = asyncio.create_task(asyncio.sleep(0.01, result="served"))  # e.g. an ASGI app

    tasks = await asyncio.gather(*(async_tasks.fetch.adelay(f"p{n}") for n in range(5)))

    assert await beside == "served"
    assert len({task.id for task in tasks}) == 5
    assert typedtiger_harness.run_until_idle().succeeded == 5


def test_a_users_async_test_with_the_plugin_and_anyio(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    """What docs/testing.md shows: the ini option names the app's Tiger, anyio runs the test."""
    pytester.makeini("[pytest]\ntypedtiger_app = async_demo_app:tiger\n")
    pytester.makepyfile(
        async_demo_app="""
            from typedtiger import Tiger
            tiger = Tiger()

            @tiger.task(result_ttl=60)
            async def shout(text: str) -> str:
                return text.upper()
        """,
        test_async_app="""
            import pytest
            import async_demo_app

            @pytest.fixture
            def anyio_backend():
                return "asyncio"

            @pytest.mark.anyio
            async def test_shout(typedtiger_harness):
                task = await async_demo_app.shout.adelay("hi")
                typedtiger_harness.run_until_idle(raise_errors=True)
                assert await task.aresult(timeout=1) == "HI"
        """,
    )
    pytester.syspathinsert()

    result = pytester.runpytest(*_plugin_args(request))

    result.assert_outcomes(passed=1)
