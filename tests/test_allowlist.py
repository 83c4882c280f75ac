"""The allowlist: by default a worker runs registered tasks and the modules it is given, and
refuses any other function a payload names, with an execution record saying how to allow it.

Hostile payloads written straight into Redis (and what is never imported) are in
test_security.py; the real ``typedtiger worker`` command in test_cli_worker.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from tests import tasks
from tests.conftest import run_worker
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger._allowlist import Allowlist
from typedtiger.backends.fake import FakeBackend
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.exceptions import TaskImportError
from typedtiger.runner import BaseRunner
from typedtiger.spec import Custom

#: The application's Tiger: what is registered here is vouched for.
app = Tiger()
RAN: list[str] = []


def retry_in_five(retry_number: int) -> float:
    return 5.0


class RecordingRunner(BaseRunner):
    def run_single_task(
        self, task: Task, func: Callable[..., object], hard_timeout: float
    ) -> object:
        RAN.append("runner")
        return super().run_single_task(task, func, hard_timeout)


@app.task(runner_class=RecordingRunner)
def registered(label: str) -> None:
    RAN.append(label)


@app.task(retry=Custom.of(retry_in_five))
def registered_failing() -> None:
    raise ValueError("again")


def unregistered(label: str) -> None:
    RAN.append(label)


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


def make(backend: RedisBackend, config: Config | None = None) -> Tiger:
    tiger = Tiger(backend, config)
    tiger.adopt(app)
    return tiger


def refusal(tiger: Tiger, task: Task) -> str:
    """The exception of the refused task's single execution record (it is in ERROR)."""
    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=5)
    (record,) = errored.executions
    assert record.exception_name == "typedtiger.exceptions:TaskImportError"
    assert record.time_started is None  # never started
    return record.exception or ""


# --- Allowlist, the value ------------------------------------------------------------------------


def test_an_allowlist_allows_vouched_names_and_whole_modules() -> None:
    allowlist = Allowlist(modules=("shop.tasks",), vouched=frozenset({"billing:charge"}))
    assert allowlist.allows("billing:charge")
    assert not allowlist.allows("billing:refund")
    assert allowlist.allows("shop.tasks:send") and allowlist.allows("shop.tasks.mail:send")
    assert not allowlist.allows("shop.tasksx:send") and not allowlist.allows("shop:send")
    assert not allowlist.allows("os:system")
    assert Allowlist(any_module=True).allows("os:system")
    assert Allowlist().with_modules(["os"]).allows("os:system")
    assert Allowlist().vouching(["os:system"]).allows("os:system")


def test_a_refused_name_is_never_imported() -> None:
    with pytest.raises(TaskImportError, match="refusing to run function 'tt_nowhere_7f3a:f'"):
        Allowlist().load("tt_nowhere_7f3a:f")  # imported, it would fail differently


def test_an_allowed_module_allows_what_it_defines_not_what_it_imports() -> None:
    allowlist = Allowlist(modules=("tests.tasks",))
    assert allowlist.load("tests.tasks:simple") is tasks.simple
    with pytest.raises(TaskImportError, match=r"leads to 'typedtiger\.tiger:Tiger'"):
        allowlist.load("tests.tasks:Tiger")  # tests.tasks imports Tiger
    assert Allowlist(any_module=True).load("tests.tasks:Tiger") is Tiger


def test_the_tigers_allowlist_follows_its_registrations_and_config() -> None:
    tiger = Tiger(FakeBackend(ManualClock()))
    assert tiger.allowlist == Allowlist()
    tiger.adopt(app)
    assert tiger.allowlist.vouched == {
        "tests.test_allowlist:registered",
        "tests.test_allowlist:RecordingRunner",
        "tests.test_allowlist:registered_failing",
        "tests.test_allowlist:retry_in_five",
    }
    tiger.reconfigure(Config(allowed_task_modules=("tests.tasks",), allow_any_module=True))
    assert tiger.allowlist.modules == ("tests.tasks",) and tiger.allowlist.any_module


# --- a worker ------------------------------------------------------------------------------------


