"""RedisBackend's clients: from a URL (``redis://``, ``rediss://``, ``unix://``, and
``redis+cluster://`` for Redis Cluster, ``redis+sentinel://`` for a Sentinel-managed primary),
and what the backend needs to know of a client whatever its kind (its options, where it is,
its connection pools), so that nothing reads ``connection_pool`` off a RedisCluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

__all__ = [
    "client_from_url",
    "client_without_retries",
    "connection_kwargs",
    "connection_pools",
    "is_cluster",
    "location",
]

CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def connection_kwargs(client: object) -> dict[str, Any]:
    """The options the client's connections are made with."""
    if isinstance(client, RedisCluster):
        return dict(client.get_connection_kwargs())
    return dict(cast("redis.Redis[str]", client).connection_pool.connection_kwargs)


def connection_pools(client: object) -> Iterator[object]:
    """Every connection pool of the client (one per node of a cluster)."""
    if isinstance(client, RedisCluster):
        for node in client.get_nodes():
            if node.redis_connection is not None:
                yield node.redis_connection.connection_pool
        return
    yield cast("redis.Redis[str]", client).connection_pool


def location(client: object) -> str:
    """Where the client connects, as a URL without credentials."""
    if isinstance(client, RedisCluster):
        nodes = ",".join(f"{node.host}:{node.port}" for node in client.get_primaries())
        return f"{CLUSTER_SCHEME}://{nodes}"
    pool = cast("redis.Redis[str]", client).connection_pool
    kwargs = pool.connection_kwargs
    if isinstance(pool, SentinelConnectionPool):
        sentinels = ",".join(
            f"{sentinel.connection_pool.connection_kwargs.get('host')}:"
            f"{sentinel.connection_pool.connection_kwargs.get('port')}"
            for sentinel in pool.sentinel_manager.sentinels
        )
        return f"{SENTINEL_SCHEME}://{sentinels}/{pool.service_name}/{kwargs.get('db', 0)}"
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    where = f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    return where + f"/{kwargs.get('db', 0)}"


def _hosts(netloc: str, url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """The ``host:port`` pairs (comma separated) of a URL's network location, and its
    username and password."""
    credentials, _, hosts = netloc.rpartition("@")
    username, password = None, None
    if credentials:
        user, has_password, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    pairs = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError(f"{_shown(url)}: expected host:port[,host:port...], got {item!r}")
        pairs.append((host, int(port)))
    return pairs, username, password


def _shown(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def client_from_url(url: str) -> redis.Redis[str]:
    """A client for ``url``, decoding replies (a cluster client asks its nodes for the map of
    slots when made; the others wait for their first command). ``redis+cluster://[user:password@]
    host:port[,host:port...]`` is a RedisCluster (its nodes are found from those); ``redis+
    sentinel://[user:password@]host:port[,host:port...]/<primary name>[/db]`` the primary the
    sentinels name (followed through a failover; the password is the primary's, the sentinels
    are asked without one). RedisCluster offers every command RedisBackend sends under the same
    name, so it is typed as the Redis client it stands in for."""
    scheme = url.partition("://")[0]
    if scheme not in (CLUSTER_SCHEME, SENTINEL_SCHEME):
        return redis.Redis.from_url(url, decode_responses=True)
    parts = urlsplit(url)
    nodes, username, password = _hosts(parts.netloc, url)
    path = [unquote(part) for part in parts.path.split("/") if part]
    if scheme == CLUSTER_SCHEME:
        if path or parts.query:
            raise ValueError(f"{_shown(url)}: a cluster URL names no database or options")
        cluster: RedisCluster[str] = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes],
            username=username,
            password=password,
            decode_responses=True,
        )
        return cast("redis.Redis[str]", cluster)
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"{_shown(url)}: expected .../<primary name>[/db] after the sentinels")
    sentinel = Sentinel(nodes, socket_timeout=5.0)
    client: redis.Redis[str] = sentinel.master_for(
        path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=username,
        password=password,
        decode_responses=True,
    )
    return client


def client_without_retries(client: object) -> redis.Redis[str] | None:
    """A client of its own on ``client``'s server that does not retry a failed call; None for
    a client whose pool is not rebuilt here (a custom class), or a RedisCluster, whose own
    retries follow moved slots and failed-over nodes."""
    if not isinstance(client, redis.Redis):
        return None
    pool = client.connection_pool
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
        return None
    return redis.Redis(connection_pool=fresh, decode_responses=True)
