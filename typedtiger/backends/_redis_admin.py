"""RedisBackend's administration: removing and moving one task, purging errored tasks, and
pausing queues (the queue system lock). A part of ``RedisBackend``, kept apart."""

from __future__ import annotations

from typedtiger.backends._redis_errors import redis_call
from typedtiger.backends._redis_part import RedisPart
from typedtiger.backends._redis_wire import num
from typedtiger.backends.base import TaskState

__all__ = ["RedisAdmin"]


class RedisAdmin(RedisPart):
    """Administration on ``_client`` under the keys ``_keys`` names (RedisBackend's)."""

    @redis_call
    def remove(self, queue: str, state: TaskState, task_id: str, now: float) -> bool:
        keys = [*self._keys.queue_keys(queue), self._keys.task(queue, task_id)]
        return bool(
            self._run(
                "remove", keys=keys, args=[queue, state.value, task_id, num(now)], queue=queue
            )
        )

    @redis_call
    def move(
        self,
        queue: str,
        from_state: TaskState,
        task_id: str,
        to_state: TaskState,
        when: float,
        publish: bool,
    ) -> bool:
        args = [queue, from_state.value, task_id, to_state.value, num(when), int(publish)]
        keys = [*self._keys.queue_keys(queue), self._keys.task(queue, task_id)]
        return bool(self._run("move", keys=keys, args=args, queue=queue))

    @redis_call
    def set_queue_system_lock(self, queue: str, until: float) -> None:
        self._register(queue)  # (per queue: paused queues are found in the registry)
        key = self._keys.qslock(queue)
        pipe = self._client.pipeline(transaction=True)
        pipe.zadd(key, {"SYSTEM_LOCK": until})
        pipe.persist(key)  # the pause lasts until `until`, however long; slots expire by score
        pipe.execute()

    @redis_call
    def clear_queue_system_lock(self, queue: str) -> None:
        self._client.zrem(self._keys.qslock(queue), "SYSTEM_LOCK")

    @redis_call
    def purge_errors(self, queue: str, before: float | None, limit: int | None) -> int:
        bound = "+inf" if before is None else num(before)
        args = [queue, bound, -1 if limit is None else limit]
        return int(
            self._run("purge_errors", keys=self._keys.queue_keys(queue), args=args, queue=queue)
        )
