"""RedisBackend's reads for inspection: one task (with its executions), a page of a queue,
where a task id is filed, queue sizes, queue pauses, the oldest task of each queue, the task
locks held. Read undecoded, so that a broken task is listed with what is wrong with it. A part
of ``RedisBackend``, kept apart."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, cast

import redis
from redis.client import NEVER_DECODE
from redis.cluster import RedisCluster

from typedtiger._priorities import MAX_PRIORITY, MIN_PRIORITY, PRIORITY_STEP
from typedtiger.backends._redis_connect import is_cluster
from typedtiger.backends._redis_errors import redis_call
from typedtiger.backends._redis_part import RedisPart
from typedtiger.backends._redis_wire import escaped, num, queue_names, stored_count, undecoded
from typedtiger.backends.base import (
    StoredTask,
    TaskDependencies,
    TaskExecutions,
    TaskRef,
    TaskState,
)
from typedtiger.backends.locks import HeldLock

__all__ = ["RedisInspection", "queue_stored_reads", "stored_tasks"]

_ALL_STATES: Final = tuple(TaskState)
#: Priority levels, the highest first (the lowest queued scores).
_LEVELS: Final = tuple(range(MAX_PRIORITY, MIN_PRIORITY - 1, -1))
#: Keys SCAN looks at per call: few round trips over a large keyspace, each one short.
_SCAN_COUNT: Final = 5000


def _pairs(reply: Sequence[Any]) -> list[tuple[Any, Any]]:
    """A WITHSCORES reply as (member, score) pairs, whichever shape the protocol gave it."""
    if reply and isinstance(reply[0], list | tuple):
        return [(member, score) for member, score in reply]
    return list(zip(reply[::2], reply[1::2], strict=True))


def _held_lock(lock_id: str, value: bytes, queue: str | None) -> HeldLock:
    raw = undecoded(value)
    holder, bar, expiry = raw.rpartition("|")
    try:
        expires = float(expiry) if bar and holder else None
    except ValueError:
        expires = None
    holder_id = None if expires is None else holder
    return HeldLock(id=lock_id, holder=holder_id, expires=expires, raw=raw, queue=queue)


def _refs(fields: dict[str, str]) -> tuple[TaskRef, ...]:
    """A dependencies hash (task id -> queue) as task references, by id."""
    return tuple(TaskRef(queue, task_id) for task_id, queue in sorted(fields.items()))


def queue_stored_reads(
    pipe: Any, task_prefix: str, scored: Sequence[tuple[str, float]], load_executions: int
) -> None:
    """Queue on ``pipe`` (a redis-py pipeline, sync or asyncio) the reads ``stored_tasks``
    parses: each task's payload, executions count and latest executions, undecoded."""
    # (typed here: types-redis leaves Pipeline.execute_command untyped)
    command = cast(Callable[..., object], pipe.execute_command)
    raw = {NEVER_DECODE: True}
    for task_id, _score in scored:
        base = f"{task_prefix}:{task_id}".encode("utf-8", "surrogateescape")
        command("GET", base, **raw)
        command("GET", base + b":executions_count", **raw)
        if load_executions:
            command("LRANGE", base + b":executions", -load_executions, -1, **raw)


def stored_tasks(
    queue: str,
    state: TaskState,
    scored: Sequence[tuple[str, float]],
    load_executions: int,
    replies: Sequence[Any],
) -> list[StoredTask]:
    """The tasks ``queue_stored_reads`` read. Whatever one task's keys hold (bytes that are not
    UTF-8, a key of another type), the others are listed and it is shown as broken."""
    answers = iter(replies)
    tasks = []
    for task_id, score in scored:
        payload, count = next(answers), next(answers)
        executions = next(answers) if load_executions else []
        problems = []
        if isinstance(payload, redis.exceptions.ResponseError):
            problems.append(f"the task key cannot be read: {payload}")
            payload = None
        counted = stored_count(count)
        if counted is None:
            problems.append(f"executions_count holds {escaped(count)}, not a count")
        if isinstance(executions, redis.exceptions.ResponseError):
            problems.append(f"executions cannot be read: {executions}")
            executions = []
        tasks.append(
            StoredTask(
                id=task_id,
                queue=queue,
                state=state,
                score=float(score),
                payload=None if payload is None else undecoded(payload),
                executions=tuple(undecoded(item) for item in executions),
                executions_count=counted or 0,
                broken="; ".join(problems) or None,
            )
        )
    return tasks


