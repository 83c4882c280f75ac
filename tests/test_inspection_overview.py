"""The overview reads the dashboard shows, on FakeBackend and real Redis: the queues paused now,
the task locks held."""

from __future__ import annotations

import pytest

from tests import tasks
from tests.keys import lock_key
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
    backend.client.set(lock_key(backend, "locked", "lock-0"), "a-token")
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
        backend.client.set(lock_key(backend, "q", name), "x|1")
    locks, more = tiger.get_held_locks(limit)
    assert [lock.id for lock in locks] == ["a", "b", "c"][:limit]
    assert more


def test_held_locks_are_those_of_the_tigers_prefix(backend: RedisBackend) -> None:
    """A prefix with glob characters matches itself only."""
    tiger = Tiger(backend, Config(prefix="t*"))
    backend.client.set(lock_key(tiger, "q", "mine"), "x|1")
    backend.client.set(lock_key(Tiger(backend, Config(prefix="tt")), "q", "other"), "x|1")
    locks, _ = tiger.get_held_locks()
    assert [lock.id for lock in locks] == ["mine"]


def test_per_queue_each_queue_has_locks_of_its_own(tiger: Tiger, clock: ManualClock) -> None:
    """In the per-queue layout (docs/scaling.md; Config(cluster=True) on every backend) a lock
    id names a lock in each queue: listed and read with its queue."""
    tiger = Tiger(tiger.backend, Config(cluster=True, allowed_task_modules=("tests",)))
    ids = {
        queue: tiger.enqueue(TaskSpec.of(tasks.simple, queue).evolve(queue=queue)).id
        for queue in ("b", "a")
    }
    backend = tiger.backend
    for queue, task_id in ids.items():
        backend.claim(queue, clock.now(), 1)
        assert backend.acquire_locks(queue, {task_id: "L"}, clock.now(), 60, clock.now()) == {
            task_id
        }
    locks, more = tiger.get_held_locks()
    assert [(lock.id, lock.queue, lock.holder) for lock in locks] == [
        ("L", "a", ids["a"]),
        ("L", "b", ids["b"]),
    ]
    assert not more
    assert backend.read_locks(["L"]) == locks
    assert backend.read_locks(["L"], queue="b") == locks[1:]


def test_a_hash_tagged_prefix_lists_locks_and_ids_of_every_node(backend: RedisBackend) -> None:
    """One slot (``{t}``, the classic layout), on a cluster too: the keyspace is scanned on
    every primary, undecoded."""
    tiger = Tiger(backend, Config(prefix="{t}", allowed_task_modules=("tests",)))
    task = tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    backend.client.set(lock_key(tiger, "default", "mine"), "x|1")
    locks, _ = tiger.get_held_locks()
    assert [(lock.id, lock.queue, lock.raw) for lock in locks] == [("mine", None, "x|1")]
    assert tiger.backend.task_ids_starting(task.id[:6], 5) == [task.id]
