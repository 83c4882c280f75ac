"""typedtiger on a Redis Cluster of the run's own (3 primaries): each queue in a slot of its
own (its tasks' keys with it), queues spread over the shards, and the one-slot layout of a
hash-tagged prefix. The conformance modules in conftest.CLUSTER_CONFORMANCE also run there.
Also: the async client, the admin commands and the dashboard on a Sentinel-managed primary of
the test's own (the failover itself: tests/chaos/test_sentinel_failover.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import click
import pytest
import redis
from click.testing import CliRunner
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel, SentinelManagedSSLConnection

from tests import async_tasks, result_tasks, tasks
from tests.conftest import run_worker, unavailable
from tests.redis_cluster import own_sentinel_setup, sentinel_url
from tests.redis_server import RedisServer, RedisServerError
from tests.test_dashboard_command import dashboard, read
from tests.waiting import scaled
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger.backends.fake import FakeBackend
from typedtiger.backends.redis import RedisBackend
from typedtiger.cli import main
from typedtiger.clock import ManualClock
from typedtiger.commands.admin import register_admin_commands

QUEUES = [f"q{n}" for n in range(12)]


def build_cli() -> click.Group:
    main = click.Group("typedtiger")
    register_admin_commands(main)
    return main


def _tiger(client: RedisCluster[str], prefix: str = "t") -> Tiger:
    tiger = Tiger(
        RedisBackend(client, clock=ManualClock()),
        Config(prefix=prefix, allowed_task_modules=("tests",)),
    )
    tiger.adopt(tasks.tiger)
    tiger.adopt(result_tasks.tiger)
    return tiger


def _nodes_holding(client: RedisCluster[str], pattern: str) -> set[str]:
    return {node.name for node in client.get_primaries() if client.keys(pattern, target_nodes=node)}


def test_queues_spread_over_the_shards_and_every_task_runs(
    cluster_client: RedisCluster[str],
) -> None:
    tiger = _tiger(cluster_client)
    assert "per queue" in repr(tiger.backend)
    for n, queue in enumerate(QUEUES):
        tiger.enqueue(TaskSpec.of(tasks.simple, n).evolve(queue=queue))
    # Each queue's keys (its tasks' too) in its own slot; the queues on more than one shard.
    slots = {cluster_client.keyslot(f"t:{{{queue}}}") for queue in QUEUES}
    assert len(slots) == len(QUEUES)
    assert len(_nodes_holding(cluster_client, "t:{q*}:task:*")) == 3
    assert tiger.get_queue_sizes("q0")[TaskState.QUEUED] == 1
    assert sorted(tiger.backend.queues_with_tasks(TaskState.QUEUED)) == sorted(QUEUES)

    run_worker(tiger)

    assert sorted(tasks.CALLS) == sorted(("simple", n) for n in range(len(QUEUES)))
    assert tiger.backend.queues_with_tasks(TaskState.QUEUED) == set()
    assert not list(cluster_client.scan_iter(match="t:{q*}:task:*"))  # (every primary)


def test_a_hash_tagged_prefix_keeps_every_key_in_one_slot(
    cluster_client: RedisCluster[str],
) -> None:
    tiger = _tiger(cluster_client, prefix="{tt}")
    assert "per queue" not in repr(tiger.backend)
    for n, queue in enumerate(QUEUES[:4]):
        tiger.enqueue(TaskSpec.of(tasks.simple, n).evolve(queue=queue))
    assert len(_nodes_holding(cluster_client, "{tt}:*")) == 1
    run_worker(tiger)
    assert len(tasks.CALLS) == 4
    assert tiger.get_queue_sizes("q0")[TaskState.QUEUED] == 0


def test_the_cli_lists_the_queues_of_every_shard(
    cluster_client: RedisCluster[str], redis_cluster: str
) -> None:
    tiger = _tiger(cluster_client)
    for n, queue in enumerate(QUEUES[:6]):
        tiger.enqueue(TaskSpec.of(tasks.simple, n).evolve(queue=queue))
    result = CliRunner().invoke(build_cli(), ["queues", "--url", redis_cluster])
    assert result.exit_code == 0, result.output
    for queue in QUEUES[:6]:
        assert queue in result.output


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("prefix", "pattern", "shards"), [("t", "t:{q*}:task:*", 3), ("{tt}", "{tt}:task:*", 1)]
)
def test_the_async_client_stores_reads_and_awaits_in_either_layout(
    cluster_client: RedisCluster[str], prefix: str, pattern: str, shards: int
) -> None:
    tiger = _tiger(cluster_client, prefix)
    specs = [result_tasks.multiply.spec(n, 2).evolve(queue=q) for n, q in enumerate(QUEUES)]

    async def store() -> tuple[list[Task], Task]:
        try:
            queued = await tiger.aenqueue_many(specs)
            return queued, await Task.afrom_id(tiger, "q5", TaskState.QUEUED, queued[5].id)
        finally:
            await tiger.aclose()

    queued, read = asyncio.run(store())
    assert (read.queue, read.args) == ("q5", (5, 2))
    assert len(_nodes_holding(cluster_client, pattern)) == shards
    assert tiger.get_queue_sizes("q11")[TaskState.QUEUED] == 1

    async def wait() -> list[object]:
        try:
            # Woken through the cluster's pub/sub while the worker runs in a thread.
            worker = asyncio.create_task(asyncio.to_thread(run_worker, tiger))
            first = await queued[0].aresult(timeout=scaled(30))
            await worker
            return [first, *[await task.aresult(timeout=0) for task in queued[1:]]]
        finally:
            await tiger.aclose()

    assert asyncio.run(wait()) == [n * 2 for n in range(len(QUEUES))]


def _startup_nodes(url: str) -> list[ClusterNode]:
    return [
        ClusterNode(host, int(port))
        for host, port in (item.split(":") for item in url.partition("://")[2].split(","))
    ]


def test_the_async_twin_connects_to_the_same_nodes_with_the_same_settings(
    redis_cluster: str,
) -> None:
    nodes = _startup_nodes(redis_cluster)
    client: RedisCluster[str] = RedisCluster(
        startup_nodes=nodes, decode_responses=True, socket_timeout=7.5, client_name="dash"
    )
    try:
        twin = RedisBackend(client).async_twin()
        twin_client = cast("AsyncRedisCluster[str]", twin.client)
        settings = twin_client.get_connection_kwargs()
        assert (settings["socket_timeout"], settings["client_name"]) == (7.5, "dash")
        startup = twin_client.nodes_manager.startup_nodes.values()
        assert sorted(node.name for node in startup) == sorted(node.name for node in nodes)
        assert "per queue" in repr(twin)
    finally:
        client.close()


@pytest.mark.timeout(60)
def test_more_async_calls_at_once_than_a_nodes_connections_wait_their_turn(
    cluster_client: RedisCluster[str], redis_cluster: str
) -> None:
    # (a node of the asyncio cluster client refuses a connection past max_connections)
    client: RedisCluster[str] = RedisCluster(
        startup_nodes=_startup_nodes(redis_cluster), decode_responses=True, max_connections=4
    )
    tiger = Tiger(RedisBackend(client), Config(allowed_task_modules=("tests",)))
    specs = [TaskSpec.of(tasks.simple, n).evolve(queue="q1") for n in range(40)]

    async def main() -> list[Task]:
        try:
            return await asyncio.gather(*(tiger.aenqueue(spec) for spec in specs))
        finally:
            await tiger.aclose()

    try:
        assert len(asyncio.run(main())) == 40
        assert tiger.backend.queue_sizes(["q1"])["q1"][TaskState.QUEUED] == 40
    finally:
        client.close()


def test_the_async_client_lays_keys_out_per_queue_on_a_single_redis_told_so() -> None:
    """``Config(cluster=True)`` on FakeBackend: the asyncio twin uses the per-queue layout too."""
    tiger = Tiger(FakeBackend(), Config(cluster=True, allowed_task_modules=("tests",)))
    tiger.adopt(tasks.tiger)

    async def main() -> Task:
        try:
            return await tiger.aenqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="q1"))
        finally:
            await tiger.aclose()

    task = asyncio.run(main())
    assert isinstance(tiger.backend, RedisBackend)
    assert tiger.backend.client.exists(f"t:{{q1}}:task:{task.id}")
    assert tiger.backend.client.sismember("t:{t}:queues", "q1")
    run_worker(tiger)
    assert tasks.CALLS == [("simple", 1)]


def _lock(tiger: Tiger, queue: str, lock_id: str) -> tuple[str, bool]:
    """Enqueue a task to ``queue``, claim it and take ``lock_id`` for it: its id, and whether
    the lock was taken."""
    backend, now = tiger.backend, tiger.clock.now()
    task = tiger.enqueue(TaskSpec.of(tasks.simple, queue).evolve(queue=queue))
    backend.claim(queue, now, 1)
    return task.id, backend.acquire_locks(queue, {task.id: lock_id}, now, 60, now) == {task.id}


def test_each_queues_locks_are_listed_with_their_queue(cluster_client: RedisCluster[str]) -> None:
    tiger = _tiger(cluster_client)
    holders = {queue: _lock(tiger, queue, "shared") for queue in ("q1", "q0")}
    assert all(taken for _holder, taken in holders.values())  # (a lock per queue)
    locks, more = tiger.get_held_locks()
    assert not more
    assert [(lock.id, lock.queue, lock.holder) for lock in locks] == [
        ("shared", "q0", holders["q0"][0]),
        ("shared", "q1", holders["q1"][0]),
    ]
    assert tiger.backend.read_locks(["shared", "absent"], "q1") == [locks[1]]
    assert tiger.backend.read_locks(["shared"]) == locks  # (every queue's)


def test_one_slots_locks_are_every_queues(cluster_client: RedisCluster[str]) -> None:
    tiger = _tiger(cluster_client, prefix="{tt}")
    (holder, taken), (_other, taken_again) = _lock(tiger, "q0", "one"), _lock(tiger, "q1", "one")
    assert (taken, taken_again) == (True, False)
    locks, _more = tiger.get_held_locks()
    assert [(lock.id, lock.queue, lock.holder) for lock in locks] == [("one", None, holder)]
    assert tiger.backend.read_locks(["one"], "q1") == tiger.backend.read_locks(["one"]) == locks


def test_the_admin_commands_find_and_act_on_tasks_of_every_shard(
    cluster_client: RedisCluster[str], redis_cluster: str
) -> None:
    tiger = _tiger(cluster_client)
    queued = [tiger.enqueue(TaskSpec.of(tasks.simple, n).evolve(queue=f"q{n}")) for n in range(4)]
    failed = tiger.enqueue(result_tasks.explode.spec("boom").evolve(queue="q5"))
    run_worker(tiger, queues=["q5"])

    def typedtiger(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--url", redis_cluster])
        assert result.exit_code == 0, result.output
        return result.output

    for task in (*queued, failed):  # (by an id's prefix: a scan of every shard)
        shown = typedtiger("show", task.id[:12])
        assert f"Task {task.id}" in shown and f"queue:      {task.queue}" in shown
    assert failed.id in typedtiger("tasks", "q5", "error")
    assert "paused until" in typedtiger("pause", "q3", "--for", "60")
    (row,) = [line for line in typedtiger("queues").splitlines() if line.startswith("q3 ")]
    assert row.endswith(" UTC")  # (paused until)
    assert "no longer paused" in typedtiger("unpause", "q3")
    assert "Retried 1 task." in typedtiger("retry", "--queue", "q5", "-y")
    sizes = tiger.backend.queue_sizes(["q5"])["q5"]
    assert (sizes[TaskState.QUEUED], sizes[TaskState.ERROR]) == (1, 0)


@pytest.mark.timeout(120)
def test_the_dashboard_command_serves_a_cluster(
    cluster_client: RedisCluster[str], redis_cluster: str
) -> None:
    tiger = _tiger(cluster_client)
    task = tiger.enqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="q7"))
    holder, _taken = _lock(tiger, "q8", "a-lock")
    with dashboard("--port", "0", url=redis_cluster) as root:
        assert 'href="/tasks?queue=q7&amp;state=queued"' in read(root)
        assert "tests.tasks:simple" in read(f"{root}task?id={task.id}")
        locks = read(f"{root}locks?scan=1")
        assert "a-lock" in locks and f"/task?id={holder}" in locks and "<td>q8</td>" in locks


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://127.0.0.1:1/0", "names no database"),
        ("redis+cluster://127.0.0.1", "expected host:port"),
        ("redis+sentinel://127.0.0.1:26379", "primary name"),
        ("redis+sentinel://127.0.0.1:26379/name/db/x", "primary name"),
    ],
)
def test_a_bad_cluster_or_sentinel_url_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RedisBackend.from_url(url)


def test_a_sentinel_url_names_its_sentinels_and_primary() -> None:
    backend = RedisBackend.from_url("redis+sentinel://:secret@127.0.0.1:26379,[::1]:26380/mymain/2")
    assert repr(backend) == (
        "RedisBackend(redis+sentinel://127.0.0.1:26379,::1:26380/mymain/2, prefix='t')"
    )


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary of this test's own, its replica and a sentinel: (primary, sentinel)."""
    with contextlib.ExitStack() as stack:
        try:
            primary, _, sentinel = stack.enter_context(own_sentinel_setup(tmp_path / "redis"))
        except RedisServerError as exc:
            unavailable(f"this test needs redis-servers of its own: {exc}")
        yield primary, sentinel


