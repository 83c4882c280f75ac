"""A backend's Redis keys by name, in the layout it lays them out in: classic under the prefix
(docs/redis-layout.md) or, on a Redis Cluster with a plain prefix, each queue's under
``P:{<queue>}`` (docs/scaling.md, "Per-queue key layout"). Tests that read or plant keys name
them through here, so the same assertion holds on every backend of the ``backend`` fixture."""

from __future__ import annotations

from typedtiger.backends._redis_keys import KeyLayout
from typedtiger.backends.base import TaskState
from typedtiger.backends.redis import RedisBackend

__all__ = ["file_task", "layout", "stored_keys", "task_key", "task_keys"]


def layout(backend: RedisBackend) -> KeyLayout:
    """The layout ``backend`` names its keys by."""
    return backend._keys


def task_key(backend: RedisBackend, queue: str, task_id: str, suffix: str = "") -> str:
    """The key of task ``task_id`` of ``queue``, or one of its own (``suffix``: ``:executions``,
    ``:executions_count``, ``:worker_losses``, ``:result``, ...)."""
    return layout(backend).task(queue, task_id) + suffix


def task_keys(backend: RedisBackend) -> list[str]:
    """Every key of every task (each queue's, on a cluster), sorted."""
    keys = layout(backend)
    pattern = f"{keys.prefix}:{{*}}:task:*" if keys.sharded else f"{keys.prefix}:task:*"
    return sorted(backend.client.keys(pattern))


def stored_keys(backend: RedisBackend) -> list[str]:
    """Every key under the backend's prefix (on a cluster, of every primary), sorted."""
    return sorted(backend.client.keys(f"{layout(backend).prefix}:*"))


def file_task(
    backend: RedisBackend, state: TaskState, queue: str, task_id: str | bytes, score: float = 1.0
) -> None:
    """File ``task_id`` in ``queue``'s sorted set of ``state`` (and its queue name where the
    layout keeps names: the set of ``state``, and per queue the registry), as a client writing
    straight into storage would. Its payload is the caller's to write."""
    keys = layout(backend)
    backend.client.zadd(keys.state(state, queue), {task_id: score})
    backend.client.sadd(keys.names(state, queue), queue)
    if keys.sharded:
        backend.client.sadd(keys.registry(), queue)