def test_registered_tasks_run_with_what_their_registration_names(backend: RedisBackend) -> None:
    tiger = make(backend)
    tiger.enqueue(registered.spec("hello"))
    failing = tiger.enqueue(registered_failing.spec())

    run_worker(tiger)

    assert RAN == ["runner", "hello"]  # the registered runner class was allowed
    retried = Task.from_id(tiger, "default", TaskState.SCHEDULED, failing.id)  # and the policy
    assert retried.state is TaskState.SCHEDULED


def test_a_function_of_an_allowed_module_runs(backend: RedisBackend) -> None:
    tiger = make(backend, Config(allowed_task_modules=("tests.tasks",)))
    tiger.enqueue(TaskSpec.of(tasks.simple, "allowed"))
    run_worker(tiger)
    assert tasks.CALLS == [("simple", "allowed")]
    assert tiger.get_queue_stats() == {}


def test_any_other_function_is_refused_with_a_record_and_the_worker_goes_on(
    backend: RedisBackend,
) -> None:
    tiger = make(backend, Config(allowed_task_modules=("tests.tasks",)))
    refused = tiger.enqueue(TaskSpec.of(unregistered, "refused"))
    tiger.enqueue(registered.spec("after"))

    run_worker(tiger)

    assert RAN == ["runner", "after"]
    message = refusal(tiger, refused)
    assert "refusing to run function 'tests.test_allowlist:unregistered'" in message
    assert "add 'tests.test_allowlist' there (--allow-module)" in message
    assert "Config.allowed_task_modules" in message and "--allow-any-module" in message
    assert tiger.get_queue_stats() == {"default": {TaskState.ERROR: 1}}


def test_by_default_a_function_of_no_module_given_is_refused(backend: RedisBackend) -> None:
    tiger = make(backend)
    refused = tiger.enqueue(TaskSpec.of(tasks.simple, "x"))
    run_worker(tiger)
    assert tasks.CALLS == []
    assert "'tests.tasks:simple'" in refusal(tiger, refused)


def test_allow_any_module_runs_any_function_and_warns(backend: RedisBackend) -> None:
    tiger = make(backend, Config(allow_any_module=True))
    tiger.enqueue(TaskSpec.of(tasks.simple, "anything"))

    with capture_logs() as logs:
        run_worker(tiger)

    assert tasks.CALLS == [("simple", "anything")]
    (warning,) = [log for log in logs if log["log_level"] == "warning"]
    assert warning["event"].startswith(
        "allow_any_module set: this worker runs any importable function"
    )


def test_no_warning_without_allow_any_module(backend: RedisBackend) -> None:
    with capture_logs() as logs:
        run_worker(make(backend))
    assert [log for log in logs if log["log_level"] == "warning"] == []


# --- eager mode and Task.execute -----------------------------------------------------------------


def test_eager_mode_refuses_too(backend: RedisBackend) -> None:
    tiger = make(backend, Config(always_eager=True))
    with pytest.raises(TaskImportError, match=r"'tests\.tasks:simple'"):
        tiger.enqueue(TaskSpec.of(tasks.simple, "eager"))
    tiger.enqueue(registered.spec("eager"))
    assert tasks.CALLS == [] and RAN == ["runner", "eager"]

    tiger.reconfigure(Config(always_eager=True, allowed_task_modules=("tests.tasks",)))
    tiger.enqueue(TaskSpec.of(tasks.simple, "eager"))
    assert tasks.CALLS == [("simple", "eager")]


def test_task_execute_refuses_too(backend: RedisBackend) -> None:
    tiger = make(backend)
    with pytest.raises(TaskImportError, match=r"'tests\.test_allowlist:unregistered'"):
        Task.from_spec(tiger, TaskSpec.of(unregistered, "here")).execute()
    assert RAN == []
    Task.from_spec(tiger, registered.spec("here")).execute()
    assert RAN == ["runner", "here"]


def test_the_demo_allows_its_own_functions() -> None:
    from typedtiger.cli.demo import run_demo

    lines: list[str] = []
    run_demo(lines.append)
    assert "    divide is in the error state: builtins:ZeroDivisionError: division by zero" in lines
    assert "    worker: done       nightly_report" in lines
