"""``typedtiger dashboard`` as users run it: the program in a subprocess, on real Redis."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from tests.conftest import REDIS_URL
from typedtiger import Config, TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def hold_back(db: redis.Redis[str]) -> None:
    """A task in the queue held.back, paused."""
    tiger = Tiger(RedisBackend(db), Config(allow_any_module=True))
    tiger.enqueue(TaskSpec.of(time.sleep, 1).evolve(queue="held.back"))
    tiger.set_queue_system_lock("held.back", 600)


@contextmanager
def dashboard(*args: str, url: str = REDIS_URL) -> Iterator[str]:
    """The command running with ``args`` on ``url``; the root URL it says it serves."""
    command = [sys.executable, "-m", "typedtiger.cli", "dashboard", "--url", url, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        found = re.match(r"typedtiger dashboard on (http://\S+/) \(RedisBackend", first)
        assert found, first + (process.stderr.read() if process.poll() is not None else "")
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as reply:
        assert reply.status == 200
        return str(reply.read().decode())


def test_the_command_serves_the_queues_of_the_redis_it_names(
    redis_db: redis.Redis[str],
) -> None:
    hold_back(redis_db)
    with dashboard("--port", "0") as root:
        assert root.startswith("http://127.0.0.1:")
        page = read(root)
    assert "held.back" in page and ">Pause<" not in page and ">Unpause<" in page


def test_read_only_shows_no_action(redis_db: redis.Redis[str]) -> None:
    hold_back(redis_db)
    with dashboard("--port", "0", "--read-only") as root:
        page = read(root)
    assert "held.back" in page and "read-only" in page and ">Unpause<" not in page


def test_an_auth_hook_that_is_not_there_is_a_usage_error() -> None:
    command = [sys.executable, "-m", "typedtiger.cli", "dashboard", "--url", REDIS_URL]
    done = subprocess.run(
        [*command, "--auth", "tests.dashboard_tasks:nothing"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no function 'nothing'" in done.stderr