class RedisInspection(RedisPart):
    """Inspection reads on ``_client`` under the keys ``_keys`` names (RedisBackend's)."""

    def _stored(
        self,
        queue: str,
        state: TaskState,
        scored: Sequence[tuple[str, float]],
        load_executions: int,
    ) -> list[StoredTask]:
        pipe = self._client.pipeline(transaction=False)
        # (the prefix of the queue's task keys, without its last colon)
        queue_stored_reads(pipe, self._keys.task(queue, "")[:-1], scored, load_executions)
        replies = pipe.execute(raise_on_error=False)
        return stored_tasks(queue, state, scored, load_executions, replies)

    @redis_call
    def get_task(
        self, queue: str, state: TaskState, task_id: str, load_executions: int
    ) -> StoredTask | None:
        score = self._client.zscore(self._keys.state(state, queue), task_id)
        if score is None:
            return None
        return self._stored(queue, state, [(task_id, float(score))], load_executions)[0]

    @redis_call
    def list_tasks(
        self, queue: str, state: TaskState, skip: int, limit: int, load_executions: int
    ) -> tuple[int, list[StoredTask]]:
        key = self._keys.state(state, queue)
        pipe = self._client.pipeline(transaction=False)
        pipe.zcard(key)
        # (undecoded: an id that is not UTF-8, quarantined by a claim, is listed escaped)
        command = cast(Callable[..., object], pipe.execute_command)
        stop = skip + limit - 1
        command("ZREVRANGE", key, skip, stop, "WITHSCORES", **{NEVER_DECODE: True})
        total, reply = pipe.execute()
        scored = [(undecoded(task_id), float(score)) for task_id, score in _pairs(reply)]
        return int(total), self._stored(queue, state, scored, load_executions)

    @redis_call
    def task_executions(self, task_id: str, load: int | None) -> TaskExecutions | None:
        base = self._task_key(task_id)
        if base is None:
            return None
        pipe = self._client.pipeline(transaction=True)  # one consistent read, one round trip
        pipe.exists(base)
        pipe.get(f"{base}:executions_count")
        if load != 0:
            pipe.lrange(f"{base}:executions", 0 if load is None else -load, -1)
        exists, count, *records = pipe.execute()
        if not exists:
            return None
        return TaskExecutions(count=int(count or 0), records=tuple(records[0] if records else ()))

    @redis_call
    def dependencies(self, task_id: str) -> TaskDependencies:
        base = self._task_key(task_id)
        if base is None:
            return TaskDependencies(waiting_for=(), dependents=())
        pipe = self._client.pipeline(transaction=True)  # one consistent read, one round trip
        pipe.hgetall(f"{base}:after")
        pipe.hgetall(f"{base}:dependents")
        waiting_for, dependents = pipe.execute()
        return TaskDependencies(waiting_for=_refs(waiting_for), dependents=_refs(dependents))

    def _task_key(self, task_id: str) -> str | None:
        """The key of the task ``task_id`` (per queue: of the first queue filing it; None if
        none does)."""
        if not self._keys.sharded:
            return self._keys.task("", task_id)
        found = self.find_task(task_id)
        return self._keys.task(found[0][0], task_id) if found else None

    def _named_queues(self, pipe: Any) -> list[list[str]]:
        """Per state, the queues its set of names lists (per queue: every queue registered)."""
        if self._keys.sharded:
            every = self._registry()
            return [every for _ in _ALL_STATES]
        for state in _ALL_STATES:
            self._smembers_undecoded(self._keys.names(state), pipe)
        return [sorted(queue_names(queues)) for queues in pipe.execute()]

    @redis_call
    def find_task(self, task_id: str) -> list[tuple[str, TaskState]]:
        pipe = self._client.pipeline(transaction=False)
        candidates = [
            (queue, state)
            for state, queues in zip(_ALL_STATES, self._named_queues(pipe), strict=True)
            for queue in queues
        ]
        for queue, state in candidates:
            pipe.zscore(self._keys.state(state, queue), task_id)
        found = pipe.execute()
        return [where for where, score in zip(candidates, found, strict=True) if score is not None]

    @redis_call
    def task_ids_starting(self, prefix: str, limit: int) -> list[str]:
        found: set[str] = set()
        for key in self._scan(self._keys.glob("task", prefix)):
            parsed = self._keys.parse(undecoded(key), "task")
            if parsed is not None and parsed[1].startswith(prefix):
                found.add(parsed[1].split(":", 1)[0])  # (also its executions, result)
                if len(found) >= limit:
                    break
        return sorted(found)

    def _scan(self, pattern: str) -> Iterator[bytes]:
        """The keys (undecoded) ``pattern`` matches: on a cluster, of every primary."""
        raw = {NEVER_DECODE: True}
        args = ("MATCH", pattern, "COUNT", _SCAN_COUNT)
        if not is_cluster(self._client):
            cursor: int | bytes = 0
            while True:
                cursor, found = self._client.execute_command("SCAN", cursor, *args, **raw)
                yield from found
                if int(cursor) == 0:
                    return
        cluster = cast("RedisCluster[str]", self._client)
        command: Callable[..., Any] = cluster.execute_command  # (untyped in the stubs)
        for node in cluster.get_primaries():
            cursor = 0
            while True:
                cursors, found = command("SCAN", cursor, *args, target_nodes=node, **raw)
                yield from found
                cursor = cursors[node.name]
                if int(cursor) == 0:
                    break

    @redis_call
    def queue_sizes(self, queues: Sequence[str] | None) -> dict[str, dict[TaskState, int]]:
        pipe = self._client.pipeline(transaction=False)
        if queues is None:
            names = sorted({queue for listed in self._named_queues(pipe) for queue in listed})
        else:
            names = list(queues)
        for queue in names:
            for state in _ALL_STATES:
                pipe.zcard(self._keys.state(state, queue))
        counts = iter(pipe.execute())
        sizes = {queue: {state: int(next(counts)) for state in _ALL_STATES} for queue in names}
        if queues is None and self._keys.sharded:  # (the registry keeps emptied queues)
            return {queue: counts for queue, counts in sizes.items() if any(counts.values())}
        return sizes

    @redis_call
    def oldest_queued(self, queues: Sequence[str], now: float) -> dict[str, float]:
        # A queued score is its time less PRIORITY_STEP per priority level: the lowest score of
        # each level's window (tasks queued less than half a step ago) is that level's oldest.
        pipe = self._client.pipeline(transaction=False)
        half = PRIORITY_STEP / 2
        for queue in queues:
            key = self._keys.state(TaskState.QUEUED, queue)
            for level in _LEVELS:
                top = now - level * PRIORITY_STEP
                low = "-inf" if level == MAX_PRIORITY else f"({num(top - half)}"
                high = "+inf" if level == MIN_PRIORITY else num(top + half)
                pipe.zrangebyscore(key, low, high, start=0, num=1, withscores=True)
        replies = iter(pipe.execute())
        oldest: dict[str, float] = {}
        for queue in queues:
            times = [
                float(head[0][1]) + level * PRIORITY_STEP
                for level, head in zip(_LEVELS, (next(replies) for _ in _LEVELS), strict=True)
                if head
            ]
            if times:
                oldest[queue] = min(times)
        return oldest

    def queue_heads(self, state: TaskState, queues: Sequence[str]) -> dict[str, StoredTask]:
        pipe = self._client.pipeline(transaction=False)
        command = cast(Callable[..., object], pipe.execute_command)
        for queue in queues:
            key = self._keys.state(state, queue)
            command("ZRANGE", key, 0, 0, "WITHSCORES", **{NEVER_DECODE: True})
        heads = {}
        for queue, reply in zip(queues, pipe.execute(), strict=True):
            scored = [(undecoded(task_id), float(score)) for task_id, score in _pairs(reply)]
            if scored:  # (its payload read with it: a queued score is not the queued time)
                heads[queue] = self._stored(queue, state, scored, 0)[0]
        return heads

    @redis_call
    def get_queue_system_locks(self, queues: Sequence[str] | None = None) -> dict[str, float]:
        if queues is not None:
            pipe = self._client.pipeline(transaction=False)
            for queue in queues:
                pipe.zscore(self._keys.qslock(queue), "SYSTEM_LOCK")
            found = zip(queues, pipe.execute(), strict=True)
            return {queue: float(until) for queue, until in found if until is not None}
        if self._keys.sharded:  # (the registry names every queue)
            return self.get_queue_system_locks(self._registry())
        # (the queues found by their keys, then read in one round trip as above)
        keys = (key.decode() for key in self._scan(self._keys.glob("qslock")))
        parsed = (self._keys.parse(key, "qslock") for key in keys)
        return self.get_queue_system_locks([where[1] for where in parsed if where is not None])

    @redis_call
    def held_locks(self, limit: int) -> tuple[list[HeldLock], bool]:
        # (per queue: the locks of every queue, each under its prefix)
        held = {
            parsed
            for key in self._scan(self._keys.glob("lockv2"))
            if (parsed := self._keys.parse(undecoded(key), "lockv2")) is not None
        }
        chosen = sorted(held, key=lambda where: (where[1], where[0]))[:limit]
        return self._read_locks(chosen), len(held) > limit

    @redis_call
    def read_locks(self, lock_ids: Sequence[str], queue: str | None = None) -> list[HeldLock]:
        queues = [queue or ""]
        if queue is None and self._keys.sharded:  # (a lock id of each queue registered)
            queues = self._registry()
        return self._read_locks([(queue, lock_id) for lock_id in lock_ids for queue in queues])

    def _read_locks(self, places: Sequence[tuple[str, str]]) -> list[HeldLock]:
        """The lock keys of these (queue, lock id) that exist, in that order."""
        pipe = self._client.pipeline(transaction=False)
        command = cast(Callable[..., object], pipe.execute_command)
        for queue, lock_id in places:
            key = self._keys.lock(queue, lock_id).encode("utf-8", "surrogateescape")
            command("GET", key, **{NEVER_DECODE: True})
        replies = pipe.execute(raise_on_error=False) if places else []
        return [
            _held_lock(lock_id, value, queue if self._keys.sharded else None)
            for (queue, lock_id), value in zip(places, replies, strict=True)
            if isinstance(value, bytes)  # (gone meanwhile, or a key of another type)
        ]
