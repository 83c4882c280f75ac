"""typedtiger.testing: the harness over FakeBackend + ManualClock, and the pytest plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
import redis

from tests.conftest import REDIS_URL
from typedtiger import Config, RetryException, Tiger, exponential, fixed, periodic
from typedtiger.backends.fake import FakeBackend
from typedtiger.clock import ManualClock, SystemClock
from typedtiger.exceptions import ArgumentError, NotInitialized
from typedtiger.runner import BatchCall
from typedtiger.spec import TaskSpec
from typedtiger.task import TaskState
from typedtiger.testing import (
    ExecutionStatus,
    RunResult,
    TaskFailed,
    TigerHarness,
    fake_tiger,
)

pytest_plugins = ["pytester"]

START = datetime(2026, 1, 1, tzinfo=UTC)  # where a ManualClock starts

#: The application Tiger of this module's tasks: created lazily, as applications do.
tiger = Tiger()
#: What the tasks below did, in order.
CALLS: list[tuple[str, object]] = []


@tiger.task
def record(value: object) -> None:
    CALLS.append(("record", value))


@tiger.task(queue="orders")
def place_order(order_id: str) -> None:
    CALLS.append(("place_order", order_id))
    record.delay(f"receipt {order_id}")


@tiger.task(retry=exponential(60, 2, 3))
def always_fails(reason: str) -> None:
    CALLS.append(("always_fails", reason))
    raise RuntimeError(reason)


@tiger.task(retry=fixed(0, 2))
def retries_at_once() -> None:
    raise RuntimeError("again")


@tiger.task
def fails(message: str) -> None:
    raise ValueError(message)


@tiger.task(retry=fixed(30, 1))
def gives_up_quietly() -> None:
    raise RetryException(method=fixed(30, 1), log_error=False)


#: A second application, with a periodic task (every harness on it runs that task).
clockwork = Tiger()


@clockwork.task(schedule=periodic(minutes=15))
def every_quarter_hour() -> None:
    CALLS.append(("every_quarter_hour", clockwork.current_task.id))


@tiger.task
def forever(n: int) -> None:
    forever.delay(n + 1)


@tiger.task(batch=True, queue="batched")
def in_batches(calls: list[BatchCall]) -> None:
    CALLS.append(("in_batches", [call["args"][0] for call in calls]))


def not_registered() -> None:
    CALLS.append(("not_registered", None))


@pytest.fixture(autouse=True)
def _reset_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


@pytest.fixture
def harness() -> Iterator[TigerHarness]:
    """This module's Tiger bound to a fresh FakeBackend."""
    with fake_tiger(tiger) as bound:
        yield bound


def _offsets(result: RunResult) -> list[float]:
    return [(e.started_at - START).total_seconds() for e in result.executions]


# --- running ----------------------------------------------------------------------------------


def test_run_until_idle_runs_what_is_due_and_what_those_tasks_enqueue(
    harness: TigerHarness,
) -> None:
    place_order.delay("o-1")

    result = harness.run_until_idle()

    assert CALLS == [("place_order", "o-1"), ("record", "receipt o-1")]
    assert (result.ran, result.succeeded, result.failed) == (2, 2, 0)
    assert [(e.func, e.args, e.queue) for e in result.executions] == [
        ("tests.test_testing:place_order", ("o-1",), "orders"),
        ("tests.test_testing:record", ("receipt o-1",), "default"),
    ]
    assert all(e.status == "done" and e.started_at == START for e in result.executions)
    assert harness.queued() == [] and harness.now == START


def test_delayed_tasks_wait_for_the_clock(harness: TigerHarness) -> None:
    tiger.enqueue(record.spec("later"), when=timedelta(minutes=5))

    assert harness.run_until_idle().ran == 0
    (waiting,) = harness.scheduled()
    assert (waiting.func, waiting.args, waiting.state) == (
        "tests.test_testing:record",
        ("later",),
        TaskState.SCHEDULED,
    )
    assert waiting.scheduled_at == START + timedelta(minutes=5)
    assert harness.next_due() == START + timedelta(minutes=5)

    result = harness.advance(timedelta(minutes=10))

    assert _offsets(result) == [300]
    assert harness.now == START + timedelta(minutes=10)
    assert harness.scheduled() == [] and harness.next_due() is None


