"""A task's child process under a real worker: its kill grace, its signals, its descriptors,
its process group, its imports.

Workers run in this process (``once=True``) or as processes, with forked children, on real
Redis, with the short timings of tests/worker_main.py.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import redis
import structlog.testing

from tests import child_tasks
from tests.worker_main import FAST
from typedtiger import TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import ForkExecutor
from typedtiger.worker import Worker

pytestmark = pytest.mark.redis


@pytest.fixture
def tiger(redis_db: redis.Redis[str]) -> Tiger:
    return Tiger(RedisBackend(redis_db), FAST)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.txt"


# --- the kill grace after a hard timeout ---------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [(None, 0.2), (0.4, 0.4)])
def test_kill_grace_comes_from_config_unless_given(
    tiger: Tiger, ledger: Path, given: float | None, expected: float
) -> None:
    tiger.reconfigure(attrs.evolve(tiger.config, hard_timeout_kill_grace=0.2))
    spec = TaskSpec.of(child_tasks.deaf_to_alarm, str(ledger)).evolve(hard_timeout=0.3)
    task = tiger.enqueue(spec)
    executor = ForkExecutor() if given is None else ForkExecutor(kill_grace=given)
    with structlog.testing.capture_logs() as logs:
        Worker(tiger, executor=executor).run(once=True)
    kills = [log for log in logs if log["event"] == "hard timeout: killing child"]
    assert [log["kill_grace"] for log in kills] == [expected]
    assert tiger.get_queue_sizes(task.queue, with_errors=True)[TaskState.ERROR] == 1
