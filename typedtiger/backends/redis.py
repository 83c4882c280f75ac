"""RedisBackend: task storage on Redis, TaskTiger's key layout, one Lua script per state change.

The layout is documented in docs/redis-layout.md. Scripts live in ``backends/lua`` (loaded by
``_scripts``); each is run by EVALSHA through redis-py (which loads it on NOSCRIPT, and applies
the client's retry policy and health checks). Only ``backends/`` imports redis; redis errors
are translated to typedtiger's by ``translate_error`` (``_redis_errors``). How arguments and
replies travel is in ``_redis_wire``, the inspection reads in ``_redis_inspect``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

import redis
import redis.exceptions
from redis.client import NEVER_DECODE, PubSub
from redis.cluster import RedisCluster
from redis.commands.core import Script

from typedtiger.backends._redis_admin import RedisAdmin
from typedtiger.backends._redis_connect import (
    client_from_url,
    client_without_retries,
    connection_kwargs,
    connection_pools,
    is_cluster,
    location,
)
from typedtiger.backends._redis_errors import redis_call, translate_error
from typedtiger.backends._redis_inspect import RedisInspection
from typedtiger.backends._redis_keys import KeyLayout, has_hash_tag
from typedtiger.backends._redis_results import RedisResults
from typedtiger.backends._redis_wire import (
    claimed,
    close_inherited_sockets,
    completion_args,
    enqueue_args,
    enqueued,
    keep_ms,
    lock_pairs,
    num,
    queue_names,
    raise_skipped,
    wire,
)
from typedtiger.backends._redis_workers import RedisWorkers
from typedtiger.backends._scripts import SHAS, SOURCES
from typedtiger.backends.base import (
    Claims,
    ClaimTicket,
    Completion,
    Enqueued,
    Failure,
    NewTask,
    TaskState,
    WorkerBeat,
)
from typedtiger.backends.locks import REQUEUE_LOCK
from typedtiger.backends.redis_async import AsyncRedisBackend, asyncio_twin
from typedtiger.clock import Clock, SystemClock

__all__ = ["RedisBackend", "translate_error"]

_ALL_STATES: Final = tuple(TaskState)


class RedisBackend(RedisInspection, RedisWorkers, RedisResults, RedisAdmin):
    """Tasks stored in Redis under ``prefix`` (TaskTiger's layout).

    ``client`` must be created with ``decode_responses=True``. In a forked child redis-py opens
    fresh connections, so a task may enqueue other tasks through the same client.

    ``cluster`` (default: whether ``client`` is a RedisCluster): no script crosses slots; a
    hash-tagged prefix (``{t}``) keeps all in one, else each queue has its own (docs/scaling.md).
    """

    #: Whether a task may run in a forked child (the child's writes reach the same storage).
    forks_safely: bool = True

    def __init__(
        self,
        client: redis.Redis[str] | RedisCluster[str],
        *,
        prefix: str = "t",
        clock: Clock | None = None,
        cluster: bool | None = None,
    ) -> None:
        if not connection_kwargs(client).get("decode_responses"):
            raise ValueError("RedisBackend needs a client created with decode_responses=True")
        if cluster is False and is_cluster(client):
            raise ValueError("a RedisCluster client needs cluster=True (or None)")
        self._cluster = is_cluster(client) if cluster is None else cluster
        # (RedisCluster sends every command used here under the same name)
        self._client = cast("redis.Redis[str]", client)
        self._prefix = prefix
        self._keys = KeyLayout(prefix, sharded=self._cluster and not has_hash_tag(prefix))
        #: Per queue: the queues named in the registry, and those claimed from.
        self._registered: set[str] = set()
        self._claimed_from: set[str] = set()
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._scripts: dict[str, Script] = {
            name: self._client.register_script(source) for name, source in SOURCES.items()
        }
        self._pubsub: PubSub | None = None
        self._owns_pool = False

    def __repr__(self) -> str:
        # The location only: never the password.
        layout = ", per queue" if self._keys.sharded else ""
        return f"{type(self).__name__}({location(self._client)}, prefix={self._prefix!r}{layout})"

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "t", check: bool = False) -> RedisBackend:
        """A backend on the Redis at ``url``: redis://, rediss://, unix://, redis+cluster://
        (Redis Cluster) or redis+sentinel:// (a Sentinel-managed primary): see
        ``client_from_url``.

        With ``check=True`` the options the connection pool defers to its first connection are
        checked now (no I/O): a bad one is a ValueError naming it."""
        try:
            backend = cls(client_from_url(url), prefix=prefix)
            if check and not backend._cluster:
                pool = backend.client.connection_pool
                pool.connection_class(**pool.connection_kwargs)
        except (TypeError, KeyError, redis.RedisError) as exc:
            if not check:
                raise
            raise ValueError(str(exc)) from exc
        return backend

    @classmethod
    def connect(
        cls,
        *,
        host: str = "localhost",
        port: int = 6379,
        password: str | None = None,
        db: int = 0,
        prefix: str = "t",
    ) -> RedisBackend:
        """A backend on the Redis at ``host:port``, database ``db`` (no I/O until used)."""
        # redis-py >= 7 looks its own version up with importlib.metadata per client otherwise.
        info = getattr(redis, "DriverInfo", None)
        driver = {} if info is None else {"driver_info": info(lib_version=redis.__version__)}
        client = redis.Redis(
            host=host, port=port, password=password, db=db, decode_responses=True, **driver
        )
        return cls(client, prefix=prefix)

    @property
    def client(self) -> redis.Redis[str]:
        """The redis-py client (for inspection in tests and tools)."""
        return self._client

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def prefix(self) -> str:
        return self._prefix

    def without_retries(self) -> RedisBackend:
        """The same storage on a client of its own that does not retry: a failed call raises
        BackendUnavailable at once, for a caller that owns the retry policy (the worker).

        redis-py's default retry (10 tries over a few seconds) would carry a call through a
        short outage with arguments, such as a claim's time, taken before it began. A pool
        of a kind not rebuilt here (a custom class) keeps the client's own retry policy.
        """
        client = client_without_retries(self._client)
        if client is None:
            return self
        backend = type(self)(client, prefix=self._prefix, clock=self._clock, cluster=self._cluster)
        backend._owns_pool = True
        return backend

    def async_twin(self) -> AsyncRedisBackend:
        """The same storage, in the same key layout, through a ``redis.asyncio`` client with
        this client's connection settings (a pool of its own, or on Redis Cluster an asyncio
        cluster client of its own, for the event loop running now)."""
        return asyncio_twin(self._client, prefix=self._prefix, cluster=self._cluster)

    def with_prefix(self, prefix: str, cluster: bool = False) -> RedisBackend:
        if prefix == self._prefix and (self._cluster or not cluster):
            return self
        cluster = self._cluster or cluster
        return type(self)(self._client, prefix=prefix, clock=self._clock, cluster=cluster)

    def _key(self, *parts: str) -> str:  # (the worker registry's)
        return self._keys.key(*parts)

    def _run(
        self,
        name: str,
        args: Sequence[object],
        *,
        decode: bool = True,
        beat: WorkerBeat | None = None,
        keys: Sequence[str] = (),
        queue: str = "",
    ) -> Any:
        """The script's reply; with ``decode=False`` its strings are left as bytes (what a
        UTF-8 decoder would refuse must not fail the whole reply). ``keys``: every key the
        script may touch (see _redis_keys), sent as its KEYS. A ``beat`` is written in the
        same round trip (a pipeline after the script)."""
        # (an id read undecoded goes back as the bytes it was)
        declared = [wire(key) for key in dict.fromkeys(keys)]
        # (the scripts' P: the prefix of ``queue``'s keys, its own in the per-queue layout)
        args = [wire(arg) for arg in (self._keys.base(queue), *args)]
        if beat is not None:
            pipe = self._client.pipeline(transaction=False)
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", SHAS[name], len(declared), *declared, *args
            )
            self.with_beat(pipe, beat)
            reply = pipe.execute(raise_on_error=False)[0]
            if isinstance(reply, redis.exceptions.NoScriptError):
                return self._scripts[name](keys=declared, args=args)
            if isinstance(reply, Exception):
                raise reply
            return reply
        if decode:
            return self._scripts[name](keys=declared, args=args)
        # What Script.__call__ does, with the reply left undecoded.
        raw = {NEVER_DECODE: True}
        command = ("EVALSHA", SHAS[name], len(declared), *declared, *args)
        try:
            return self._client.execute_command(*command, **raw)
        except redis.exceptions.NoScriptError:
            self._client.script_load(SOURCES[name])  # type: ignore[no-untyped-call]
            return self._client.execute_command(*command, **raw)

    # --- producing ----------------------------------------------------------------------

    @redis_call
    def enqueue(self, tasks: Sequence[NewTask], now: float, publish: bool) -> list[Enqueued]:
        if not self._keys.sharded:
            return self._enqueue(tasks, self._keys.enqueue_keys(tasks), now, publish)
        # Per queue: a call per queue (in its slot), the queue first named in the registry;
        # every call's keys named first, so that a wait across queues is refused before any
        # task is stored.
        groups = [list(group) for _, group in itertools.groupby(tasks, lambda t: t.queue)]
        calls = [(group, self._keys.enqueue_keys(group)) for group in groups]
        results: list[Enqueued] = []
        for group, keys in calls:
            self._register(group[0].queue)
            results += self._enqueue(group, keys, now, publish)
        return results

    def _enqueue(
        self, tasks: Sequence[NewTask], keys: list[str], now: float, publish: bool
    ) -> list[Enqueued]:
        if not tasks:
            return []
        # Undecoded: a stored payload the reply carries may be bytes UTF-8 refuses.
        reply = self._run(
            "enqueue",
            keys=keys,
            args=enqueue_args(tasks, now, publish),
            decode=False,
            queue=tasks[0].queue,
        )
        return enqueued(tasks, now, reply)

    # --- consuming ----------------------------------------------------------------------

    @redis_call
    def queues_with_tasks(self, state: TaskState) -> set[str]:
        key = self._keys.registry() if self._keys.sharded else self._keys.names(state)
        try:
            named = queue_names(self._smembers_undecoded(key))
        except redis.exceptions.ResponseError as exc:
            raise translate_error(exc, key) from exc
        return self._holding(state, sorted(named)) if self._keys.sharded else named

    def _holding(self, state: TaskState, queues: Sequence[str]) -> set[str]:
        """Per queue: those of ``queues`` with tasks in ``state``, and those whose sorted set of
        it is a key of another type: the scripts meeting it name it, as the classic layout's do
        (one queue's bad key must not hide the others')."""
        pipe = self._client.pipeline(transaction=False)
        for queue in queues:
            pipe.zcard(self._keys.state(state, queue))
        holding = set()
        for queue, count in zip(queues, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(count, redis.exceptions.ResponseError) and "WRONGTYPE" in str(count):
                holding.add(queue)
            elif isinstance(count, Exception):
                raise count
            elif count:
                holding.add(queue)
        return holding

    @redis_call
    def wait_for_activity(self, timeout: float) -> set[str]:
        if self._pubsub is None:
            self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            if self._keys.sharded:  # (each queue's scripts announce on a channel of its own)
                self._pubsub.psubscribe(self._keys.activity())
            else:
                self._pubsub.subscribe(self._keys.activity())
        queues: set[str] = set()
        try:
            message = self._pubsub.get_message(timeout=timeout)
            while message is not None:
                if message.get("type") in ("message", "pmessage"):
                    queues.add(str(message["data"]))
                message = self._pubsub.get_message(timeout=0)
        except redis.exceptions.RedisError:
            self.close()  # subscribe afresh once Redis is back
            raise
        return queues

    def close(self) -> None:
        """Drop the activity subscription. The client stays open, unless this backend made it
        (``without_retries``): then its connections are closed too (reopened if used again)."""
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
        if self._owns_pool:
            self._client.connection_pool.disconnect()

    def close_inherited(self) -> None:
        """Close the sockets of the pool's connections (idle and in use: the subscription's
        too) in a forked process. The socket is closed, never shut down, which would end the
        parent's session as well; the pool starts afresh at its next use (redis-py resets a
        pool it finds in another process)."""
        for pool in connection_pools(self._client):
            close_inherited_sockets(pool)
        self._pubsub = None

    @redis_call
    def move_due_scheduled(
        self, now: float, limit: int, publish: bool = True, beat: WorkerBeat | None = None
    ) -> int:
        total, problems = 0, list[str]()
        for queue in self._walked_queues(TaskState.SCHEDULED):
            keys = [self._keys.names(TaskState.SCHEDULED, queue)]
            keys.append(self._keys.names(TaskState.QUEUED, queue))
            args = [num(now), int(publish), limit]
            moved, *skipped = self._run("move_due", keys=keys, args=args, beat=beat, queue=queue)
            beat, total, problems = None, total + int(moved), problems + skipped
        if beat is not None:  # (per queue, no queue had scheduled tasks: no call to ride on)
            pipe = self._client.pipeline(transaction=False)
            self.with_beat(pipe, beat)
            pipe.execute()
        raise_skipped(problems)
        return total

    def _walked_queues(self, state: TaskState) -> list[str]:
        """What a walk's script (moving due tasks, requeueing lost ones) is called for: classic,
        once for all queues (it reads them from a set of names); per queue, once per queue
        holding tasks in ``state`` (the queue's own set of names holds only it)."""
        return sorted(self.queues_with_tasks(state)) if self._keys.sharded else [""]

    @redis_call
    def claim(
        self,
        queue: str,
        now: float,
        limit: int,
        lock_retry: float = 1.0,
        done: Completion | None = None,
        ticket: ClaimTicket | None = None,
    ) -> Claims:
        claim: list[object] = [queue, num(now), num(lock_retry), limit]
        keys = [*self._keys.queue_keys(queue), self._keys.qslock(queue)]
        if ticket is not None:
            claim += [ticket.claimant, ticket.token, max(1, round(ticket.remember_for * 1000))]
            keys.append(self._keys.claim(queue, ticket.claimant))
            self._claimed_from.add(queue)
        if done is not None and self._keys.base(done.queue) != self._keys.base(queue):
            self.complete(done, now)  # (per queue: another queue's keys are in another slot)
            done = None
        # Undecoded: a payload that is not UTF-8 is the worker's to quarantine (see claimed).
        if done is None:
            reply = self._run("claim", keys=keys, args=claim, decode=False, queue=queue)
        else:
            keys += self._keys.completion_keys(done)
            args = [*completion_args(done), *claim]
            reply = self._run("complete_claim", keys=keys, args=args, decode=False, queue=queue)
        left, *tasks = reply
        claims = Claims(claimed(*tasks[i : i + 3]) for i in range(0, len(tasks), 3))
        claims.queue_empty = int(left) <= 0  # -1: paused, nothing to claim now
        return claims

    @redis_call
    def forget_claims(self, claimant: str) -> None:
        for queue in sorted(self._claimed_from) if self._keys.sharded else [""]:
            self._client.delete(self._keys.claim(queue, claimant))

    @redis_call
    def acquire_locks(
        self, queue: str, locks: Mapping[str, str], now: float, timeout: float, retry_at: float
    ) -> set[str]:
        pairs = [item for task_id, lock_id in locks.items() for item in (task_id, lock_id)]
        keys = [*self._keys.queue_keys(queue), *self._keys.locks(queue, locks.values())]
        args = [queue, num(now), num(timeout), num(retry_at), *pairs]
        reply = self._run("acquire_locks", keys=keys, args=args, queue=queue)
        return set(reply)

    @redis_call
    def heartbeat(
        self,
        queue: str,
        task_ids: Sequence[str],
        lock_ids: Sequence[str],
        now: float,
        lock_timeout: float,
        beat: WorkerBeat | None = None,
    ) -> None:
        args = [queue, num(now), num(lock_timeout), len(task_ids), *task_ids]
        keys = [self._keys.state(TaskState.ACTIVE, queue), *self._keys.locks(queue, lock_ids)]
        args += lock_pairs(task_ids, lock_ids)
        self._run("heartbeat", keys=keys, args=args, beat=beat, queue=queue)

    @redis_call
    def complete(self, done: Completion, now: float) -> None:
        self._run(
            "complete",
            keys=self._keys.completion_keys(done),
            args=[num(now), *completion_args(done)],
            queue=done.queue,
        )

    @redis_call
    def fail(
        self, queue: str, task_ids: Sequence[str], lock_ids: Sequence[str], failure: Failure
    ) -> None:
        to_state = "" if failure.to_state is None else failure.to_state.value
        kept = failure.result
        args = [
            queue,
            to_state,
            num(failure.when),
            failure.max_stored_executions or 0,
            failure.execution,
            "" if kept is None else kept.text,
            0 if kept is None else keep_ms(kept.keep_for),
            len(task_ids),
            *task_ids,
        ]
        keys = [*self._keys.queue_keys(queue), *self._keys.tasks(queue, task_ids)]
        keys += self._keys.locks(queue, lock_ids)
        self._run("fail", keys=keys, args=[*args, *lock_pairs(task_ids, lock_ids)], queue=queue)

    @redis_call
    def requeue_expired(
        self,
        now: float,
        timeout: float,
        limit: int,
        max_losses: int,
        lost_execution: str,
        lock_for: float,
        publish: bool = True,
    ) -> tuple[int, int]:
        requeued, failed, problems = 0, 0, list[str]()
        for queue in self._walked_queues(TaskState.ACTIVE):
            budget = limit - requeued - failed
            if budget <= 0:
                break
            args = [num(now), num(timeout), budget, max_losses, lost_execution, num(lock_for)]
            keys = [*self._keys.all_names(queue), self._keys.lock(queue, REQUEUE_LOCK)]
            back, lost, _busy, *skipped = self._run(
                "requeue_expired", keys=keys, args=[*args, int(publish)], queue=queue
            )
            requeued, failed, problems = (
                requeued + int(back),
                failed + int(lost),
                problems + skipped,
            )
        raise_skipped(problems)
        return requeued, failed

    @redis_call
    def acquire_queue_slot(
        self,
        queue: str,
        holder: str,
        limit: int,
        now: float,
        timeout: float,
        refresh: bool = False,
    ) -> bool:
        args = [queue, holder, limit, num(now), num(timeout), int(refresh)]
        return bool(
            self._run("queue_slot", keys=[self._keys.qslock(queue)], args=args, queue=queue)
        )

    @redis_call
    def release_queue_slot(self, queue: str, holder: str) -> None:
        self._client.zrem(self._keys.qslock(queue), holder)