def test_advance_steps_through_every_retry_in_the_window(harness: TigerHarness) -> None:
    always_fails.delay("card declined")

    result = harness.advance(timedelta(hours=1))

    # exponential(60, 2, 3): +60 s, then +120 s, then +240 s, then no retry left.
    assert _offsets(result) == [0, 60, 180, 420]
    assert [e.retry_in for e in result.executions] == [60, 120, 240, None]
    assert [e.status for e in result.executions] == ["retrying"] * 3 + ["error"]
    assert result.failed == 4 and result.succeeded == 0
    assert {e.exception_name for e in result.failures} == {"builtins:RuntimeError"}
    (errored,) = harness.errored()
    assert errored.executions == 4
    assert (errored.last_exception, errored.last_error) == (
        "builtins:RuntimeError",
        "card declined",
    )
    assert harness.now == START + timedelta(hours=1)


def test_a_retry_beyond_the_window_stays_scheduled(harness: TigerHarness) -> None:
    always_fails.delay("x")

    result = harness.advance(90)

    assert _offsets(result) == [0, 60]
    (retry,) = harness.scheduled(always_fails)
    assert retry.scheduled_at == START + timedelta(seconds=180)
    assert retry.executions == 2


def test_run_next_scheduled_jumps_to_the_next_due_time(harness: TigerHarness) -> None:
    always_fails.delay("x")
    harness.run_until_idle()

    first = harness.run_next_scheduled()
    second = harness.run_next_scheduled()

    assert _offsets(first) == [60] and _offsets(second) == [180]
    assert harness.now == START + timedelta(seconds=180)
    harness.advance(timedelta(hours=1))
    with pytest.raises(LookupError, match="no task is scheduled"):
        harness.run_next_scheduled()


def test_a_periodic_task_runs_at_each_of_its_times() -> None:
    with fake_tiger(clockwork) as harness:
        assert harness.scheduled() == []  # registered when a worker starts, as in production
        result = harness.advance(timedelta(hours=1))
        (next_run,) = harness.scheduled(every_quarter_hour)

    assert _offsets(result) == [900, 1800, 2700, 3600]
    assert len({task_id for _, task_id in CALLS}) == 1  # one unique periodic task
    assert next_run.scheduled_at == START + timedelta(minutes=75)


def test_run_until_takes_a_datetime_and_refuses_the_past(harness: TigerHarness) -> None:
    tiger.enqueue(record.spec("x"), when=START + timedelta(days=1))

    result = harness.run_until(START + timedelta(days=2))

    assert _offsets(result) == [86400]
    assert harness.now == START + timedelta(days=2)
    with pytest.raises(ValueError, match="before the clock"):
        harness.run_until(START)
    with pytest.raises(ValueError, match="negative"):
        harness.advance(-1)


def test_how_a_failed_execution_ended_is_reported(harness: TigerHarness) -> None:
    fails.delay("no retry")
    gives_up_quietly.delay()

    result = harness.advance(timedelta(minutes=5))

    statuses = {(e.func.rpartition(":")[2], e.status) for e in result.executions}
    assert statuses == {
        ("fails", ExecutionStatus.ERROR),
        ("gives_up_quietly", ExecutionStatus.RETRYING),
        ("gives_up_quietly", ExecutionStatus.REMOVED),
    }
    assert [record.func for record in harness.errored()] == ["tests.test_testing:fails"]


def test_retries_due_at_once_run_in_the_same_call(harness: TigerHarness) -> None:
    retries_at_once.delay()

    result = harness.run_until_idle()

    assert [e.status for e in result.executions] == ["retrying", "retrying", "error"]
    assert [e.retry_in for e in result.executions] == [0, 0, None]


def test_batch_tasks_count_every_call() -> None:
    with fake_tiger(tiger, Config(batch_queues={"batched": 10})) as harness:
        for n in range(3):
            in_batches.delay(n)

        result = harness.run_until_idle()

    ((name, values),) = CALLS
    assert name == "in_batches" and isinstance(values, list) and sorted(values) == [0, 1, 2]
    assert result.ran == 3 and result.succeeded == 3


def test_a_task_that_keeps_enqueueing_itself_is_stopped(harness: TigerHarness) -> None:
    forever.delay(0)

    with pytest.raises(RuntimeError, match="stopped after 50 task executions"):
        harness.run_until_idle(max_tasks=50)


