"""A Redis Cluster and a Sentinel-managed primary of a test run's own, on loopback ports
(from $TYPEDTIGER_TEST_PORTS when set), built of RedisServer processes (tests/redis_server.py):
only the processes started here are ever stopped."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.redis_server import RedisServer, RedisServerError, free_port, own_redis_server
from tests.waiting import scaled

#: How long a node may be unreachable before the others count it failed (cluster) or a
#: sentinel counts the primary down (ms): short, so that tests fail over quickly.
NODE_TIMEOUT_MS = 1000


def _wait_for(condition: object, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + scaled(seconds)
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RedisServerError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def own_redis_cluster(directory: Path, primaries: int = 3) -> Iterator[list[RedisServer]]:
    """``primaries`` cluster-enabled redis-servers joined by ``redis-cli --cluster create``
    (no replicas), their slots covered; stopped on exit."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RedisServerError("redis-cli is not on PATH")
    options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
               "--cluster-node-timeout", str(NODE_TIMEOUT_MS)]  # fmt: skip
    with contextlib.ExitStack() as stack:
        # (the bus port is chosen too: port + 10000, the default, may be past 65535)
        nodes = [
            stack.enter_context(
                own_redis_server(
                    directory / f"node{n}", extra=[*options, "--cluster-port", str(free_port())]
                )
            )
            for n in range(primaries)
        ]
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            timeout=scaled(60),
        )

        def settled() -> bool:
            for node in nodes:
                assert node.client is not None
                if node.client.cluster("info")["cluster_state"] != "ok":
                    return False
            return True

        _wait_for(settled, "the cluster to cover its slots")
        yield nodes


def cluster_url(nodes: list[RedisServer]) -> str:
    return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in nodes)


@contextlib.contextmanager
def own_sentinel_setup(directory: Path, name: str = "primary") -> Iterator[list[RedisServer]]:
    """A primary, its replica and one sentinel watching them (quorum 1), on loopback:
    [primary, replica, sentinel]; stopped on exit."""
    with contextlib.ExitStack() as stack:
        primary = stack.enter_context(own_redis_server(directory / "primary"))
        replica = stack.enter_context(
            own_redis_server(
                directory / "replica", extra=["--replicaof", "127.0.0.1", str(primary.port)]
            )
        )
        sentinel_dir = directory / "sentinel"
        sentinel_dir.mkdir(parents=True, exist_ok=True)
        (sentinel_dir / "sentinel.conf").write_text(
            f"sentinel monitor {name} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {name} {NODE_TIMEOUT_MS}\n"
            f"sentinel failover-timeout {name} 5000\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        sentinel = stack.enter_context(own_redis_server(sentinel_dir, extra=["--sentinel"]))

        def replicating() -> bool:
            assert replica.client is not None and sentinel.client is not None
            link = replica.client.info("replication").get("master_link_status")
            known = sentinel.client.execute_command("SENTINEL", "REPLICAS", name)
            return link == "up" and bool(known)

        _wait_for(replicating, "the replica to sync and the sentinel to find it")
        yield [primary, replica, sentinel]


def sentinel_url(sentinel: RedisServer, name: str = "primary", db: int = 0) -> str:
    return f"redis+sentinel://127.0.0.1:{sentinel.port}/{name}/{db}"


def primary_port(sentinel: RedisServer, name: str = "primary") -> int:
    assert sentinel.client is not None
    _host, port = sentinel.client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
    return int(port)
