"""A backend's Redis keys by name, in the layout it lays them out in: classic under the prefix
(docs/redis-layout.md) or, on a Redis Cluster with a plain prefix, each queue's under
``P:{<queue>}`` (docs/scaling.md, "Per-queue key layout"). Tests that read or plant keys name
them through here, so the same assertion holds on every backend of the ``backend`` fixture.

Keys are listed by SCAN, which redis-py sends to every primary of a cluster (its KEYS goes to
one node only: an assertion that a key is gone would hold there whatever the others keep)."""

from __future__ import annotations

from typedtiger.backends._redis_keys import KeyLayout, glob_escaped
from typedtiger.backends.base import TaskState
from typedtiger.backends.redis import RedisBackend
from typedtiger.tiger import Tiger

__all__ = [
    "file_task",
    "keys_matching",
    "layout",
    "lock_key",
    "stored_keys",
    "task_key",
    "task_keys",
    "wrongtype_key",
]


def _backend(owner: RedisBackend | Tiger) -> RedisBackend:
    backend = owner.backend if isinstance(owner, Tiger) else owner
    assert isinstance(backend, RedisBackend)
    return backend


def layout(owner: RedisBackend | Tiger) -> KeyLayout:
    """The layout the backend (of a Tiger) names its keys by."""
    return _backend(owner)._keys


def task_key(owner: RedisBackend | Tiger, queue: str, task_id: str, suffix: str = "") -> str:
    """The key of task ``task_id`` of ``queue``, or one of its own (``suffix``: ``:executions``,
    ``:executions_count``, ``:worker_losses``, ``:result``, ...)."""
    return layout(owner).task(queue, task_id) + suffix


def lock_key(owner: RedisBackend | Tiger, queue: str, lock_id: str) -> str:
    """The key of the task lock ``lock_id`` (per queue: ``queue``'s)."""
    return layout(owner).lock(queue, lock_id)


def keys_matching(owner: RedisBackend | Tiger, pattern: str) -> list[str]:
    """Every key ``pattern`` matches (on a cluster, of every primary), sorted."""
    return sorted(set(_backend(owner).client.scan_iter(match=pattern, count=1000)))


def task_keys(owner: RedisBackend | Tiger, task_id: str = "") -> list[str]:
    """Every key of the task ``task_id`` (with its executions, result, ...) in whatever queue,
    or, without an id, of every task; sorted."""
    keys = layout(owner)
    return [
        key
        for key in keys_matching(owner, keys.glob("task", task_id))
        if (where := keys.parse(key, "task")) is not None
        and (not task_id or where[1] == task_id or where[1].startswith(f"{task_id}:"))
    ]


def stored_keys(owner: RedisBackend | Tiger) -> list[str]:
    """Every key under the backend's prefix but the per-queue registry of queue names (which
    typedtiger never empties, docs/scaling.md), sorted: what a test expects gone once no task
    is stored."""
    keys = layout(owner)
    found = keys_matching(owner, f"{glob_escaped(keys.prefix)}:*")
    return [key for key in found if not keys.sharded or key != keys.registry()]


def wrongtype_key(owner: RedisBackend | Tiger) -> str:
    """The key queue discovery reads first (the set of queued queue names; per queue the
    registry): a value of another type there makes every listing of queues fail."""
    keys = layout(owner)
    return keys.registry() if keys.sharded else keys.names(TaskState.QUEUED)


def file_task(
    owner: RedisBackend | Tiger,
    state: TaskState,
    queue: str,
    task_id: str | bytes,
    score: float = 1.0,
) -> None:
    """File ``task_id`` in ``queue``'s sorted set of ``state`` (and its queue name where the
    layout keeps names: the set of ``state``, and per queue the registry), as a client writing
    straight into storage would. Its payload is the caller's to write."""
    keys, client = layout(owner), _backend(owner).client
    client.zadd(keys.state(state, queue), {task_id: score})
    client.sadd(keys.names(state, queue), queue)
    if keys.sharded:
        client.sadd(keys.registry(), queue)