def test_a_paused_queue_waits_for_its_lock_to_end(harness: TigerHarness) -> None:
    place_order.delay("o-1")
    harness.tiger.set_queue_system_lock("orders", 60)

    assert harness.run_until_idle().ran == 0
    assert [r.args for r in harness.queued()] == [("o-1",)]

    result = harness.advance(timedelta(minutes=5))

    assert _offsets(result) == [60, 60]


# --- raising errors ----------------------------------------------------------------------


def test_raise_errors_stops_at_the_first_failure_with_its_traceback(
    harness: TigerHarness,
) -> None:
    fails.delay("kaput")

    with pytest.raises(TaskFailed) as caught:
        harness.run_until_idle(raise_errors=True)

    assert isinstance(caught.value, AssertionError)
    message = str(caught.value)
    assert "tests.test_testing:fails('kaput') in queue 'default' failed" in message
    assert "Traceback (most recent call last)" in message
    assert "raise ValueError(message)\nValueError: kaput" in message
    assert caught.value.execution.exception_name == "builtins:ValueError"
    assert caught.value.result.failed == 1


def test_raise_errors_covers_retried_failures_and_stepping(harness: TigerHarness) -> None:
    always_fails.delay("x")

    with pytest.raises(TaskFailed, match=r"retry at 2026-01-01T00:01:00\+00:00"):
        harness.advance(timedelta(hours=1), raise_errors=True)

    assert harness.now == START  # stopped at the first failure


def test_without_raise_errors_failures_are_only_reported(harness: TigerHarness) -> None:
    fails.delay("kaput")
    record.delay("fine")

    result = harness.run_until_idle()

    assert (result.ran, result.failed) == (2, 1)
    (failure,) = result.failures
    assert failure.exception == "kaput" and failure.traceback is not None
    assert "ValueError: kaput" in failure.describe()


def test_a_task_the_worker_cannot_import_is_a_failure() -> None:
    with fake_tiger(config=Config(allowed_task_modules=["somewhere.else"])) as harness:
        harness.tiger.enqueue(TaskSpec.of(not_registered))

        result = harness.run_until_idle()
        assert result.failed == 1 and CALLS == []
        assert result.executions[0].exception_name == "typedtiger.exceptions:TaskImportError"

        harness.tiger.enqueue(TaskSpec.of(not_registered))
        with pytest.raises(TaskFailed, match="allowed_task_modules"):
            harness.run_until_idle(raise_errors=True)


# --- the production path: serialization ----------------------------------------------------


def test_arguments_go_through_json_as_in_production(harness: TigerHarness) -> None:
    with pytest.raises(ArgumentError, match="JSON cannot carry"):
        record.delay(datetime.now(UTC))
    with pytest.raises(ArgumentError, match="keys must be strings"):
        record.delay({1: "one"})
    assert harness.queued() == []

    record.delay((1, ("a", "b")))
    harness.run_until_idle()

    assert CALLS == [("record", [1, ["a", "b"]])]  # tuples arrive as lists, as from Redis


def test_enqueue_options_are_not_task_arguments(harness: TigerHarness) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'queue'"):
        record.delay("x", queue="other")  # type: ignore[call-arg]
    tiger.enqueue(record.spec("x").evolve(queue="other"))
    assert [(r.queue, r.args) for r in harness.queued()] == [("other", ("x",))]


# --- inspecting ----------------------------------------------------------------------------


def test_listings_are_ordered_and_filterable(harness: TigerHarness) -> None:
    for value in ("c", "a", "b"):
        record.delay(value)
    place_order.delay("o-1")
    tiger.enqueue(record.spec("soon"), when=timedelta(minutes=1))
    tiger.enqueue(record.spec("sooner"), when=timedelta(seconds=30))

    assert [r.args for r in harness.queued()] == [("a",), ("b",), ("c",), ("o-1",)]
    assert [r.args for r in harness.queued(place_order)] == [("o-1",)]
    assert [r.args for r in harness.queued("tests.test_testing:record")] == [
        ("a",),
        ("b",),
        ("c",),
    ]
    assert [r.args for r in harness.scheduled()] == [("sooner",), ("soon",)]
    assert harness.tasks("scheduled", place_order) == []

    harness.scheduled()[0].task.cancel()
    assert [r.args for r in harness.scheduled()] == [("soon",)]


