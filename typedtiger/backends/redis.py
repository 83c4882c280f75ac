"""RedisBackend: task storage on Redis, TaskTiger's key layout, one Lua script per state change.

The layout is documented in docs/redis-layout.md. Scripts live in ``backends/lua``; each is
run by EVALSHA through redis-py (which loads it on NOSCRIPT, and applies the client's retry
policy and health checks). Only this module and ``fake.py`` import redis; redis errors are
translated to typedtiger's here: see ``translate_error``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, Final, ParamSpec, TypeVar, cast

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE, PubSub
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from typedtiger.backends.base import (
    Claimed,
    Claims,
    ClaimTicket,
    Completion,
    Enqueued,
    EnqueueMode,
    Failure,
    NewTask,
    StoredTask,
    TaskExecutions,
    TaskState,
)
from typedtiger.clock import Clock, SystemClock
from typedtiger.exceptions import (
    BackendUnavailable,
    QueueFullException,
    StorageDataError,
    TypedTigerError,
)

__all__ = ["RedisBackend"]

P = ParamSpec("P")
R = TypeVar("R")

_SCRIPT_NAMES: Final = (
    "enqueue",
    "move_due",
    "claim",
    "acquire_locks",
    "heartbeat",
    "complete",
    "complete_claim",
    "fail",
    "requeue_expired",
    "queue_slot",
    "remove",
    "move",
    "purge_errors",
)
_ALL_STATES: Final = tuple(TaskState)


def _script_sources() -> dict[str, str]:
    folder = resources.files("typedtiger.backends") / "lua"
    common = (folder / "_common.lua").read_text(encoding="utf8")
    return {
        name: common + (folder / f"{name}.lua").read_text(encoding="utf8") for name in _SCRIPT_NAMES
    }


_SOURCES: Final = _script_sources()
_SHAS: Final = {
    name: hashlib.sha1(source.encode("utf8"), usedforsecurity=False).hexdigest()
    for name, source in _SOURCES.items()
}


#: Replies that mean Redis cannot serve now but may soon (redis-py maps some of these to
#: classes and strips the code from the message; the codes cover the rest and fakeredis).
_OUTAGE_CLASSES: Final = (
    redis.exceptions.ConnectionError,  # also LOADING (BusyLoadingError) and auth failures
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica (after a failover) refuses writes
    # (types-redis lags redis-py, which has had it since 4.3)
    redis.exceptions.OutOfMemoryError,  # type: ignore[attr-defined]  # maxmemory, noeviction
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)
_OUTAGE_CODES: Final = (
    "READONLY",
    "LOADING",
    "BUSY",  # a script or module command runs too long
    "MASTERDOWN",
    "OOM",
    "MISCONF",  # writes refused after a failed RDB save
    "NOREPLICAS",  # min-replicas-to-write not met
    "TRYAGAIN",
    "CLUSTERDOWN",
    "command not allowed when used memory",
)
#: Replies that mean one key or task holds data of the wrong type or form (redis-py strips
#: "ERR "). A Lua runtime error (Redis: "user_script:<line>: ...", fakeredis: "Error running
#: script ...") comes from a stored value the script could not use.
_DATA_CODES: Final = (
    "WRONGTYPE",
    "value is not an integer",
    "value is not a valid float",
    "increment or decrement would overflow",
    "user_script:",
    "Error running script",
    "TASKDATA",  # a script's own refusal of one task's stored data
)


def translate_error(exc: redis.exceptions.RedisError, key: str | None = None) -> TypedTigerError:
    """typedtiger's error for a redis-py error: BackendUnavailable (try again later),
    StorageDataError (one key or task is bad) or TypedTigerError (a bug, or a setup Redis
    refuses, such as a missing ACL permission). ``key``: the one key the command read."""
    message = str(exc) if key is None else f"{exc} (key {key})"
    if isinstance(exc, _OUTAGE_CLASSES) or message.startswith(_OUTAGE_CODES):
        return BackendUnavailable(f"Redis is unavailable: {message}")
    if message.startswith(_DATA_CODES):
        return StorageDataError(f"bad data in Redis: {message}")
    return TypedTigerError(f"Redis error: {message}")


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise translate_error(exc) from exc


def _redis_call(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _translated_errors():
            return method(*args, **kwargs)

    return wrapper


def _close_inherited_sockets(pool: object) -> None:
    # redis-py has no API for this (a pool's own disconnect() first forgets the connections it
    # finds were made in another process): its connection lists, read defensively.
    connections: list[Any] = [
        *getattr(pool, "_available_connections", ()),
        *getattr(pool, "_in_use_connections", ()),
        *getattr(pool, "_connections", ()),  # BlockingConnectionPool
    ]
    for connection in connections:
        sock = getattr(connection, "_sock", None)
        if isinstance(sock, socket.socket):
            connection._sock = None
            with contextlib.suppress(OSError):
                sock.close()


def _raise_skipped(skipped: Sequence[str]) -> None:
    """StorageDataError for the queues a script skipped, their keys holding another type (what
    it did for the other queues stands)."""
    if skipped:
        raise StorageDataError(f"WRONGTYPE, queue skipped: {'; '.join(skipped)}")


def _enqueue_options(task: NewTask) -> tuple[str, float, EnqueueMode, int | None]:
    return task.queue, task.due, task.mode, task.max_queue_size


def _num(value: float) -> str:
    return repr(float(value))


def _lock_pairs(task_ids: Sequence[str], lock_ids: Sequence[str]) -> list[str]:
    if len(lock_ids) > len(task_ids):
        raise ValueError("more lock ids than task ids")
    pairs: list[str] = []
    for task_id, lock_id in zip(task_ids, lock_ids, strict=False):
        if lock_id:
            pairs += [task_id, lock_id]
    return pairs


def _completion_args(done: Completion) -> list[object]:
    pairs = _lock_pairs(done.task_ids, done.lock_ids)
    return [done.queue, len(done.task_ids), *done.task_ids, len(pairs) // 2, *pairs]


def _claimed(task_id: bytes, payload: bytes | None, count_or_reason: int | bytes) -> Claimed:
    """One task of an undecoded claim reply: a string in place of the count is why the script
    quarantined it. A payload's bytes that are not UTF-8 are kept as lone surrogates
    (surrogateescape), which decoding the payload reports as such."""
    if isinstance(count_or_reason, bytes):  # (an id that is not UTF-8 is shown escaped)
        shown = task_id.decode("utf-8", "backslashreplace")
        return Claimed(shown, None, broken=count_or_reason.decode())
    text = None if payload is None else payload.decode("utf-8", "surrogateescape")
    return Claimed(task_id.decode(), text, int(count_or_reason))


def _wire(arg: object) -> object:
    """A script argument as redis-py may send it: text holding bytes that were not UTF-8
    (surrogateescape) as those bytes; redis-py's encoder would refuse it."""
    if isinstance(arg, str) and not arg.isascii():
        try:
            arg.encode()
        except UnicodeEncodeError:
            return arg.encode("utf-8", "surrogateescape")
    return arg


