"""Runner classes, on FakeBackend and real Redis: what the hooks are given (TaskTiger's hard
timeout). Runners and tasks defined here are importable as ``tests.test_runners:<name>``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import attrs
import pytest

from tests.conftest import run_worker
from typedtiger import Config, Task, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.runner import BatchCall, DefaultRunner

#: (hook, task args, hard timeout) for every hook call.
HOOKS: list[tuple[str, list[str], float]] = []

rtiger = Tiger()


class TimeoutRecordingRunner(DefaultRunner):
    """Records the hard timeout each hook is given."""

    def run_single_task(
        self, task: Task, func: Callable[..., object], hard_timeout: float
    ) -> object:
        HOOKS.append(("single", [str(arg) for arg in task.args], hard_timeout))
        return super().run_single_task(task, func, hard_timeout)

    def run_batch_tasks(
        self, tasks: Sequence[Task], func: Callable[..., object], hard_timeout: float
    ) -> object:
        HOOKS.append(("batch", sorted(str(task.args[0]) for task in tasks), hard_timeout))
        return super().run_batch_tasks(tasks, func, hard_timeout)


def single(label: str) -> None:
    """A task that does nothing."""


@rtiger.task(batch=True, queue="rbatch", runner_class=TimeoutRecordingRunner)
def batch(calls: list[BatchCall]) -> None:
    """A batch task that does nothing."""


@pytest.fixture(autouse=True)
def _clear_hooks() -> Iterator[None]:
    HOOKS.clear()
    yield
    HOOKS.clear()


def _tiger(backend: RedisBackend, config: Config) -> Tiger:
    # single (with the runner class) runs by name, unregistered
    tiger = Tiger(backend, attrs.evolve(config, allowed_task_modules=("tests",)))
    tiger.adopt(rtiger)
    return tiger


def test_hooks_receive_the_hard_timeout(backend: RedisBackend) -> None:
    tiger = _tiger(backend, Config(batch_queues={"rbatch": 5}, default_hard_timeout=42))
    spec = TaskSpec.of(single, "own").evolve(runner_class=TimeoutRecordingRunner)
    tiger.enqueue(spec.evolve(hard_timeout=7))
    tiger.enqueue(TaskSpec.of(single, "default").evolve(runner_class=TimeoutRecordingRunner))
    tiger.enqueue(batch.spec("b1").evolve(hard_timeout=3))
    tiger.enqueue(batch.spec("b2").evolve(hard_timeout=5))
    tiger.enqueue(batch.spec("b3"))

    run_worker(tiger)

    assert sorted(HOOKS) == [
        ("batch", ["b1", "b2", "b3"], 5),  # the largest of the batch's own
        ("single", ["default"], 42),
        ("single", ["own"], 7),
    ]


def test_eager_and_execute_give_the_hooks_the_timeout_a_worker_would(
    backend: RedisBackend,
) -> None:
    tiger = _tiger(backend, Config(always_eager=True, default_hard_timeout=42))
    spec = TaskSpec.of(single, "eager").evolve(runner_class=TimeoutRecordingRunner)
    tiger.enqueue(spec.evolve(hard_timeout=9))
    Task.from_spec(tiger, spec).execute()
    tiger.enqueue(batch.spec("eager batch"))

    assert HOOKS == [
        ("single", ["eager"], 9),
        ("single", ["eager"], 42),
        ("batch", ["eager batch"], 42),
    ]