def test_records_compare_by_value_but_the_handle() -> None:
    with fake_tiger() as first, fake_tiger() as second:
        assert first.clock is not second.clock and first.backend is not second.backend
        first.tiger.enqueue(TaskSpec.of(not_registered))
        second.tiger.enqueue(TaskSpec.of(not_registered))
        (one,) = first.queued()
        (other,) = second.queued()
    assert one != other  # random ids
    assert attrs.evolve(one, id=other.id) == other


# --- binding an application's Tiger --------------------------------------------------------


def test_fake_tiger_binds_a_lazy_tiger_for_the_block_only() -> None:
    with pytest.raises(NotInitialized):
        record.delay("before")

    with fake_tiger(tiger) as harness:
        assert harness.tiger is tiger
        record.delay("inside")
        assert harness.run_until_idle().ran == 1

    with pytest.raises(NotInitialized):
        record.delay("after")


def test_fake_tiger_rebinds_an_initialised_tiger_and_restores_it() -> None:
    production = FakeBackend()
    app = Tiger(production, Config(default_queue="app"))
    task = app.task(not_registered)

    with fake_tiger(app) as harness:
        task.delay()
        assert [r.queue for r in harness.queued()] == ["app"]  # the app's config is kept
        assert harness.backend is not production

    assert app.backend is production and app.get_queue_stats() == {}
    with fake_tiger(app, Config(default_queue="other")) as harness:
        task.delay()
        assert [r.queue for r in harness.queued()] == ["other"]


def test_an_app_factory_run_inside_the_harness_cannot_take_the_tiger_to_other_storage() -> None:
    with fake_tiger(tiger) as harness:
        elsewhere = FakeBackend()  # stands for the real Redis a factory would connect to
        with pytest.raises(RuntimeError, match=r"init\(\) would replace it"):
            tiger.init(backend=elsewhere)
        record.delay("still fake")
        assert len(harness.queued(record)) == 1 and elsewhere.client.keys("*") == []

        # the factory given the harness's backend (and its own Config) is welcome
        config = Config(default_queue="factory", allowed_task_modules=("tests",))
        tiger.init(backend=harness.backend, config=config)
        tiger.enqueue(TaskSpec.of(not_registered))
        assert [r.queue for r in harness.queued(not_registered)] == ["factory"]
        assert harness.run_until_idle(raise_errors=True).ran == 2

    with pytest.raises(NotInitialized):  # the block's end restores the lazy Tiger
        record.delay("after")
    app = Tiger()
    with fake_tiger(app):
        pass
    app.init(backend=FakeBackend())  # outside the harness, init is free again
    app.init(backend=FakeBackend())


def test_fake_tiger_takes_a_clock_and_a_prefix() -> None:
    clock = ManualClock(datetime(2030, 6, 1, tzinfo=UTC))
    with fake_tiger(config=Config(prefix="{app}"), clock=clock) as harness:
        assert harness.clock is clock and harness.now == datetime(2030, 6, 1, tzinfo=UTC)
        harness.tiger.enqueue(TaskSpec.of(not_registered))
        assert harness.backend.client.keys("{app}:queued") == ["{app}:queued"]
        assert harness.run_until_idle().ran == 1


def test_a_harness_needs_a_fake_backend_and_a_manual_clock() -> None:
    with pytest.raises(TypeError, match="ManualClock"):
        TigerHarness(Tiger(FakeBackend(), clock=SystemClock()))
    with pytest.raises(NotInitialized):
        TigerHarness(Tiger())


# --- the pytest plugin -----------------------------------------------------------------------


class TestAStandaloneTiger:
    @pytest.fixture
    def typedtiger_app(self) -> Tiger | None:
        return None  # asked for explicitly: a fresh Tiger of the test's own

    @pytest.fixture
    def typedtiger_config(self) -> Config:
        return Config(allowed_task_modules=("tests",))  # runs functions of tests by name

    def test_the_harness_fixture_is_a_fresh_tiger(self, typedtiger_harness: TigerHarness) -> None:
        assert typedtiger_harness.tiger is not tiger
        assert typedtiger_harness.tiger.registrations == {}
        assert typedtiger_harness.now == START
        typedtiger_harness.tiger.enqueue(TaskSpec.of(not_registered))
        assert typedtiger_harness.run_until_idle().ran == 1
        assert CALLS == [("not_registered", None)]


