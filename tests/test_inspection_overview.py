"""The overview reads the dashboard shows, on FakeBackend and real Redis: the queues paused now,
the task locks held."""

from __future__ import annotations

import pytest

from tests import tasks
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock


def test_paused_queues_are_those_paused_now(tiger: Tiger, clock: ManualClock) -> None:
    tiger.set_queue_system_lock("long", 60)
    tiger.set_queue_system_lock("short", 5)
    assert tiger.get_paused_queues() == {"long": clock.now() + 60, "short": clock.now() + 5}
    clock.advance(10)
    assert tiger.get_paused_queues() == {"long": clock.now() + 50}
    assert tiger.get_paused_queues(["long", "short", "other"]) == {"long": clock.now() + 50}
    assert tiger.get_paused_queues(["short"]) == {}


def test_held_locks_name_their_task_and_expiry(
    tiger: Tiger, backend: RedisBackend, clock: ManualClock
) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="locked"))
    backend.claim("locked", clock.now(), 1)
    taken = backend.acquire_locks("locked", {task.id: "lock-1"}, clock.now(), 60, clock.now())
    assert taken == {task.id}
    # A value of another form (a TaskTiger worker's token) is listed as it is.
    backend.client.set(f"{backend.prefix}:lockv2:lock-0", "a-token")
    locks, more = tiger.get_held_locks()
    assert not more
    assert [(lock.id, lock.holder, lock.expires) for lock in locks] == [
        ("lock-0", None, None),
        ("lock-1", task.id, clock.now() + 60),
    ]
    assert locks[0].raw == "a-token"
    assert backend.read_locks(["lock-1", "absent", "lock-0"]) == [locks[1], locks[0]]


@pytest.mark.parametrize("limit", [1, 2])
def test_held_locks_are_cut_at_the_limit(tiger: Tiger, backend: RedisBackend, limit: int) -> None:
    for name in ("c", "a", "b"):
        backend.client.set(f"{backend.prefix}:lockv2:{name}", "x|1")
    locks, more = tiger.get_held_locks(limit)
    assert [lock.id for lock in locks] == ["a", "b", "c"][:limit]
    assert more


def test_held_locks_are_those_of_the_tigers_prefix(backend: RedisBackend) -> None:
    """A prefix with glob characters matches itself only."""
    backend.client.set("t*:lockv2:mine", "x|1")
    backend.client.set("tt:lockv2:other", "x|1")
    locks, _ = Tiger(backend, Config(prefix="t*")).get_held_locks()
    assert [lock.id for lock in locks] == ["mine"]
