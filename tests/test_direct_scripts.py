"""RedisBackend's direct script calls: one held connection, shared safely across threads and
never across a fork."""

from __future__ import annotations

import os
import threading

import pytest
import redis

from tests import tasks
from tests.conftest import REDIS_URL
from typedtiger import TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend, _DirectScripts

pytestmark = pytest.mark.redis


@pytest.fixture
def tiger(redis_db: redis.Redis[str]) -> Tiger:
    return Tiger(RedisBackend(redis.Redis.from_url(REDIS_URL, decode_responses=True)))


def direct(tiger: Tiger) -> _DirectScripts:
    backend = tiger.backend
    assert isinstance(backend, RedisBackend) and backend._direct is not None
    return backend._direct


def queued(tiger: Tiger) -> int:
    return tiger.get_queue_sizes("default")[TaskState.QUEUED]


def test_calls_reuse_one_held_connection(tiger: Tiger) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    held = direct(tiger)._held
    assert held is not None
    tiger.enqueue(TaskSpec.of(tasks.simple, 2))
    assert direct(tiger)._held is held
    assert queued(tiger) == 2


def test_a_call_finding_the_held_connection_busy_takes_a_pooled_one(tiger: Tiger) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    scripts = direct(tiger)
    held = scripts._held
    with scripts._lock:  # as if another thread were using it
        tiger.enqueue(TaskSpec.of(tasks.simple, 2))
    assert scripts._held is held
    assert queued(tiger) == 2


def test_threads_enqueueing_at_once_all_succeed(tiger: Tiger) -> None:
    errors: list[BaseException] = []

    def enqueue_many(start: int) -> None:
        try:
            for n in range(start, start + 50):
                tiger.enqueue(TaskSpec.of(tasks.simple, n))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=enqueue_many, args=(100 * i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert queued(tiger) == 200


def test_a_forked_child_uses_a_connection_of_its_own(tiger: Tiger) -> None:
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    parents = direct(tiger)._held
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            tiger.enqueue(TaskSpec.of(tasks.simple, 2))
            code = 0 if direct(tiger)._held is not parents else 2
        finally:
            os.write(write_fd, b"x")
            os._exit(code)
    os.close(write_fd)
    os.read(read_fd, 1)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    tiger.enqueue(TaskSpec.of(tasks.simple, 3))  # the parent's connection is still in step
    assert direct(tiger)._held is parents
    assert queued(tiger) == 3


@pytest.mark.parametrize(
    "pool",
    [
        redis.BlockingConnectionPool.from_url(REDIS_URL, decode_responses=True, max_connections=2),
        redis.ConnectionPool.from_url(REDIS_URL, decode_responses=True, max_connections=2),
    ],
    ids=["blocking", "small"],
)
def test_no_connection_is_held_from_a_pool_that_may_run_short(
    redis_db: redis.Redis[str], pool: redis.ConnectionPool
) -> None:
    client: redis.Redis[str] = redis.Redis(connection_pool=pool, decode_responses=True)
    tiger = Tiger(RedisBackend(client))
    tiger.enqueue(TaskSpec.of(tasks.simple, 1))
    tiger.backend.wait_for_activity(0)  # the subscription takes a connection of its own
    tiger.enqueue(TaskSpec.of(tasks.simple, 2))
    assert direct(tiger)._held is None
    assert queued(tiger) == 2  # a plain command still finds a connection
    tiger.backend.close()
    client.close()