def _queue_names(members: set[bytes]) -> set[str]:
    """The queue names of a state's set that are UTF-8: typedtiger refuses any other name at
    enqueue, and none could be passed on as text; another writer's are left alone."""
    names = set()
    for member in members:
        with contextlib.suppress(UnicodeDecodeError):
            names.add(member.decode())
    return names


def _undecoded(value: bytes) -> str:
    """Stored text, with bytes that are not UTF-8 kept as lone surrogates (surrogateescape):
    decoding it reports them, and a display can show them escaped."""
    return value.decode("utf-8", "surrogateescape")


def _count(value: object) -> int | None:
    """An executions count as stored (absent: 0), or None if it is not one."""
    if value is None:
        return 0
    if isinstance(value, bytes) and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _escaped(value: object) -> str:
    if isinstance(value, bytes):
        return repr(value)[1:]  # (quoted, every byte that is not printable ASCII escaped)
    return f"a value Redis refused to read ({value})"


class RedisBackend:
    """Tasks stored in Redis under ``prefix`` (TaskTiger's layout).

    ``client`` must be created with ``decode_responses=True``. In a forked child redis-py opens
    fresh connections, so a task may enqueue other tasks through the same client.
    """

    #: Whether a task may run in a forked child (the child's writes reach the same storage).
    forks_safely: bool = True

    def __init__(
        self, client: redis.Redis[str], *, prefix: str = "t", clock: Clock | None = None
    ) -> None:
        if not client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisBackend needs a client created with decode_responses=True")
        self._client = client
        self._prefix = prefix
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._scripts: dict[str, Script] = {
            name: client.register_script(source) for name, source in _SOURCES.items()
        }
        self._pubsub: PubSub | None = None
        self._owns_pool = False

    def __repr__(self) -> str:
        # The location only: never the password.
        kwargs = self._client.connection_pool.connection_kwargs
        if "path" in kwargs:
            where = f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
        else:
            where = f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
            where += f"/{kwargs.get('db', 0)}"
        return f"{type(self).__name__}({where}, prefix={self._prefix!r})"

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "t", check: bool = False) -> RedisBackend:
        """A backend on the Redis at ``url`` (redis://, rediss:// or unix://).

        With ``check=True`` the options the connection pool defers to its first connection are
        checked now (no I/O): a bad one is a ValueError naming it."""
        try:
            backend = cls(redis.Redis.from_url(url, decode_responses=True), prefix=prefix)
            if check:
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
        pool = self._client.connection_pool
        kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0), "retry_on_error": []}
        kind = type(pool)
        if kind is redis.ConnectionPool or kind is redis.BlockingConnectionPool:
            fresh = kind(
                connection_class=pool.connection_class,
                max_connections=pool.max_connections,
                **kwargs,
            )
        elif isinstance(pool, SentinelConnectionPool):
            del kwargs["connection_pool"]  # the pool's proxy to itself: the new pool adds its own
            fresh = SentinelConnectionPool(
                pool.service_name,
                pool.sentinel_manager,
                connection_class=pool.connection_class,
                max_connections=pool.max_connections,
                is_master=pool.is_master,
                check_connection=pool.check_connection,
                **kwargs,
            )
        else:
            return self
        client: redis.Redis[str] = redis.Redis(connection_pool=fresh, decode_responses=True)
        backend = type(self)(client, prefix=self._prefix, clock=self._clock)
        backend._owns_pool = True
        return backend

    def with_prefix(self, prefix: str) -> RedisBackend:
        if prefix == self._prefix:
            return self
        return type(self)(self._client, prefix=prefix, clock=self._clock)

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    def _run(self, name: str, args: Sequence[object], *, decode: bool = True) -> Any:
        """The script's reply; with ``decode=False`` its strings are left as bytes (what a
        UTF-8 decoder would refuse must not fail the whole reply)."""
        # (an id read undecoded goes back as the bytes it was)
        args = [_wire(arg) for arg in (self._prefix, *args)]
        if decode:
            return self._scripts[name](keys=[], args=args)
        # What Script.__call__ does, with the reply left undecoded.
        raw = {NEVER_DECODE: True}
        try:
            return self._client.execute_command("EVALSHA", _SHAS[name], 0, *args, **raw)
        except redis.exceptions.NoScriptError:
            sha = self._client.script_load(_SOURCES[name])  # type: ignore[no-untyped-call]
            return self._client.execute_command("EVALSHA", sha, 0, *args, **raw)

    # --- producing ----------------------------------------------------------------------

    @_redis_call
    def enqueue(self, tasks: Sequence[NewTask], now: float, publish: bool) -> list[Enqueued]:
        if not tasks:
            return []
        now_arg = _num(now)
        args: list[object] = [now_arg, int(publish)]
        # Neighbours sharing their options travel as one group: two arguments per task.
        for (queue, due, mode, max_size), group in itertools.groupby(tasks, _enqueue_options):
            pairs = [item for task in group for item in (task.id, task.payload)]
            args += [queue, _num(due), mode.value, max_size or 0, len(pairs) // 2, *pairs]
        # Undecoded: a stored payload the reply carries may be bytes UTF-8 refuses.
        status, *rest = self._run("enqueue", args, decode=False)
        if status != b"ok":
            number, detail = rest
            task = tasks[int(number) - 1]
            if status == b"full":
                raise QueueFullException(
                    f"queue {task.queue!r} holds {detail} tasks (max_queue_size "
                    f"{task.max_queue_size}); nothing was enqueued"
                )
            raise StorageDataError(
                f"WRONGTYPE: Redis key {_undecoded(detail)!r} holds another type of value; nothing "
                "was enqueued"
            )
        results = [
            Enqueued(TaskState.QUEUED, now)
            if task.due <= now
            else Enqueued(TaskState.SCHEDULED, task.due)
            for task in tasks
        ]
        for at in range(0, len(rest), 4):
            number, state, score, payload = rest[at : at + 4]
            text = None if payload is None else _undecoded(payload)
            results[int(number) - 1] = Enqueued(TaskState(state.decode()), float(score), text)
        return results

    # --- consuming ----------------------------------------------------------------------

    @_redis_call
    def queues_with_tasks(self, state: TaskState) -> set[str]:
        key = self._key(state.value)
        try:
            return _queue_names(self._smembers_undecoded(key))
        except redis.exceptions.ResponseError as exc:
            raise translate_error(exc, key) from exc

    def _smembers_undecoded(self, key: str, pipe: Any = None) -> Any:
        target = self._client if pipe is None else pipe
        return target.execute_command("SMEMBERS", key, **{NEVER_DECODE: True})

    @_redis_call
    def wait_for_activity(self, timeout: float) -> set[str]:
        if self._pubsub is None:
            self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(self._key("activity"))
        queues: set[str] = set()
        try:
            message = self._pubsub.get_message(timeout=timeout)
            while message is not None:
                if message.get("type") == "message":
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
        _close_inherited_sockets(self._client.connection_pool)
        self._pubsub = None

    @_redis_call
    def move_due_scheduled(self, now: float, limit: int, publish: bool = True) -> int:
        moved, *skipped = self._run("move_due", [_num(now), int(publish), limit])
        _raise_skipped(skipped)
        return int(moved)

    @_redis_call
    def claim(
        self,
        queue: str,
        now: float,
        limit: int,
        lock_retry: float = 1.0,
        done: Completion | None = None,
        ticket: ClaimTicket | None = None,
    ) -> Claims:
        claim: list[object] = [queue, _num(now), _num(lock_retry), limit]
        if ticket is not None:
            claim += [ticket.claimant, ticket.token, max(1, round(ticket.remember_for * 1000))]
        # Undecoded: a payload that is not UTF-8 is the worker's to quarantine (see _claimed).
        if done is None:
            reply = self._run("claim", claim, decode=False)
        else:
            reply = self._run("complete_claim", [*_completion_args(done), *claim], decode=False)
        left, *tasks = reply
        claims = Claims(_claimed(*tasks[i : i + 3]) for i in range(0, len(tasks), 3))
        claims.queue_empty = int(left) <= 0  # -1: paused, nothing to claim now
        return claims

    @_redis_call
    def forget_claims(self, claimant: str) -> None:
        self._client.delete(self._key("claim", claimant))

    @_redis_call
    def acquire_locks(
        self, queue: str, locks: Mapping[str, str], now: float, timeout: float, retry_at: float
    ) -> set[str]:
        pairs = [item for task_id, lock_id in locks.items() for item in (task_id, lock_id)]
        reply = self._run(
            "acquire_locks", [queue, _num(now), _num(timeout), _num(retry_at), *pairs]
        )
        return set(reply)

    @_redis_call
    def heartbeat(
        self,
        queue: str,
        task_ids: Sequence[str],
        lock_ids: Sequence[str],
        now: float,
        lock_timeout: float,
    ) -> None:
        args = [queue, _num(now), _num(lock_timeout), len(task_ids), *task_ids]
        self._run("heartbeat", [*args, *_lock_pairs(task_ids, lock_ids)])

    @_redis_call
    def complete(self, done: Completion) -> None:
        self._run("complete", _completion_args(done))

    @_redis_call
    def fail(
        self, queue: str, task_ids: Sequence[str], lock_ids: Sequence[str], failure: Failure
    ) -> None:
        to_state = "" if failure.to_state is None else failure.to_state.value
        args = [
            queue,
            to_state,
            _num(failure.when),
            failure.max_stored_executions or 0,
            failure.execution,
            len(task_ids),
            *task_ids,
        ]
        self._run("fail", [*args, *_lock_pairs(task_ids, lock_ids)])

    @_redis_call
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
        args = [_num(now), _num(timeout), limit, max_losses, lost_execution, _num(lock_for)]
        requeued, failed, _busy, *skipped = self._run("requeue_expired", [*args, int(publish)])
        _raise_skipped(skipped)
        return int(requeued), int(failed)

    @_redis_call
    def acquire_queue_slot(
        self,
        queue: str,
        holder: str,
        limit: int,
        now: float,
        timeout: float,
        refresh: bool = False,
    ) -> bool:
        args = [queue, holder, limit, _num(now), _num(timeout), int(refresh)]
        return bool(self._run("queue_slot", args))

    @_redis_call
    def release_queue_slot(self, queue: str, holder: str) -> None:
        self._client.zrem(self._key("qslock", queue), holder)

    # --- inspection and administration --------------------------------------------------

    def _stored(
        self,
        queue: str,
        state: TaskState,
        scored: Sequence[tuple[str, float]],
        load_executions: int,
    ) -> list[StoredTask]:
        # Read undecoded and without raising: whatever one task's keys hold (bytes that are not
        # UTF-8, a key of another type), the others are listed and it is shown as broken.
        pipe = self._client.pipeline(transaction=False)
        # (typed here: types-redis leaves Pipeline.execute_command untyped)
        command = cast(Callable[..., object], pipe.execute_command)
        raw = {NEVER_DECODE: True}
        for task_id, _score in scored:
            base = self._key("task", task_id).encode("utf-8", "surrogateescape")
            command("GET", base, **raw)
            command("GET", base + b":executions_count", **raw)
            if load_executions:
                command("LRANGE", base + b":executions", -load_executions, -1, **raw)
        replies = iter(pipe.execute(raise_on_error=False))
        tasks = []
        for task_id, score in scored:
            payload, count = next(replies), next(replies)
            executions = next(replies) if load_executions else []
            problems = []
            if isinstance(payload, redis.exceptions.ResponseError):
                problems.append(f"the task key cannot be read: {payload}")
                payload = None
            counted = _count(count)
            if counted is None:
                problems.append(f"executions_count holds {_escaped(count)}, not a count")
            if isinstance(executions, redis.exceptions.ResponseError):
                problems.append(f"executions cannot be read: {executions}")
                executions = []
            tasks.append(
                StoredTask(
                    id=task_id,
                    queue=queue,
                    state=state,
                    score=float(score),
                    payload=None if payload is None else _undecoded(payload),
                    executions=tuple(_undecoded(item) for item in executions),
                    executions_count=counted or 0,
                    broken="; ".join(problems) or None,
                )
            )
        return tasks

    @_redis_call
    def get_task(
        self, queue: str, state: TaskState, task_id: str, load_executions: int
    ) -> StoredTask | None:
        score = self._client.zscore(self._key(state.value, queue), task_id)
        if score is None:
            return None
        return self._stored(queue, state, [(task_id, float(score))], load_executions)[0]

    @_redis_call
    def list_tasks(
        self, queue: str, state: TaskState, skip: int, limit: int, load_executions: int
    ) -> tuple[int, list[StoredTask]]:
        key = self._key(state.value, queue)
        pipe = self._client.pipeline(transaction=False)
        pipe.zcard(key)
        # (undecoded: an id that is not UTF-8, quarantined by a claim, is listed escaped)
        command = cast(Callable[..., object], pipe.execute_command)
        stop = skip + limit - 1
        command("ZREVRANGE", key, skip, stop, "WITHSCORES", **{NEVER_DECODE: True})
        total, reply = pipe.execute()
        # (pairs, or one flat list, depending on the server's protocol and the client)
        flat = not reply or not isinstance(reply[0], list | tuple)
        pairs = zip(reply[::2], reply[1::2], strict=True) if flat else reply
        scored = [(_undecoded(task_id), float(score)) for task_id, score in pairs]
        return int(total), self._stored(queue, state, scored, load_executions)

    @_redis_call
    def task_executions(self, task_id: str, load: int | None) -> TaskExecutions | None:
        base = self._key("task", task_id)
        pipe = self._client.pipeline(transaction=True)  # one consistent read, one round trip
        pipe.exists(base)
        pipe.get(f"{base}:executions_count")
        if load != 0:
            pipe.lrange(f"{base}:executions", 0 if load is None else -load, -1)
        exists, count, *records = pipe.execute()
        if not exists:
            return None
        return TaskExecutions(count=int(count or 0), records=tuple(records[0] if records else ()))

    @_redis_call
    def find_task(self, task_id: str) -> list[tuple[str, TaskState]]:
        pipe = self._client.pipeline(transaction=False)
        for state in _ALL_STATES:
            self._smembers_undecoded(self._key(state.value), pipe)
        candidates = [
            (queue, state)
            for state, queues in zip(_ALL_STATES, pipe.execute(), strict=True)
            for queue in sorted(_queue_names(queues))
        ]
        for queue, state in candidates:
            pipe.zscore(self._key(state.value, queue), task_id)
        found = pipe.execute()
        return [where for where, score in zip(candidates, found, strict=True) if score is not None]

    @_redis_call
    def queue_sizes(self, queues: Sequence[str] | None) -> dict[str, dict[TaskState, int]]:
        pipe = self._client.pipeline(transaction=False)
        if queues is None:
            for state in _ALL_STATES:
                self._smembers_undecoded(self._key(state.value), pipe)
            names = sorted({queue for members in pipe.execute() for queue in _queue_names(members)})
        else:
            names = list(queues)
        for queue in names:
            for state in _ALL_STATES:
                pipe.zcard(self._key(state.value, queue))
        counts = iter(pipe.execute())
        return {queue: {state: int(next(counts)) for state in _ALL_STATES} for queue in names}

    @_redis_call
    def remove(self, queue: str, state: TaskState, task_id: str) -> bool:
        return bool(self._run("remove", [queue, state.value, task_id]))

    @_redis_call
    def move(
        self,
        queue: str,
        from_state: TaskState,
        task_id: str,
        to_state: TaskState,
        when: float,
        publish: bool,
    ) -> bool:
        args = [queue, from_state.value, task_id, to_state.value, _num(when), int(publish)]
        return bool(self._run("move", args))

    @_redis_call
    def set_queue_system_lock(self, queue: str, until: float) -> None:
        key = self._key("qslock", queue)
        pipe = self._client.pipeline(transaction=True)
        pipe.zadd(key, {"SYSTEM_LOCK": until})
        pipe.persist(key)  # the pause lasts until `until`, however long; slots expire by score
        pipe.execute()

    @_redis_call
    def clear_queue_system_lock(self, queue: str) -> None:
        self._client.zrem(self._key("qslock", queue), "SYSTEM_LOCK")

    @_redis_call
    def get_queue_system_locks(self) -> dict[str, float]:
        locks: dict[str, float] = {}
        prefix = self._key("qslock", "")
        for key in self._client.scan_iter(match=prefix.replace("*", r"\*") + "*", count=1000):
            score = self._client.zscore(key, "SYSTEM_LOCK")
            if score is not None:
                locks[str(key)[len(prefix) :]] = float(score)
        return locks

    @_redis_call
    def purge_errors(self, queue: str, before: float | None, limit: int | None) -> int:
        bound = "+inf" if before is None else _num(before)
        return int(self._run("purge_errors", [queue, bound, -1 if limit is None else limit]))
