"""KeyLayout keeps the key lists it builds per queue (a script call per task would build them
again), bounded for the many queues of subqueues, and still refuses a bad queue name."""

from __future__ import annotations

import pytest

from typedtiger.backends._redis_keys import _KEPT_QUEUES, KeyLayout
from typedtiger.backends.base import NewTask, TaskState


@pytest.mark.parametrize("sharded", [False, True])
def test_each_queues_keys_are_its_own_past_the_kept_number(sharded: bool) -> None:
    layout = KeyLayout("t", sharded=sharded)
    queues = [f"q{n}" for n in range(_KEPT_QUEUES + 10)]
    for queue in queues * 2:  # (the second pass after the kept lists were dropped once)
        keys = layout.queue_keys(queue)
        assert layout.state(TaskState.QUEUED, queue) in keys
        assert layout.names(TaskState.ERROR, queue) in keys
        assert len(keys) == 2 * len(TaskState)
    assert layout.queue_keys("q1") is layout.queue_keys("q1")


def test_an_enqueues_keys_name_each_of_its_queues_and_tasks() -> None:
    layout = KeyLayout("t", sharded=True)
    tasks = [NewTask(id=f"id{n}", queue=f"q{n % 2}", payload="{}", due=0.0) for n in range(3)]

    keys = layout.enqueue_keys(tasks)

    for queue in ("q0", "q1"):
        assert layout.state(TaskState.SCHEDULED, queue) in keys
        assert layout.state(TaskState.ERROR, queue) not in keys
    assert [key for key in keys if ":task:" in key] == [layout.task(t.queue, t.id) for t in tasks]


def test_a_queue_name_the_layout_refuses_is_refused_every_time() -> None:
    layout = KeyLayout("t", sharded=True)
    for _ in range(2):
        with pytest.raises(ValueError, match="no braces"):
            layout.queue_keys("a{b}")
