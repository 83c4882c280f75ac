"""typedtiger on a Redis Cluster of the run's own (3 primaries): each queue in a slot of its
own (its tasks' keys with it), queues spread over the shards, and the one-slot layout of a
hash-tagged prefix. The conformance modules in conftest.CLUSTER_CONFORMANCE also run there."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from redis.cluster import RedisCluster

from tests import tasks
from tests.conftest import run_worker
from typedtiger import Config, TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
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
