"""AsyncRedisBackend: RedisBackend's enqueue and task read on ``redis.asyncio``, by the same Lua
script and the same argument and reply handling (``_redis_wire``, ``_redis_inspect``), in the
same key layout (``_redis_keys``: classic, or per queue on Redis Cluster)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import redis.asyncio
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.exceptions
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.client import NEVER_DECODE
from redis.cluster import RedisCluster
from redis.connection import SSLConnection
from redis.sentinel import SentinelConnectionPool

from typedtiger.backends._redis_errors import translated_errors
from typedtiger.backends._redis_inspect import queue_stored_reads, stored_tasks
from typedtiger.backends._redis_keys import KeyLayout, has_hash_tag
from typedtiger.backends._redis_results import marker_ms, probe_of, result_keys
from typedtiger.backends._redis_wire import enqueue_args, enqueued, wire
from typedtiger.backends._scripts import SHAS, SOURCES
from typedtiger.backends.base import Enqueued, NewTask, ResultProbe, StoredTask, TaskState
from typedtiger.exceptions import BackendUnavailable

__all__ = [
    "AsyncRedisBackend",
    "asyncio_client_like",
    "asyncio_cluster_like",
    "asyncio_sentinel_like",
    "asyncio_twin",
]

#: How long an async call waits for one of the pool's connections before it is an outage.
POOL_WAIT_SECONDS = 20

#: Connection settings of a sync client that an asyncio one does not take (their sync kinds).
_SYNC_ONLY_SETTINGS = ("retry", "retry_on_error", "redis_connect_func", "connection_pool")


class AsyncRedisBackend:
    """Tasks stored by an asyncio client (``decode_responses=True``) under ``prefix``.

    ``cluster`` (default: whether ``client`` is a ``redis.asyncio.cluster.RedisCluster``): the
    keys laid out as RedisBackend's with ``cluster`` lays them out (docs/scaling.md).
    ``max_calls``: at most this many calls at once, the others waiting their turn (up to
    ``POOL_WAIT_SECONDS``, then BackendUnavailable), for a client that refuses a connection past
    its limit instead of waiting for one (a Redis Cluster client's nodes). ``closes_with``:
    clients closed with this one (a Sentinel-managed primary's sentinels)."""

    def __init__(
        self,
        client: redis.asyncio.Redis[str] | AsyncRedisCluster[str],
        *,
        prefix: str = "t",
        cluster: bool | None = None,
        max_calls: int | None = None,
        closes_with: Sequence[redis.asyncio.Redis[str]] = (),
    ) -> None:
        cluster = isinstance(client, AsyncRedisCluster) if cluster is None else cluster
        # (RedisCluster sends every command used here under the same name)
        self._client = cast("redis.asyncio.Redis[str]", client)
        self._prefix = prefix
        self._keys = KeyLayout(prefix, sharded=cluster and not has_hash_tag(prefix))
        #: Per queue: the queues this twin named in the registry.
        self._registered: set[str] = set()
        self._max_calls = max_calls
        self._calls: asyncio.Semaphore | None = None  # (made on the loop, at the first call)
        self._closes_with = tuple(closes_with)

    def __repr__(self) -> str:
        layout = ", per queue" if self._keys.sharded else ""
        return f"AsyncRedisBackend(prefix={self._prefix!r}{layout})"

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def client(self) -> redis.asyncio.Redis[str]:
        """The redis-py asyncio client."""
        return self._client

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """A call's turn among at most ``max_calls`` at once (any number without a limit)."""
        if self._max_calls is None:
            yield
            return
        if self._calls is None:
            self._calls = asyncio.Semaphore(self._max_calls)
        try:
            async with asyncio.timeout(POOL_WAIT_SECONDS):
                await self._calls.acquire()
        except TimeoutError:
            raise BackendUnavailable(
                f"Redis is unavailable: no connection free within {POOL_WAIT_SECONDS} s "
                f"({self._max_calls} calls at once)"
            ) from None
        try:
            yield
        finally:
            self._calls.release()

    async def _run(
        self, name: str, keys: Sequence[str], args: Sequence[object], queue: str = ""
    ) -> Any:
        """The script's undecoded reply (loading it on NOSCRIPT); ``keys``: every key it may
        touch, sent as its KEYS; its ``P``: the prefix of ``queue``'s keys."""
        declared = [wire(key) for key in dict.fromkeys(keys)]
        sent = [*declared, *(wire(arg) for arg in (self._keys.base(queue), *args))]
        raw = {NEVER_DECODE: True}
        # (typed here: types-redis leaves these untyped)
        command = cast(Callable[..., Awaitable[Any]], self._client.execute_command)
        try:
            return await command("EVALSHA", SHAS[name], len(declared), *sent, **raw)
        except redis.exceptions.NoScriptError:
            await cast(Callable[[str], Awaitable[str]], self._client.script_load)(SOURCES[name])
            return await command("EVALSHA", SHAS[name], len(declared), *sent, **raw)

    async def enqueue(self, tasks: Sequence[NewTask], now: float, publish: bool) -> list[Enqueued]:
        async with self._turn():
            return await self._enqueue_all(tasks, now, publish)

    async def _enqueue_all(
        self, tasks: Sequence[NewTask], now: float, publish: bool
    ) -> list[Enqueued]:
        if not self._keys.sharded:
            return await self._enqueue(tasks, self._keys.enqueue_keys(tasks), now, publish)
        # Per queue, as RedisBackend: a call per queue (in its slot), the queue first named in
        # the registry; every call's keys named first (a wait across queues refused before any
        # task is stored).
        groups = [list(group) for _, group in itertools.groupby(tasks, lambda t: t.queue)]
        calls = [(group, self._keys.enqueue_keys(group)) for group in groups]
        results: list[Enqueued] = []
        for group, keys in calls:
            if (queue := group[0].queue) not in self._registered:
                with translated_errors():
                    await self._client.sadd(self._keys.registry(), queue)
                self._registered.add(queue)
            results += await self._enqueue(group, keys, now, publish)
        return results

    async def _enqueue(
        self, tasks: Sequence[NewTask], keys: list[str], now: float, publish: bool
    ) -> list[Enqueued]:
        if not tasks:
            return []
        with translated_errors():
            args = enqueue_args(tasks, now, publish)
            reply = await self._run("enqueue", keys, args, tasks[0].queue)
        return enqueued(tasks, now, reply)

    async def get_task(
        self, queue: str, state: TaskState, task_id: str, load_executions: int
    ) -> StoredTask | None:
        async with self._turn():
            with translated_errors():
                score = await self._client.zscore(self._keys.state(state, queue), task_id)
                if score is None:
                    return None
                scored = [(task_id, float(score))]
                pipe = self._client.pipeline(transaction=False)
                queue_stored_reads(pipe, self._keys.task(queue, "")[:-1], scored, load_executions)
                replies = await pipe.execute(raise_on_error=False)
        return stored_tasks(queue, state, scored, load_executions, replies)[0]

    async def await_result(self, queue: str, task_id: str, timeout: float) -> ResultProbe:
        async with self._turn():
            with translated_errors():
                return await self._await_result(queue, task_id, timeout)

    async def _await_result(self, queue: str, task_id: str, timeout: float) -> ResultProbe:
        if timeout <= 0:
            return await self._probe(queue, task_id, 0)
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            # Subscribed before the marker is left (see _redis_results).
            await pubsub.subscribe(self._keys.task(queue, task_id) + ":result")
            probe = await self._probe(queue, task_id, marker_ms(timeout))
            deadline = time.monotonic() + timeout
            while probe.pending and (left := deadline - time.monotonic()) > 0:
                if await pubsub.get_message(timeout=left) is not None:
                    break
            return await self._probe(queue, task_id, 0) if probe.pending else probe
        finally:
            await pubsub.aclose()  # type: ignore[attr-defined]  # (types-redis lags)

    async def _probe(self, queue: str, task_id: str, wait_ms: int) -> ResultProbe:
        keys = result_keys(self._keys, queue, task_id)
        return probe_of(await self._run("result", keys, [task_id, wait_ms], queue))

    async def close(self) -> None:
        await self._client.aclose()  # type: ignore[attr-defined]  # (types-redis lags)
        for other in self._closes_with:
            await other.aclose()  # type: ignore[attr-defined]


def asyncio_client_like(client: redis.Redis[str]) -> redis.asyncio.Redis[str]:
    """An asyncio client with ``client``'s connection settings (TCP, TLS or a Unix socket);
    TypeError for a pool of another kind: make the asyncio client yourself."""
    pool = client.connection_pool
    kind = getattr(redis.asyncio.connection, pool.connection_class.__name__, None)
    if type(pool) not in (redis.ConnectionPool, redis.BlockingConnectionPool) or kind is None:
        raise TypeError(
            f"no asyncio twin for a {type(pool).__name__} of {pool.connection_class.__name__}: "
            "return an AsyncRedisBackend(redis.asyncio.Redis(...)) from the async_twin of a "
            "RedisBackend subclass"
        )
    settings = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if name not in _SYNC_ONLY_SETTINGS
    }
    settings["decode_responses"] = True
    # Blocking: past max_connections a call waits for a connection to come back (a handler's
    # hundred-and-first aenqueue is not refused); none within the timeout is an outage.
    fresh = redis.asyncio.BlockingConnectionPool(
        connection_class=kind,
        max_connections=pool.max_connections,
        timeout=POOL_WAIT_SECONDS,
        **settings,
    )
    twin: redis.asyncio.Redis[str] = redis.asyncio.Redis(
        connection_pool=fresh, decode_responses=True
    )
    twin.auto_close_connection_pool = True  # its own pool: closed with it
    return twin


#: The asyncio cluster client's arguments that are no connection setting of the sync client's
#: to pass on (those it takes by the same name are passed on).
_NOT_PASSED_ON = frozenset(
    {"self", "host", "port", "startup_nodes", "db", "retry", "retry_on_error"}
    | {"maint_notifications_config", "event_dispatcher"}
)


def asyncio_cluster_like(client: RedisCluster[str]) -> AsyncRedisCluster[str]:
    """An asyncio Redis Cluster client on ``client``'s nodes with its connection settings
    (credentials, TLS, timeouts; its slot map is read at its first command)."""
    accepted = set(inspect.signature(AsyncRedisCluster.__init__).parameters) - _NOT_PASSED_ON
    settings = {
        name: value
        for name, value in client.get_connection_kwargs().items()
        if name in accepted and value is not None
    }
    kind = client.get_connection_kwargs().get("connection_class")
    if isinstance(kind, type) and issubclass(kind, SSLConnection):
        settings["ssl"] = True
    settings["decode_responses"] = True
    nodes = [AsyncClusterNode(node.host, node.port) for node in client.get_nodes()]
    return AsyncRedisCluster(startup_nodes=nodes, **settings)


def asyncio_twin(
    client: redis.Redis[str] | RedisCluster[str], *, prefix: str, cluster: bool
) -> AsyncRedisBackend:
    """A RedisBackend's async twin: on an asyncio client like its ``client`` (a Redis Cluster
    client's on its nodes), keys laid out as it lays them out."""
    # A cluster's nodes and a Sentinel pool refuse a connection past max_connections; a call
    # holds at most two (a result's waiter: its subscription, and its look at the result).
    if isinstance(client, RedisCluster):
        nodes = asyncio_cluster_like(client)
        limit = max(1, cast(int, nodes.get_connection_kwargs()["max_connections"]) // 2)
        return AsyncRedisBackend(nodes, prefix=prefix, cluster=cluster, max_calls=limit)
    if isinstance(client.connection_pool, SentinelConnectionPool):
        limit = max(1, client.connection_pool.max_connections // 2)
        primary, sentinels = asyncio_sentinel_like(client)
        return AsyncRedisBackend(
            primary, prefix=prefix, cluster=cluster, max_calls=limit, closes_with=sentinels
        )
    return AsyncRedisBackend(asyncio_client_like(client), prefix=prefix, cluster=cluster)


#: The connection settings a Sentinel-managed client passes on to its asyncio twin (for the
#: primary and, those it has, for the sentinels).
_SENTINEL_SETTINGS = (
    "db",
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "client_name",
)


def asyncio_sentinel_like(
    client: redis.Redis[str],
) -> tuple[redis.asyncio.Redis[str], list[redis.asyncio.Redis[str]]]:
    """An asyncio client on the primary the same sentinels name, with ``client``'s connection
    settings (it asks the sentinels at its first command and after a failover, as ``client``
    does), and its clients of the sentinels (to close with it); TypeError for one over TLS."""
    pool = cast(SentinelConnectionPool, client.connection_pool)
    manager = pool.sentinel_manager
    pools = [pool, *(watcher.connection_pool for watcher in manager.sentinels)]
    if any(issubclass(each.connection_class, SSLConnection) for each in pools):
        # (only the settings above are passed on: a twin would talk in the clear)
        raise TypeError(
            "no asyncio twin for a Sentinel client over TLS: return an AsyncRedisBackend of a "
            "redis.asyncio.sentinel client from the async_twin of a RedisBackend subclass"
        )
    sentinels = [
        (
            watcher.connection_pool.connection_kwargs["host"],
            watcher.connection_pool.connection_kwargs["port"],
        )
        for watcher in manager.sentinels
    ]
    asked = {k: v for k, v in manager.sentinel_kwargs.items() if k in _SENTINEL_SETTINGS}
    settings = {k: v for k, v in pool.connection_kwargs.items() if k in _SENTINEL_SETTINGS}
    watchers = redis.asyncio.sentinel.Sentinel(
        sentinels, min_other_sentinels=manager.min_other_sentinels, sentinel_kwargs=asked
    )
    primary: redis.asyncio.Redis[str] = watchers.master_for(
        pool.service_name,
        connection_pool_class=redis.asyncio.sentinel.SentinelConnectionPool,
        max_connections=pool.max_connections,
        decode_responses=True,
        **settings,
    )
    primary.auto_close_connection_pool = True  # its own pool: closed with it
    return primary, list(watchers.sentinels)
