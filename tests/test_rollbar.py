"""Error reporting: typedtiger.rollbar's StructlogRollbarHandler (with a fake transport, no
network, no rollbar package needed) and the BaseRunner.on_permanent_error hook."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from tests import tasks
from tests.conftest import run_worker
from typedtiger import Config, TaskSpec, TaskState, Tiger, fixed
from typedtiger.backends.fake import FakeBackend
from typedtiger.clock import ManualClock
from typedtiger.logging import setup_structlog, typedtiger_processor
from typedtiger.rollbar import StructlogRollbarHandler
from typedtiger.runner import DefaultRunner
from typedtiger.serialization import ExecutionRecord
from typedtiger.task import Task


class FakeRollbar:
    """Records what would have been sent to Rollbar."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(
        self,
        message: str,
        level: str,
        extra_data: dict[str, Any],
        payload_data: dict[str, Any],
    ) -> None:
        self.sent.append(
            {"message": message, "level": level, "extra": extra_data, "payload": payload_data}
        )


@pytest.fixture
def sender() -> FakeRollbar:
    return FakeRollbar()


@pytest.fixture
def handler(sender: FakeRollbar) -> StructlogRollbarHandler:
    return StructlogRollbarHandler("typedtiger", send=sender)


@pytest.fixture
def fake() -> Tiger:
    tiger = Tiger(FakeBackend(ManualClock()), Config(allowed_task_modules=("tests",)))
    tiger.adopt(tasks.tiger)
    return tiger


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _failure_event(**changes: Any) -> dict[str, Any]:
    event = {
        "event": "error",
        "func": "tests.tasks:failing",
        "queue": "email.user42",
        "task_id": "abc",
        "exception_name": "builtins:ValueError",
        "exception": "kaput",
        "traceback": "Traceback ...\nValueError: kaput\n",
        "worker_id": "w1",
    }
    event.update(changes)
    return event


# --- the handler as a structlog processor ------------------------------------------------------


def test_processor_reports_a_failure_with_its_grouping(
    handler: StructlogRollbarHandler, sender: FakeRollbar
) -> None:
    event = _failure_event()
    assert handler(None, "error", event) is event
    title = (
        "typedtiger: event=error func=tests.tasks:failing "
        "exception_name=builtins:ValueError queue=email"
    )
    assert sender.sent == [
        {
            "message": title,
            "level": "error",
            "extra": event,
            "payload": {"fingerprint": hashlib.sha256(title.encode()).hexdigest()},
        }
    ]
    # Another subqueue of the same queue groups with it.
    handler(None, "error", _failure_event(queue="email.user7", task_id="def"))
    assert sender.sent[1]["message"] == title
    assert sender.sent[1]["payload"] == sender.sent[0]["payload"]


def test_processor_ignores_what_is_not_an_error_of_a_task(
    handler: StructlogRollbarHandler, sender: FakeRollbar
) -> None:
    handler(None, "warning", _failure_event(event="retrying"))
    handler(None, "info", _failure_event(event="done"))
    without_task = _failure_event()
    del without_task["task_id"]
    handler(None, "error", without_task)
    assert sender.sent == []

    handler(None, "exception", _failure_event(event="task not runnable"))
    handler(None, "critical", _failure_event(event="boom"))
    assert [report["level"] for report in sender.sent] == ["error", "critical"]


def test_level_and_event_filters(sender: FakeRollbar) -> None:
    handler = StructlogRollbarHandler("tt", send=sender, events={"error"})
    handler(None, "error", _failure_event(event="broken task quarantined"))
    assert sender.sent == []
    handler.setLevel(logging.WARNING)
    handler(None, "warning", _failure_event())
    assert [report["level"] for report in sender.sent] == ["warning"]
    batch = _failure_event(task_ids=["a", "b"])
    del batch["task_id"]
    handler(None, "error", batch)
    assert len(sender.sent) == 2


