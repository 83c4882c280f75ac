"""How many commands Redis runs per task (INFO commandstats, which counts the commands run
inside scripts too): Redis CPU per task is what caps many workers sharing one Redis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis

from tests import result_tasks, tasks
from tests.conftest import run_worker
from tests.redis_server import own_redis_server
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock

#: TaskTiger 0.26.3 runs 15 per task in its worker and 9 to enqueue one (docs/performance.md).
WORKER_BOUND = 14
ENQUEUE_BOUND = 5


def _commands(client: redis.Redis[str]) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter(
        {
            name.removeprefix("cmdstat_"): int(entry["calls"])
            for name, entry in stats.items()
            if name != "cmdstat_info"
        }
    )


def _life_cycles(
    tiger: Tiger,
    client: redis.Redis[str],
    n: int,
    spec: Callable[[int], TaskSpec] = lambda value: TaskSpec.of(tasks.simple, value),
) -> tuple[Counter[str], ...]:
    """The commands ``n`` tasks cost: enqueued one by one, then run by a worker until idle."""
    before = _commands(client)
    for value in range(n):
        tiger.enqueue(spec(value))
    enqueued = _commands(client)
    run_worker(tiger)
    return enqueued - before, _commands(client) - enqueued


def _per_task(many: Counter[str], one: Counter[str], n: int) -> dict[str, float]:
    names = set(many) | set(one)
    return {name: (many[name] - one[name]) / n for name in sorted(names) if many[name] != one[name]}


def test_a_task_life_cycle_costs_no_more_redis_commands_than_tasktigers(tmp_path: Path) -> None:
    with own_redis_server(tmp_path / "redis") as server:
        client: redis.Redis[str] = redis.Redis.from_url(server.url(), decode_responses=True)
        tiger = Tiger(
            RedisBackend(client, clock=ManualClock()), Config(allowed_task_modules=("tests",))
        )
        tiger.adopt(tasks.tiger)
        _life_cycles(tiger, client, 2)  # loads the scripts (EVALSHA, NOSCRIPT, SCRIPT LOAD)

        one = _life_cycles(tiger, client, 1)
        eleven = _life_cycles(tiger, client, 11)
        client.close()

    # What ten more tasks cost, per task: the worker's start and stop cancel out.
    enqueue = _per_task(eleven[0], one[0], 10)
    worker = _per_task(eleven[1], one[1], 10)
    assert sum(enqueue.values()) <= ENQUEUE_BOUND, enqueue
    assert sum(worker.values()) <= WORKER_BOUND, worker
    # No type check of a key a command of the script already read or wrote.
    assert "type" not in worker, worker
    assert len(tasks.CALLS) == 14


def test_a_result_costs_one_command_and_a_task_without_one_none(tmp_path: Path) -> None:
    with own_redis_server(tmp_path / "redis") as server:
        client: redis.Redis[str] = redis.Redis.from_url(server.url(), decode_responses=True)
        tiger = Tiger(
            RedisBackend(client, clock=ManualClock()), Config(allowed_task_modules=("tests",))
        )
        tiger.adopt(result_tasks.tiger)
        costs = {}
        for kept in (None, 60.0):

            def spec(value: int, kept: float | None = kept) -> TaskSpec:
                return result_tasks.keeps_nothing.spec(value).evolve(result_ttl=kept)

            _life_cycles(tiger, client, 2, spec)  # (loads the scripts)
            one = _life_cycles(tiger, client, 1, spec)
            eleven = _life_cycles(tiger, client, 11, spec)
            costs[kept] = [_per_task(eleven[i], one[i], 10) for i in (0, 1)]
        client.close()

    (plain_enqueue, plain_worker), (kept_enqueue, kept_worker) = costs[None], costs[60.0]
    # A task without a result costs what any task does (the other test's bounds)...
    assert sum(plain_enqueue.values()) <= ENQUEUE_BOUND, plain_enqueue
    assert sum(plain_worker.values()) <= WORKER_BOUND, plain_worker
    # ... and one with a result one command more, its SET ... GET (nobody waits here).
    assert kept_enqueue == plain_enqueue
    extra = Counter(kept_worker)
    extra.subtract(plain_worker)
    assert +extra == Counter({"set": 1}), (plain_worker, kept_worker)