def test_the_async_client_follows_the_sentinels_to_the_primary(
    sentinel_setup: tuple[RedisServer, RedisServer],
) -> None:
    primary, sentinel = sentinel_setup
    tiger = Tiger(
        RedisBackend.from_url(sentinel_url(sentinel, db=3)),
        Config(allowed_task_modules=("tests.async_tasks",)),
    )
    tiger.adopt(async_tasks.tiger)

    async def burst() -> list[Task[str]]:
        try:
            queued = await asyncio.gather(
                *(tiger.aenqueue(async_tasks.fetch.spec(f"u{n}")) for n in range(30))
            )
            found = await Task.afrom_id(tiger, "default", TaskState.QUEUED, queued[0].id)
            assert found.args == ("u0",)
            return queued
        finally:
            await tiger.aclose()

    queued = asyncio.run(burst())

    assert tiger.get_queue_stats() == {"default": {TaskState.QUEUED: 30}}
    with redis.Redis(port=primary.port, db=3) as on_primary:
        assert on_primary.exists(f"t:task:{queued[0].id}") == 1


@pytest.mark.timeout(120)
def test_the_admin_commands_and_the_dashboard_serve_a_sentinels_primary(
    sentinel_setup: tuple[RedisServer, RedisServer],
) -> None:
    _primary, sentinel = sentinel_setup
    url = sentinel_url(sentinel, db=2)
    tiger = Tiger(RedisBackend.from_url(url), Config(allowed_task_modules=("tests",)))
    tiger.adopt(tasks.tiger)
    tiger.adopt(result_tasks.tiger)
    queued = tiger.enqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="q1"))
    failed = tiger.enqueue(result_tasks.explode.spec("boom").evolve(queue="q2"))
    run_worker(tiger, queues=["q2"])

    def typedtiger(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--url", url])
        assert result.exit_code == 0, result.output
        return result.output

    assert f"Task {queued.id}" in typedtiger("show", queued.id[:12])
    assert failed.id in typedtiger("tasks", "q2", "error")
    assert "Retried 1 task." in typedtiger("retry", "--queue", "q2", "-y")
    assert tiger.get_queue_stats() == {"q1": {TaskState.QUEUED: 1}, "q2": {TaskState.QUEUED: 1}}
    with dashboard("--port", "0", url=url) as root:
        assert 'href="/tasks?queue=q1&amp;state=queued"' in read(root)
        assert "tests.tasks:simple" in read(f"{root}task?id={queued.id}")


def test_a_sentinel_client_over_tls_gets_no_async_twin_in_the_clear() -> None:
    sentinels = Sentinel([("127.0.0.1", 26379)])
    client = sentinels.master_for(
        "primary", connection_class=SentinelManagedSSLConnection, decode_responses=True
    )
    with pytest.raises(TypeError, match="over TLS"):
        RedisBackend(client).async_twin()
