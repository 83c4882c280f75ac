"""How many Redis round trips a task's life costs (the figure in docs/performance.md)."""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests import tasks
from tests.conftest import run_worker
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.executor import PreforkExecutor


class CountingConnection(redis.Connection):
    """A connection that counts what it sends: one send is one round trip."""

    sends = 0

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[arg-type]


def _counting_tiger(redis_db: redis.Redis[str]) -> Tiger:
    kwargs = redis_db.connection_pool.connection_kwargs
    pool = redis.ConnectionPool(connection_class=CountingConnection, **kwargs)
    client: redis.Redis[str] = redis.Redis(connection_pool=pool, decode_responses=True)
    tiger = Tiger(
        RedisBackend(client, clock=ManualClock()), Config(allowed_task_modules=("tests",))
    )
    tiger.adopt(tasks.tiger)
    return tiger


def _round_trips(tiger: Tiger, n_tasks: int, run: Callable[[Tiger], None] = run_worker) -> int:
    CountingConnection.sends = 0
    for value in range(n_tasks):
        tiger.enqueue(TaskSpec.of(tasks.simple, value))
    run(tiger)
    return CountingConnection.sends


def test_enqueue_claim_done_costs_two_round_trips(redis_db: redis.Redis[str]) -> None:
    tiger = _counting_tiger(redis_db)
    # Loads the scripts (EVALSHA, NOSCRIPT, SCRIPT LOAD) once: two tasks, so that a claim also
    # records a success (complete_claim), as every claim but the first of a run does.
    _round_trips(tiger, 2)

    one = _round_trips(tiger, 1)
    eleven = _round_trips(tiger, 11)

    # enqueue (1 EVALSHA) + claim (1 EVALSHA, which also records the previous task's success);
    # the rest (maintenance, the last task's completion) is per worker run
    assert (eleven - one) / 10 == 2
    assert len(tasks.CALLS) == 2 + 1 + 11


def test_jobs_side_by_side_cost_two_round_trips_a_task_at_most(redis_db: redis.Redis[str]) -> None:
    # With -c 2 a success is held back too: it rides on the next claim, joined to the others
    # of its queue, instead of costing a completion of its own; and a claim made with both
    # slots free takes two tasks (how often that happens depends on when the jobs end).
    tiger = _counting_tiger(redis_db)

    def run(tiger: Tiger) -> None:
        tiger.run_worker(executor=PreforkExecutor(), concurrency=2, once=True)

    _round_trips(tiger, 3, run)  # (loads the scripts, complete_claim included)

    one = _round_trips(tiger, 1, run)  # the per-run extras (maintenance, the last completion)
    # Each run costs at most two more round trips per further task (enqueue, claim), and one
    # more completion at the end (two jobs left to record); a claim with both slots free takes
    # two tasks, so a run usually costs less. (Not the difference of two runs: how often the
    # slots free together varies from run to run.)
    for n_tasks in (11, 21):
        assert _round_trips(tiger, n_tasks, run) <= one + 2 * (n_tasks - 1) + 1
    assert not redis_db.keys("t:*")  # every task ran and was recorded as done