def test_extra_data_is_made_json_safe_and_exc_info_becomes_a_traceback(
    handler: StructlogRollbarHandler, sender: FakeRollbar
) -> None:
    marker = object()
    try:
        raise KeyError("lost")
    except KeyError:
        event = _failure_event(traceback=None, exc_info=True, thing=marker)
        handler(None, "exception", event)
    (report,) = sender.sent
    assert report["extra"]["thing"] == repr(marker)
    assert "exc_info" not in report["extra"]
    assert "KeyError: 'lost'" in report["extra"]["traceback"]
    json.dumps(report["extra"])
    assert event["exc_info"] is True  # the event itself goes on unchanged


def test_a_failing_transport_does_not_break_logging(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("rollbar is down")

    handler = StructlogRollbarHandler("tt", send=broken)
    event = _failure_event()
    assert handler(None, "error", event) is event
    assert "could not report to Rollbar" in capsys.readouterr().err


def test_title_leaves_out_missing_fields(handler: StructlogRollbarHandler) -> None:
    assert handler.format_title({"event": "error", "queue": "a.b.c"}) == (
        "typedtiger: event=error queue=a"
    )


# --- the handler as a logging handler ----------------------------------------------------------


def _record(msg: object, level: int = logging.ERROR, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("typedtiger.worker", level, __file__, 1, msg, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_emit_reads_json_dict_and_extra_records(
    handler: StructlogRollbarHandler, sender: FakeRollbar
) -> None:
    handler.handle(_record(json.dumps(_failure_event())))
    handler.handle(_record(_failure_event(task_id="dict")))
    handler.handle(_record("error", func="f", queue="q", task_id="extra"))
    handler.handle(_record(json.dumps(_failure_event()), level=logging.WARNING))
    handler.handle(_record("not json {"))
    assert [report["extra"]["task_id"] for report in sender.sent] == ["abc", "dict", "extra"]
    assert sender.sent[2]["message"] == "typedtiger: event=error func=f queue=q"


def test_emit_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("rollbar is down")

    StructlogRollbarHandler("tt", send=broken).handle(_record(_failure_event()))
    assert "rollbar is down" in capsys.readouterr().err


# --- with a worker -----------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_structlog")
def test_a_worker_reports_permanent_failures_only(
    fake: Tiger, handler: StructlogRollbarHandler, sender: FakeRollbar
) -> None:
    output = io.StringIO()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            typedtiger_processor,
            handler,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(output),
    )
    retried = fake.enqueue(TaskSpec.of(tasks.failing, "flaky").evolve(retry=fixed(60, 1)))
    failed = fake.enqueue(TaskSpec.of(tasks.failing, "kaput").evolve(queue="email.user1"))
    fake.enqueue(TaskSpec.of(tasks.retry_me, log_error=False).evolve(retry=fixed(60, 1)))

    run_worker(fake)

    (report,) = sender.sent
    assert report["message"] == (
        "typedtiger: event=error func=tests.tasks:failing "
        "exception_name=builtins:ValueError queue=email"
    )
    extra = report["extra"]
    assert (extra["task_id"], extra["queue"]) == (failed.id, "email.user1")
    assert extra["exception"] == "kaput"
    assert "ValueError: kaput" in extra["traceback"]

    # The retries run out an hour later: now those are reported (log_error=False is not).
    assert isinstance(fake.clock, ManualClock)
    fake.clock.advance(3600)
    run_worker(fake)
    assert [r["extra"]["task_id"] for r in sender.sent] == [failed.id, retried.id]
    assert fake.get_queue_stats() == {
        "default": {TaskState.ERROR: 1},
        "email.user1": {TaskState.ERROR: 1},
    }
    assert "retrying" in output.getvalue()


@pytest.mark.usefixtures("restore_structlog")
def test_a_quarantined_payload_is_reported(
    fake: Tiger, handler: StructlogRollbarHandler, sender: FakeRollbar
) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            handler,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(io.StringIO()),
    )
    broken = fake.enqueue(TaskSpec.of(tasks.simple))
    assert isinstance(fake.backend, FakeBackend)
    fake.backend.client.set(f"t:task:{broken.id}", "garbage")
    run_worker(fake)
    (report,) = sender.sent
    assert report["message"] == "typedtiger: event=broken task quarantined queue=default"
    assert report["extra"]["task_id"] == broken.id


@pytest.mark.usefixtures("restore_structlog")
def test_the_readme_recipe_through_the_standard_library(fake: Tiger, sender: FakeRollbar) -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            typedtiger_processor,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    rollbar_handler = StructlogRollbarHandler("TaskTiger", send=sender)
    rollbar_handler.setLevel(logging.ERROR)
    logger = logging.getLogger("typedtiger")
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(rollbar_handler)
    try:
        failed = fake.enqueue(TaskSpec.of(tasks.failing, "via logging"))
        fake.enqueue(TaskSpec.of(tasks.simple))
        run_worker(fake)
    finally:
        logger.removeHandler(rollbar_handler)
        logger.setLevel(previous_level)

    (report,) = sender.sent
    assert report["message"] == (
        "TaskTiger: event=error func=tests.tasks:failing "
        "exception_name=builtins:ValueError queue=default"
    )
    assert report["extra"]["task_id"] == failed.id
    assert "ValueError: via logging" in report["extra"]["traceback"]


@pytest.mark.usefixtures("restore_structlog")
def test_the_docs_recipe_on_top_of_setup_structlog(
    fake: Tiger, handler: StructlogRollbarHandler, sender: FakeRollbar
) -> None:
    output = io.StringIO()
    setup_structlog(stream=output)
    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[*processors[:-1], handler, processors[-1]])

    failed = fake.enqueue(TaskSpec.of(tasks.failing, "json lines"))
    run_worker(fake)

    (report,) = sender.sent
    assert report["extra"]["task_id"] == failed.id
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    assert any(line["event"] == "error" and line["task_id"] == failed.id for line in lines)


