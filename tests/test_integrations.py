"""Integrations: the structlog processor, lazy initialisation (app factories), Flask's CLI.

The forked-child tests use the real Redis at $TYPEDTIGER_TEST_REDIS_URL (the ``redis_db`` fixture
flushes it around each test); everything else runs on FakeBackend. Tests reload the application
modules (tests/integration_app.py, tests/integration_flask_app.py) so that each starts from a
fresh import with an uninitialised Tiger, as a new process would.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
import redis
import structlog
from structlog.testing import capture_logs
from structlog.typing import EventDict

from tests import integration_app
from tests.conftest import REDIS_URL
from typedtiger import Config, Task, TaskState, Tiger
from typedtiger.backends.fake import FakeBackend
from typedtiger.backends.redis import RedisBackend
from typedtiger.exceptions import NotInitialized, TaskNotFound
from typedtiger.executor import ForkExecutor, SyncExecutor
from typedtiger.logging import setup_structlog, typedtiger_processor

needs_flask = pytest.mark.skipif(
    importlib.util.find_spec("flask") is None, reason="the flask extra is not installed"
)

LOG_TASK = "tests.integration_app:log_inside"
TASK_KEYS = ("task_id", "task_ids", "queue", "func", "task_func")


# --- helpers and fixtures -----------------------------------------------------------------


class JsonLinesSink:
    """A structlog processor appending every event to a file, then passing it on.

    A forked child inherits the structlog configuration, so its events land in the file too.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, _logger: object, _method: str, event_dict: EventDict) -> EventDict:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(dict(event_dict), default=repr) + "\n")
        return event_dict

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text("utf-8").splitlines()]


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Tests here configure structlog; put back what was configured before."""
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    yield
    if was_configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()


@pytest.fixture
def app_module() -> Iterator[None]:
    """tests.integration_app, freshly imported: its Tiger is not initialised yet."""
    importlib.reload(integration_app)
    yield
    importlib.reload(integration_app)


@pytest.fixture
def flask_app_module() -> Iterator[None]:
    """tests.integration_flask_app, freshly imported (skips without the flask extra)."""
    pytest.importorskip("flask")
    from tests import integration_flask_app

    importlib.reload(integration_flask_app)
    yield
    importlib.reload(integration_flask_app)


def outside(marker: str) -> None:
    """A log event emitted by the test itself, outside any task."""
    structlog.get_logger("tests.outside").info("outside task", marker=marker)


def named(events: Sequence[Mapping[str, Any]], event: str) -> list[dict[str, Any]]:
    return [dict(item) for item in events if item.get("event") == event]


def assert_no_task_keys(events: list[dict[str, Any]]) -> None:
    assert events
    for event in events:
        assert not set(TASK_KEYS) & set(event), event


def assert_inside_events(events: Sequence[Mapping[str, Any]], task_id: str, marker: str) -> None:
    inside = named(events, "inside task")
    assert len(inside) == 1, events
    assert inside[0]["marker"] == marker
    assert inside[0]["task_id"] == task_id
    assert inside[0]["queue"] == "app.logging"
    assert inside[0]["func"] == LOG_TASK
    assert inside[0]["task_func"] == LOG_TASK  # TaskTiger's key
    assert "task_ids" not in inside[0]


# --- 1. the structlog processor -----------------------------------------------------------


@pytest.mark.usefixtures("app_module")
def test_processor_tags_events_of_a_task_run_by_a_sync_worker() -> None:
    app = integration_app.create_app(integration_app.Settings(backend=FakeBackend()))
    with capture_logs(processors=[typedtiger_processor]) as logs:
        outside("before")
        task = integration_app.log_inside.delay("sync")
        app.tiger.run_worker(executor=SyncExecutor(), once=True)
        outside("after")

    assert_inside_events(logs, task.id, "sync")
    assert named(logs, "inside task")[0]["pid"] == os.getpid()
    assert_no_task_keys(named(logs, "outside task"))
    # the worker's own events around the task are outside it too
    assert_no_task_keys(named(logs, "ready") + named(logs, "stopped"))
    assert app.tiger.get_queue_stats() == {}


@pytest.mark.usefixtures("app_module")
def test_processor_tags_events_of_an_eager_task() -> None:
    integration_app.create_app(
        integration_app.Settings(backend=FakeBackend(), queue_config=Config(always_eager=True))
    )
    with capture_logs(processors=[typedtiger_processor]) as logs:
        outside("before")
        task = integration_app.log_inside.delay("eager")
        outside("after")

    assert task.state is None  # run at enqueue time, never stored
    assert_inside_events(logs, task.id, "eager")
    assert_no_task_keys(named(logs, "outside task"))


@pytest.mark.redis
@pytest.mark.usefixtures("app_module")
def test_processor_tags_events_emitted_in_a_forked_child(
    redis_db: redis.Redis[str], tmp_path: Path
) -> None:
    app = integration_app.create_app(integration_app.Settings(redis_url=REDIS_URL))
    sink = JsonLinesSink(tmp_path / "events.jsonl")
    # The child inherits this configuration: its events reach the file, not `logs`.
    with capture_logs(processors=[typedtiger_processor, sink]) as logs:
        outside("before")
        task = integration_app.log_inside.delay("fork")
        assert redis_db.exists(f"t:task:{task.id}")  # stored in the test database
        app.tiger.run_worker(executor=ForkExecutor(), once=True)
        outside("after")

    events = sink.events()
    assert_inside_events(events, task.id, "fork")
    assert named(events, "inside task")[0]["pid"] != os.getpid()
    assert named(logs, "inside task") == []  # it was emitted in the child, not here
    assert_no_task_keys(named(events, "outside task"))
    assert_no_task_keys(named(events, "ready") + named(events, "stopped"))
    assert app.tiger.get_queue_stats() == {}  # done, not errored
    backend = app.tiger.backend
    assert isinstance(backend, RedisBackend)
    backend.close()
    backend.client.close()


@pytest.mark.usefixtures("app_module")
def test_setup_structlog_writes_json_lines_with_the_task(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    setup_structlog(stream=stream)
    integration_app.create_app(
        integration_app.Settings(backend=FakeBackend(), queue_config=Config(always_eager=True))
    )
    outside("before")
    task = integration_app.log_inside.delay("json")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert_inside_events(lines, task.id, "json")
    inside = named(lines, "inside task")[0]
    assert inside["level"] == "info"
    assert "timestamp" in inside
    assert_no_task_keys(named(lines, "outside task"))
    assert capsys.readouterr().err == ""


def test_tiger_setup_structlog_flag_logs_json_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    tiger = Tiger(FakeBackend(), Config(always_eager=True), setup_structlog=True)
    tiger.adopt(integration_app.tiger)
    outside("before")
    task = tiger.enqueue(integration_app.log_inside.spec("flag"))

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert_inside_events(lines, task.id, "flag")
    assert_no_task_keys(named(lines, "outside task"))


def test_creating_a_tiger_leaves_logging_alone() -> None:
    structlog.reset_defaults()
    Tiger(FakeBackend())
    Tiger()
    assert not structlog.is_configured()


def test_processor_adds_nothing_outside_a_task() -> None:
    event: EventDict = {"event": "hello"}
    assert typedtiger_processor(None, "info", event) == {"event": "hello"}


# --- 2. lazy initialisation ----------------------------------------------------------------


@pytest.mark.usefixtures("app_module")
def test_a_lazy_tiger_refuses_work_before_init_but_registers_tasks() -> None:
    tiger = integration_app.tiger
    # import-time work needs no backend
    assert tiger.registration("tests.integration_app:greet") is not None
    assert integration_app.greet("direct") == "hello direct"
    assert integration_app.greet.spec("spec").args == ("spec",)

    with pytest.raises(NotInitialized, match=r"call tiger\.init\(backend=\.\.\., config=\.\.\.\)"):
        integration_app.greet.delay("too early")
    with pytest.raises(NotInitialized):
        tiger.enqueue(integration_app.greet.spec("too early"))
    with pytest.raises(NotInitialized):
        tiger.get_queue_stats()
    with pytest.raises(NotInitialized):
        tiger.run_worker(executor=SyncExecutor(), once=True)
    with pytest.raises(NotInitialized):
        _ = tiger.config
    assert integration_app.CALLS == [("greet", "direct")]


@pytest.mark.usefixtures("app_module")
def test_init_again_rebinds_the_tiger_and_leaves_the_old_backend_alone() -> None:
    # an application factory run once per test: each run initialises the module's Tiger
    first, second = FakeBackend(), FakeBackend()
    app = integration_app.create_app(integration_app.Settings(backend=first))
    before = integration_app.greet.delay("ada")

    again = integration_app.create_app(
        integration_app.Settings(backend=second, queue_config=Config(prefix="second"))
    )
    after = integration_app.greet.delay("bob")

    assert again.tiger is app.tiger
    assert app.tiger.config.prefix == "second"
    assert second.client.keys("t:*") == []  # the new Config's prefix is in force
    assert app.tiger.get_queue_sizes("app")[TaskState.QUEUED] == 1
    with pytest.raises(TaskNotFound):  # a handle made before now looks in the new backend
        before.n_executions()
    # the old backend is neither closed nor changed: its task is still there, readable
    _, stored = Task.tasks_from_queue(Tiger(first), "app", TaskState.QUEUED)
    assert [task.id for task in stored] == [before.id]
    assert after.id != before.id

    app.tiger.run_worker_with_args(["--executor", "sync", "--exit-after", "idle"])
    assert integration_app.CALLS == [("greet", "bob")]


@pytest.mark.usefixtures("app_module")
def test_after_init_delay_works_and_a_worker_runs_the_task() -> None:
    app = integration_app.create_app(
        integration_app.Settings(backend=FakeBackend(), queue_config=Config(default_queue="x"))
    )
    task = integration_app.greet.delay("ada")
    assert task.state == TaskState.QUEUED
    assert task.queue == "app"
    assert app.tiger.get_queue_sizes("app")[TaskState.QUEUED] == 1
    assert integration_app.CALLS == []

    # as a worker entry point would: `create_app(...).tiger.run_worker_with_args(sys.argv[1:])`
    app.tiger.run_worker_with_args(["--executor", "sync", "--exit-after", "idle"])

    assert integration_app.CALLS == [("greet", "ada")]
    assert app.tiger.get_queue_stats() == {}


@pytest.mark.usefixtures("app_module")
def test_a_worker_process_can_adopt_an_uninitialised_app_module() -> None:
    # `typedtiger worker -m tests.integration_app`: the app factory never runs there.
    worker = Tiger(FakeBackend())
    worker.enqueue(integration_app.greet.spec("bob"))
    worker.run_worker_with_args(
        ["-m", "tests.integration_app", "--executor", "sync", "--exit-after", "idle"]
    )
    assert integration_app.CALLS == [("greet", "bob")]
    assert worker.get_queue_stats() == {}


# --- 3. Flask --------------------------------------------------------------------------------


@needs_flask
@pytest.mark.usefixtures("flask_app_module")
def test_flask_worker_command_runs_tasks_inside_the_app_context() -> None:
    import flask

    from tests import integration_flask_app as flask_app

    backend = FakeBackend()
    app = flask_app.create_app({"GREETING": "hi from config"}, backend=backend)
    flask_app.record_config.delay("GREETING")
    flask_app.record_config.delay("GREETING")
    assert flask_app.tiger.get_queue_sizes("flask")[TaskState.QUEUED] == 2

    result = app.test_cli_runner().invoke(
        args=["typedtiger", "worker", "--exit-after", "idle", "--executor", "sync"]
    )

    assert result.exit_code == 0, (result.output, result.exception)
    per_task = [("config", "hi from config"), ("fresh g", True), ("teardown", None)]
    seen = flask_app.SEEN
    assert seen == per_task * 2  # a fresh app context around each task
    assert flask_app.tiger.get_queue_stats() == {}
    assert not flask.has_app_context()


@needs_flask
@pytest.mark.usefixtures("flask_app_module")
def test_the_flask_factory_creates_one_app_after_another() -> None:
    # one app per test, as the docs recommend: the factory initialises the Tiger each time
    from tests import integration_flask_app as flask_app

    first_backend, second_backend = FakeBackend(), FakeBackend()
    first = flask_app.create_app({"GREETING": "first"}, backend=first_backend)
    flask_app.record_config.delay("GREETING")
    ran_first = first.test_cli_runner().invoke(
        args=["typedtiger", "worker", "--exit-after", "idle", "--executor", "sync"]
    )
    assert ran_first.exit_code == 0, (ran_first.output, ran_first.exception)

    second = flask_app.create_app({"GREETING": "second"}, backend=second_backend)
    task = flask_app.record_config.delay("GREETING")
    assert second_backend.client.exists(f"t:task:{task.id}")
    assert not first_backend.client.exists(f"t:task:{task.id}")
    ran_second = second.test_cli_runner().invoke(
        args=["typedtiger", "worker", "--exit-after", "idle", "--executor", "sync"]
    )

    assert ran_second.exit_code == 0, (ran_second.output, ran_second.exception)
    configs = [value for kind, value in flask_app.SEEN if kind == "config"]
    assert configs == ["first", "second"]  # each task ran in its own app's context
    assert flask_app.tiger.get_queue_stats() == {}


@needs_flask
@pytest.mark.redis
@pytest.mark.usefixtures("flask_app_module")
def test_flask_worker_command_enters_the_app_context_in_a_forked_child(
    redis_db: redis.Redis[str], tmp_path: Path
) -> None:
    from tests import integration_flask_app as flask_app

    app = flask_app.create_app({"GREETING": "forked hello", "TYPEDTIGER_URL": REDIS_URL})
    out = tmp_path / "out.jsonl"
    task = flask_app.write_config.delay("GREETING", str(out))
    assert redis_db.exists(f"t:task:{task.id}")  # stored in the test database

    result = app.test_cli_runner().invoke(
        args=["typedtiger", "worker", "--exit-after", "idle", "--executor", "fork", "-q", "flask"]
    )

    assert result.exit_code == 0, (result.output, result.exception)
    assert [json.loads(line) for line in out.read_text("utf-8").splitlines()] == [
        {"value": "forked hello"}
    ]
    assert flask_app.tiger.get_queue_stats() == {}
    assert flask_app.SEEN == []  # the context was entered and torn down in the child


@needs_flask
@pytest.mark.usefixtures("flask_app_module")
def test_flask_worker_command_help_and_usage_errors() -> None:
    from tests import integration_flask_app as flask_app

    app = flask_app.create_app(backend=FakeBackend())
    runner = app.test_cli_runner()

    group_help = runner.invoke(args=["typedtiger", "--help"])
    assert group_help.exit_code == 0
    assert "worker" in group_help.output

    worker_help = runner.invoke(args=["typedtiger", "worker", "--help"])
    assert worker_help.exit_code == 0
    assert "--exit-after" in worker_help.output
    assert "app context" in worker_help.output

    bad = runner.invoke(args=["typedtiger", "worker", "--executor", "bogus"])
    assert bad.exit_code == 2
    assert "bogus" in bad.output
    assert "typedtiger worker" in bad.output  # the error names the command the user ran

    unknown = runner.invoke(args=["typedtiger", "worker", "--url", "redis://elsewhere"])
    assert unknown.exit_code == 2
    assert "--url" in unknown.output


@needs_flask
@pytest.mark.usefixtures("flask_app_module")
@pytest.mark.parametrize(
    ("options", "runs"),
    [
        (["-q", "other"], False),
        (["--queues=other"], False),
        (["-e", "flask"], False),
        (["-qflask"], True),
        (["--queues", "flask", "-M", "1", "--no-store-tracebacks"], True),
    ],
)
def test_flask_worker_command_passes_worker_options_through(options: list[str], runs: bool) -> None:
    from tests import integration_flask_app as flask_app

    app = flask_app.create_app(backend=FakeBackend())
    flask_app.record_config.delay("GREETING")
    result = app.test_cli_runner().invoke(
        args=["typedtiger", "worker", "--executor", "sync", "--exit-after", "idle", *options]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert bool(flask_app.SEEN) is runs
    assert flask_app.tiger.get_total_queue_size("flask") == (0 if runs else 1)


@needs_flask
@pytest.mark.usefixtures("flask_app_module")
def test_flask_admin_commands_work_on_the_apps_tiger() -> None:
    from tests import integration_flask_app as flask_app

    app = flask_app.create_app(backend=FakeBackend())
    task = flask_app.record_config.delay("GREETING")
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["typedtiger", "--help"])
    for command in ("worker", "queues", "tasks", "retry", "purge-errors", "pause"):
        assert command in listed.output

    queues = runner.invoke(args=["typedtiger", "queues", "--json"])
    assert queues.exit_code == 0, queues.output
    (row,) = json.loads(queues.output)["queues"]
    assert (row["queue"], row["queued"]) == ("flask", 1)

    tasks = runner.invoke(args=["typedtiger", "tasks", "flask", "queued", "--json"])
    assert tasks.exit_code == 0, tasks.output
    assert task.id in tasks.output

    paused = runner.invoke(args=["typedtiger", "pause", "flask", "--for", "1h"])
    assert paused.exit_code == 0, paused.output
    assert flask_app.tiger.get_queue_system_lock("flask") is not None

    no_url = runner.invoke(args=["typedtiger", "queues", "--url", "redis://elsewhere"])
    assert no_url.exit_code == 2  # the app's Tiger is used: no connection options


@needs_flask
def test_flask_worker_command_needs_an_initialised_tiger() -> None:
    from flask import Flask

    from typedtiger.flask import init_app

    app = Flask("uninitialised")
    init_app(app, Tiger())
    runner = app.test_cli_runner()
    for args in (["worker", "--exit-after", "idle"], ["queues"]):
        result = runner.invoke(args=["typedtiger", *args])
        assert result.exit_code == 1, result.output
        assert "tiger.init(backend=..., config=...)" in result.output
        assert "flask typedtiger" in result.output


@needs_flask
def test_init_app_registers_the_tiger_and_takes_extra_commands() -> None:
    from collections.abc import Callable

    from flask import Flask

    from typedtiger.flask import get_tiger, init_app

    tiger = Tiger(FakeBackend())
    tiger.delay(integration_app.greet, args=["x"])

    def register(group: click.Group, make_tiger: Callable[[], Tiger]) -> None:
        @group.command("sizes")
        def sizes() -> None:
            click.echo(json.dumps(make_tiger().get_queue_stats()))

    app = Flask("extended")
    group = init_app(app, tiger, name="tt", admin=False, extra_commands=register)

    assert sorted(group.commands) == ["sizes", "worker"]
    assert get_tiger(app) is tiger
    with app.app_context():
        assert get_tiger() is tiger
    with pytest.raises(RuntimeError, match="init_app"):
        get_tiger(Flask("other"))
    result = app.test_cli_runner().invoke(args=["tt", "sizes"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"default": {"queued": 1}}


@needs_flask
@pytest.mark.usefixtures("app_module")
def test_app_context_config_puts_the_app_context_first_once() -> None:
    import flask

    from typedtiger.flask import app_context_config, worker_tiger

    app = flask.Flask("ordered")
    entered: list[str | None] = []

    @contextmanager
    def needs_app() -> Iterator[None]:
        entered.append(flask.current_app.name if flask.has_app_context() else None)
        yield

    config = app_context_config(app, Config(child_context_managers=(needs_app,)))
    assert config.child_context_managers == (app.app_context, needs_app)
    assert app_context_config(app, config) is config

    already = Tiger(FakeBackend(), config)
    assert worker_tiger(app, already) is already
    already.adopt(integration_app.tiger)
    already.enqueue(integration_app.greet.spec("ordered"))
    already.run_worker(executor=SyncExecutor(), once=True)
    assert entered == ["ordered"]  # the app context is entered before the Config's own
    assert integration_app.CALLS == [("greet", "ordered")]

    tiger = Tiger(FakeBackend())
    tiger.adopt(integration_app.tiger)
    worker = worker_tiger(app, tiger)
    assert worker is not tiger
    assert worker.backend is tiger.backend
    assert worker.clock is tiger.clock
    assert worker.config.child_context_managers == (app.app_context,)
    assert worker.registration("tests.integration_app:greet") is not None
