"""The allowlist: a payload written straight into Redis cannot make a worker import or run a name
outside it (registered tasks and Config.allowed_task_modules; anything with allow_any_module).

A sentinel module on sys.path writes a flag file when it is imported: the tests show the worker
refuses hostile names without importing anything, and a control test shows the sentinel would
be noticed if it were imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
import redis

from tests import chaos_tasks
from tests.conftest import REDIS_URL
from tests.worker_main import FAST
from typedtiger import TaskSpec, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import ForkExecutor
from typedtiger.serialization import ExecutionRecord, decode_execution

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parent.parent
QUEUE = "default"
ALLOWED = ("tests.chaos_tasks",)


@attrs.frozen
class Sentinel:
    """A module that must never be imported: importing it creates ``imported``."""

    name: str
    folder: Path
    imported: Path
    ran: Path

    def was_imported(self) -> bool:
        return self.name in sys.modules or self.imported.exists()


@pytest.fixture
def sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sentinel]:
    folder = tmp_path / "modules"
    folder.mkdir()
    name = f"tt_sentinel_{uuid.uuid4().hex[:8]}"
    imported, ran = tmp_path / "imported.flag", tmp_path / "ran.flag"
    (folder / f"{name}.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(imported)!r}).write_text('imported')\n"
        "from typedtiger.runner import BaseRunner\n"
        "def run(*args, **kwargs):\n"
        f"    pathlib.Path({str(ran)!r}).write_text('ran')\n"
        "class Runner(BaseRunner):\n"
        "    pass\n"
        "def retry(retry_number, *args):\n"
        "    return 0.0\n"
        "class Boom(Exception):\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    yield Sentinel(name, folder, imported, ran)
    sys.modules.pop(name, None)


def allowing(
    redis_db: redis.Redis[str],
    allowed: tuple[str, ...] | None = ALLOWED,
    *,
    any_module: bool = False,
) -> Tiger:
    config = attrs.evolve(FAST, allowed_task_modules=allowed, allow_any_module=any_module)
    return Tiger(RedisBackend(redis_db), config)


def plant(client: redis.Redis[str], func: str, *args: object, **fields: object) -> str:
    """Write a task straight into Redis, as anyone with write access to it could."""
    task_id = uuid.uuid4().hex
    payload = {"id": task_id, "func": func, "args": list(args), "kwargs": {}, **fields}
    client.set(f"t:task:{task_id}", json.dumps(payload))
    client.zadd(f"t:queued:{QUEUE}", {task_id: datetime.now(UTC).timestamp()})
    client.sadd("t:queued", QUEUE)
    return task_id


def errored(client: redis.Redis[str], task_id: str) -> ExecutionRecord | None:
    """The last execution record of ``task_id`` if it is in the error state."""
    if client.zscore(f"t:error:{QUEUE}", task_id) is None:
        return None
    records = client.lrange(f"t:task:{task_id}:executions", -1, -1)
    return decode_execution(records[0]) if records else None


def fork_worker(tiger: Tiger) -> None:
    tiger.run_worker(executor=ForkExecutor(kill_grace=0.3), once=True)


def lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


def assert_refused(record: ExecutionRecord | None, name: str) -> None:
    assert record is not None, "the task is not in the error state"
    assert record.exception_name == "typedtiger.exceptions:TaskImportError"
    assert record.exception is not None
    assert name in record.exception and "allowed_task_modules" in record.exception


def test_the_sentinel_is_imported_with_allow_any_module(
    redis_db: redis.Redis[str], sentinel: Sentinel
) -> None:
    """Control: with allow_any_module the worker imports what the payload names."""
    plant(redis_db, f"{sentinel.name}:run")
    fork_worker(allowing(redis_db, None, any_module=True))
    assert sentinel.was_imported() and sentinel.ran.exists()


def test_by_default_only_registered_tasks_run(
    redis_db: redis.Redis[str], sentinel: Sentinel
) -> None:
    task_id = plant(redis_db, f"{sentinel.name}:run")
    fork_worker(allowing(redis_db, None))
    assert not sentinel.was_imported()
    assert_refused(errored(redis_db, task_id), f"{sentinel.name}:run")


@pytest.mark.parametrize(
    "hostile",
    [
        "os:system",
        "os.system",  # TaskTiger's older "module.name" form
        "subprocess:getoutput",
        "SENTINEL:run",
        pytest.param(
            "tests.chaos_tasks:os.system",
        ),
    ],
)
def test_hostile_function_is_refused_and_nothing_is_imported(
    redis_db: redis.Redis[str], sentinel: Sentinel, tmp_path: Path, hostile: str
) -> None:
    touched = tmp_path / "touched.flag"
    func = hostile.replace("SENTINEL", sentinel.name)
    task_id = plant(redis_db, func, f"touch {touched}")
    ledger = tmp_path / "ledger.txt"
    tiger = allowing(redis_db)
    tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger), "allowed"))

    fork_worker(tiger)

    assert not touched.exists(), f"{func} ran"
    assert not sentinel.was_imported()
    assert_refused(errored(redis_db, task_id), func)
    assert lines(ledger)[-1].split()[:2] == ["end", "allowed"]


@pytest.mark.parametrize(
    "field",
    [
        "runner_class",
        pytest.param(
            "retry_method",
        ),
        pytest.param(
            "retry_on",
        ),
    ],
)
def test_hostile_runner_retry_function_and_retry_on_are_refused(
    redis_db: redis.Redis[str], sentinel: Sentinel, tmp_path: Path, field: str
) -> None:
    ledger = tmp_path / "ledger.txt"
    hostile = {
        "runner_class": f"{sentinel.name}:Runner",
        "retry_method": [f"{sentinel.name}:retry", []],
        "retry_on": [f"{sentinel.name}:Boom"],
    }[field]
    task_id = plant(redis_db, "tests.chaos_tasks:run", str(ledger), "hostile", **{field: hostile})

    fork_worker(allowing(redis_db))

    assert not sentinel.was_imported()
    assert lines(ledger) == [], "the task ran"
    assert_refused(errored(redis_db, task_id), sentinel.name)


def test_a_hostile_retry_function_is_never_imported_and_the_task_never_runs(
    redis_db: redis.Redis[str], sentinel: Sentinel
) -> None:
    task_id = plant(
        redis_db, "tests.chaos_tasks:fail", "boom", retry_method=[f"{sentinel.name}:retry", []]
    )
    fork_worker(allowing(redis_db))
    assert not sentinel.was_imported()
    record = errored(redis_db, task_id)
    assert record is not None and record.exception != "boom"  # refused before it ran
    assert_refused(record, f"{sentinel.name}:retry")


def test_registered_tasks_are_allowed_whatever_their_module(
    redis_db: redis.Redis[str], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    tiger = allowing(redis_db, ("somewhere.else",))
    tiger.adopt(chaos_tasks.tiger)
    tiger.enqueue(chaos_tasks.registered.spec(str(ledger), "ok"))
    unregistered = tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger), "refused"))

    fork_worker(tiger)

    assert lines(ledger) == ["registered ok"]
    assert_refused(errored(redis_db, unregistered.id), "tests.chaos_tasks:run")


@pytest.mark.parametrize(
    ("allowed", "runs"),
    [(("tests",), True), (("tests.chaos_tasks",), True), (("tests.chaos",), False)],
)
def test_allowed_modules_match_whole_module_names(
    redis_db: redis.Redis[str], tmp_path: Path, allowed: tuple[str, ...], runs: bool
) -> None:
    ledger = tmp_path / "ledger.txt"
    tiger = allowing(redis_db, allowed)
    task = tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger), "a"))
    fork_worker(tiger)
    assert bool(lines(ledger)) is runs
    if not runs:
        assert_refused(errored(redis_db, task.id), "tests.chaos_tasks:run")


def test_worker_command_allow_module_sets_the_allowlist(
    redis_db: redis.Redis[str], sentinel: Sentinel, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    hostile = plant(redis_db, f"{sentinel.name}:run")
    shell = plant(redis_db, "os:system", f"touch {tmp_path / 'touched.flag'}")
    allowed = plant(redis_db, "tests.chaos_tasks:run", str(ledger), "allowed")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sentinel.folder), str(REPO)])}
    command = [
        sys.executable, "-m", "typedtiger.cli", "worker", "--url", REDIS_URL,
        "--allow-module", "tests.worker_tasks,tests.chaos_tasks", "--allow-module", "json",
        "--exit-after", "idle",
    ]  # fmt: skip
    result = subprocess.run(
        command, check=False, cwd=REPO, env=env, capture_output=True, timeout=60
    )

    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert not sentinel.imported.exists() and not (tmp_path / "touched.flag").exists()
    assert_refused(errored(redis_db, hostile), sentinel.name)
    assert_refused(errored(redis_db, shell), "os:system")
    assert lines(ledger)[-1].split()[:2] == ["end", "allowed"]
    assert redis_db.zscore(f"t:error:{QUEUE}", allowed) is None