def _plugin_args(request: pytest.FixtureRequest) -> list[str]:
    # hypothesis's plugin would import all of hypothesis in the inner session: seconds.
    args = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    # Loaded through the entry point when typedtiger is installed, else with -p: never both.
    if request.config.pluginmanager.has_plugin("typedtiger"):
        return args
    return [*args, "-p", "typedtiger.testing"]


def test_the_ini_option_binds_the_application_tiger(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    pytester.makeini("[pytest]\ntypedtiger_app = plugin_demo_app:tiger\n")
    pytester.makepyfile(
        plugin_demo_app="""
            from typedtiger import Tiger
            tiger = Tiger()
            DONE = []

            @tiger.task
            def greet(name: str) -> None:
                DONE.append(name)
        """,
        test_app="""
            import plugin_demo_app
            from typedtiger import Config
            import pytest

            def test_bound(typedtiger_harness):
                assert typedtiger_harness.tiger is plugin_demo_app.tiger
                plugin_demo_app.greet.delay("ada")
                assert typedtiger_harness.run_until_idle().ran == 1
                assert plugin_demo_app.DONE == ["ada"]

            class TestOtherConfig:
                @pytest.fixture
                def typedtiger_config(self):
                    return Config(default_queue="elsewhere")

                def test_config(self, typedtiger_harness):
                    plugin_demo_app.greet.delay("bob")
                    assert [r.queue for r in typedtiger_harness.queued()] == ["elsewhere"]
        """,
    )
    pytester.syspathinsert()

    result = pytester.runpytest(*_plugin_args(request))

    result.assert_outcomes(passed=2)


@pytest.mark.redis
def test_without_configuration_the_plugin_never_writes_to_the_apps_redis(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, redis_db: redis.Redis[str]
) -> None:
    # an application whose Tiger points at a real Redis (the test database), no typedtiger_app
    pytester.makepyfile(
        plugin_redis_app=f"""
            from typedtiger import Tiger
            tiger = Tiger.from_url({REDIS_URL!r})

            @tiger.task
            def greet(name: str) -> None:
                pass
        """,
        test_unit="""
            import plugin_redis_app

            def test_delay_in_a_unit_test(typedtiger_harness):
                plugin_redis_app.greet.delay("ada")
                plugin_redis_app.tiger.delay(plugin_redis_app.greet, ["bob"])
                typedtiger_harness.run_until_idle()
        """,
    )
    pytester.syspathinsert()

    result = pytester.runpytest(*_plugin_args(request))

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*typedtiger_harness does not know your application's Tiger*",
            '*typedtiger_app = "myapp.tasks:tiger"*',
        ]
    )
    assert redis_db.keys("*") == []

    # the control: the same app, outside the harness, does write to that database
    pytester.makepyfile(
        test_unit="""
            import plugin_redis_app

            def test_delay_outside_the_harness():
                try:
                    plugin_redis_app.greet.delay("ada")
                finally:  # the inner session runs in this process: leave no socket open
                    plugin_redis_app.tiger.backend.client.close()
        """
    )
    pytester.runpytest(*_plugin_args(request)).assert_outcomes(passed=1)
    assert redis_db.keys("t:queued") == ["t:queued"]


def test_an_ini_option_naming_something_else_is_a_usage_error(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    pytester.makeini("[pytest]\ntypedtiger_app = os:path\n")
    pytester.makepyfile("def test_it(typedtiger_harness):\n    pass\n")

    result = pytester.runpytest(*_plugin_args(request))

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*typedtiger_app = 'os:path' is a *, not a Tiger*"])


def test_the_module_imports_without_pytest_and_without_side_effects() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pytest"] = None  # importing pytest now raises ImportError
        import typedtiger.testing as testing
        assert not hasattr(testing, "typedtiger_harness")
        assert "fakeredis" not in sys.modules, "fakeredis is imported only when needed"
        import structlog
        assert not structlog.is_configured()
        with testing.fake_tiger() as harness:
            assert harness.run_until_idle().ran == 0
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
