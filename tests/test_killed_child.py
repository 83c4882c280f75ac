"""A task whose process is killed, on FakeBackend and real Redis: it fails with
``ChildProcessDied`` (its true cause), and ``retry_on=[JobTimeoutException]`` retries it, as
TaskTiger's users rely on to re-run crashed tasks."""

from __future__ import annotations

import signal

import pytest

from tests import worker_tasks
from typedtiger import JobTimeoutException, Task, TaskSpec, TaskState, Tiger, fixed
from typedtiger._allowlist import Allowlist
from typedtiger.exceptions import ChildProcessDied
from typedtiger.executor import ForkExecutor
from typedtiger.serialization import JOB_TIMEOUT_NAME, TaskPayload
from typedtiger.worker import Worker
from typedtiger.worker.job import Failed
from typedtiger.worker.retry import decide

CHILD_DIED = "typedtiger.exceptions:ChildProcessDied"


def _died() -> Failed:
    return Failed(
        time_started=0,
        time_failed=1,
        exception_name=CHILD_DIED,
        exception_mro=(CHILD_DIED, "typedtiger.exceptions:TypedTigerError", "builtins:Exception"),
        message="the task's process was killed by signal SIGKILL (9)",
    )


@pytest.mark.parametrize(
    ("retry_on", "retried"),
    [
        ((JOB_TIMEOUT_NAME,), True),
        (("typedtiger.exceptions:JobTimeoutException",), True),
        ((CHILD_DIED,), True),
        (("builtins:ValueError",), False),
    ],
)
def test_a_dead_child_matches_retry_on_the_hard_timeout(
    retry_on: tuple[str, ...], retried: bool
) -> None:
    payload = TaskPayload(id="t", func="m:f", retry_method=fixed(5, 2), retry_on=retry_on)
    decision = decide(payload, _died(), 1, 100.0, fixed(60, 3), Allowlist())
    assert (decision.to_state is TaskState.SCHEDULED) is retried


def test_a_timeout_name_does_not_match_other_failures() -> None:
    payload = TaskPayload(
        id="t", func="m:f", retry_method=fixed(5, 2), retry_on=(JOB_TIMEOUT_NAME,)
    )
    other = Failed(
        time_started=0,
        time_failed=1,
        exception_name="builtins:ValueError",
        exception_mro=("builtins:ValueError", "builtins:Exception"),
        message="boom",
    )
    assert decide(payload, other, 1, 100.0, fixed(60, 3), Allowlist()).to_state is TaskState.ERROR


@pytest.mark.parametrize("retry_on", [JobTimeoutException, ChildProcessDied])
def test_a_child_killed_by_a_signal_is_retried_by_retry_on(
    tiger: Tiger, retry_on: type[Exception]
) -> None:
    spec = TaskSpec.of(worker_tasks.kill_self, signal.SIGKILL)
    task = tiger.enqueue(spec.evolve(retry=fixed(0, 2), retry_on=[retry_on]))

    # The child writes nothing: its parent records the outcome, so FakeBackend can fork too.
    Worker(tiger, executor=ForkExecutor()).run(once=True)

    errored = Task.from_id(tiger, "default", TaskState.ERROR, task.id, load_executions=5)
    assert [record.exception_name for record in errored.executions] == [CHILD_DIED] * 3
    assert all("SIGKILL" in (record.exception or "") for record in errored.executions)