# --- the rollbar package -----------------------------------------------------------------------


def test_without_rollbar_the_handler_asks_for_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rollbar", None)
    with pytest.raises(ImportError, match=r"pip install 'typedtiger\[rollbar\]'"):
        StructlogRollbarHandler("tt")
    StructlogRollbarHandler("tt", send=FakeRollbar())  # a transport of its own needs no package


def test_with_rollbar_reports_go_through_report_message(monkeypatch: pytest.MonkeyPatch) -> None:
    rollbar = pytest.importorskip("rollbar")
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def report_message(*args: object, **kwargs: object) -> None:
        calls.append((args, kwargs))

    monkeypatch.setattr(rollbar, "report_message", report_message)
    StructlogRollbarHandler("tt")(None, "error", _failure_event())
    ((args, kwargs),) = calls
    assert args[0] == (
        "tt: event=error func=tests.tasks:failing exception_name=builtins:ValueError queue=email"
    )
    assert args[1] == "error"
    extra = kwargs["extra_data"]
    assert isinstance(extra, dict) and extra["task_id"] == "abc"
    assert isinstance(kwargs["payload_data"], dict) and "fingerprint" in kwargs["payload_data"]


# --- the general hook: BaseRunner.on_permanent_error -------------------------------------------

#: (task id, execution) for every permanent failure RecordingRunner saw.
PERMANENT: list[tuple[str, ExecutionRecord]] = []


class RecordingRunner(DefaultRunner):
    """The docs' recipe: a runner whose on_permanent_error reports (here: records)."""

    def on_permanent_error(self, task: Task, execution: ExecutionRecord) -> None:
        PERMANENT.append((task.id, execution))


def test_on_permanent_error_is_called_once_retries_are_exhausted(fake: Tiger) -> None:
    PERMANENT.clear()
    task = fake.enqueue(
        TaskSpec.of(tasks.failing, "hook").evolve(retry=fixed(60, 1), runner_class=RecordingRunner)
    )
    run_worker(fake)
    assert PERMANENT == []  # a retry is scheduled: not permanent yet

    assert isinstance(fake.clock, ManualClock)
    fake.clock.advance(60)
    run_worker(fake)
    ((task_id, execution),) = PERMANENT
    assert task_id == task.id
    assert execution.exception_name == "builtins:ValueError"
    assert execution.exception == "hook"
    assert execution.traceback is not None and "ValueError: hook" in execution.traceback
    PERMANENT.clear()
