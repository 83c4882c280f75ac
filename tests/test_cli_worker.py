"""`typedtiger worker` as users run it: the console script in a subprocess, on real Redis.

The worker runs the application's own Tiger (`--app`): its backend and Config reach the worker
(batch size, hard timeout, allowlist, prefix); settings come from flags, the environment and the
app's Config in that order; a payload naming a function nobody vouched for is refused by
default; an async function runs to its end (the fork executor runs its coroutine); every
command-line mistake is a one-line error with exit status 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import redis

from tests import chaos_tasks, cli_app, cli_app_extra
from tests.conftest import REDIS_URL
from tests.test_security import plant
from typedtiger import TaskSpec, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.serialization import decode_execution

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parent.parent
#: The console script, as users run it (``python -m`` would put the current directory on
#: sys.path by itself and hide whether the command does).
TYPEDTIGER = str(Path(sys.executable).with_name("typedtiger"))


def cli_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the console script runs in: none of our TYPEDTIGER_ settings (but the
    test Redis URL), the repository importable, then ``env``."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TYPEDTIGER_") or key == "TYPEDTIGER_TEST_REDIS_URL"
    }
    environment.pop("REDIS_URL", None)
    environment["PYTHONPATH"] = str(REPO)
    environment.update(env or {})
    return environment


def typedtiger(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TYPEDTIGER, *args],
        check=False,
        cwd=cwd,
        env=cli_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_app_worker(*args: str, env: Mapping[str, str] | None = None) -> str:
    """Runs the app's worker until idle; its log (stderr)."""
    result = typedtiger("worker", "--app", "tests.cli_app", "--exit-after", "idle", *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stderr


def app_tiger(client: redis.Redis[str]) -> Tiger:
    return Tiger(RedisBackend(client), cli_app.CONFIG)


def printed_config(*args: str, env: Mapping[str, str] | None = None) -> dict[str, object]:
    result = typedtiger("worker", *args, "--print-config", env=env)
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert isinstance(settings, dict)
    return settings


def config_of(settings: Mapping[str, object]) -> Mapping[str, object]:
    config = settings["config"]
    assert isinstance(config, dict)
    return config


def last_exception(client: redis.Redis[str], prefix: str, task_id: str) -> str:
    record = decode_execution(client.lrange(f"{prefix}:task:{task_id}:executions", -1, -1)[0])
    return f"{record.exception_name}: {record.exception}"


# --- the app's Config reaches the worker ------------------------------------------------------


def test_the_apps_batch_size_reaches_the_worker(redis_db: redis.Redis[str]) -> None:
    tiger = app_tiger(redis_db)
    tiger.enqueue_many([cli_app.bulk.spec() for _ in range(6)])

    run_app_worker()

    assert redis_db.lrange(cli_app.RAN, 0, -1) == ["batch 3", "batch 3"]


def test_the_apps_hard_timeout_reaches_the_worker(redis_db: redis.Redis[str]) -> None:
    tiger = app_tiger(redis_db)
    task = tiger.enqueue(cli_app.slow.spec(3.0))

    run_app_worker()

    assert redis_db.lrange(cli_app.RAN, 0, -1) == []
    assert redis_db.zscore("app:error:slow", task.id) is not None
    assert last_exception(redis_db, "app", task.id).startswith(
        "tasktiger.exceptions:JobTimeoutException"
    )


def test_the_apps_allowlist_reaches_the_worker(redis_db: redis.Redis[str], tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    tiger = app_tiger(redis_db)
    allowed = tiger.enqueue(TaskSpec.of(cli_app_extra.record, "allowed"))
    outside = tiger.enqueue(TaskSpec.of(chaos_tasks.run, str(ledger), "outside"))

    run_app_worker()

    assert redis_db.lrange(cli_app.RAN, 0, -1) == ["record allowed"]
    assert redis_db.zscore("app:error:default", allowed.id) is None
    assert not ledger.exists()
    refusal = last_exception(redis_db, "app", outside.id)
    assert "TaskImportError" in refusal and "tests.chaos_tasks:run" in refusal


@pytest.mark.parametrize(
    "modules",
    [(), ("-m", "tests.cli_app_extra")],
    ids=["plain", "with -m"],
)
def test_a_hostile_payload_is_refused_with_the_default_settings(
    redis_db: redis.Redis[str], tmp_path: Path, modules: Sequence[str]
) -> None:
    flag = tmp_path / "touched.flag"
    shell = plant(redis_db, "os:system", f"touch {flag}")

    result = typedtiger("worker", "--url", REDIS_URL, *modules, "--exit-after", "idle")

    assert result.returncode == 0, result.stderr
    assert not flag.exists()
    assert redis_db.zscore("t:error:default", shell) is not None
    refusal = last_exception(redis_db, "t", shell)
    assert refusal.startswith("typedtiger.exceptions:TaskImportError: refusing to run function")
    assert "'os:system'" in refusal and "--allow-any-module" in refusal
    assert "allow_any_module set" not in result.stderr


def test_an_async_task_named_by_string_runs_to_its_end(
    redis_db: redis.Redis[str], tmp_path: Path
) -> None:
    done = tmp_path / "done"
    task_id = plant(redis_db, "tests.async_tasks:touch", str(done))

    result = typedtiger(
        "worker", "--url", REDIS_URL, "-m", "tests.async_tasks", "--exit-after", "idle"
    )

    assert result.returncode == 0, result.stderr
    assert done.read_text() == "ran"
    assert redis_db.exists(f"t:task:{task_id}") == 0
    assert "was never awaited" not in result.stderr


def test_allow_any_module_runs_any_function_and_warns_at_start(
    redis_db: redis.Redis[str],
) -> None:
    task_id = plant(redis_db, "tests.cli_app_extra:record", "anything")

    result = typedtiger("worker", "--url", REDIS_URL, "--allow-any-module", "--exit-after", "idle")

    assert result.returncode == 0, result.stderr
    assert redis_db.lrange(cli_app.RAN, 0, -1) == ["record anything"]
    assert redis_db.zscore("t:error:default", task_id) is None
    (warning,) = [
        line for line in map(json.loads, result.stderr.splitlines()) if line["level"] == "warning"
    ]
    assert warning["event"].startswith("allow_any_module set: this worker runs any importable")


def test_the_ready_line_shows_the_effective_settings(redis_db: redis.Redis[str]) -> None:
    log = run_app_worker("--default-hard-timeout", "2.5", "-c", "2")

    ready = next(line for line in map(json.loads, log.splitlines()) if line.get("event") == "ready")
    assert ready["concurrency"] == 2
    assert ready["storage"].endswith("prefix='app')")
    assert ready["settings"]["default_hard_timeout"] == 2.5
    assert ready["settings"]["batch_queues"] == {"bulk": 3}
    assert ready["settings"]["allowed_task_modules"] == ["tests.cli_app_extra", "tests.cli_app"]


# --- precedence: flag > environment > app's Config > default -----------------------------------


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {}, 1.0),  # the app's Config
        ((), {"TYPEDTIGER_DEFAULT_HARD_TIMEOUT": "9"}, 9.0),  # environment over the app
        (("--default-hard-timeout", "5"), {"TYPEDTIGER_DEFAULT_HARD_TIMEOUT": "9"}, 5.0),  # flag
    ],
)
def test_settings_precedence_flag_environment_app(
    args: Sequence[str], env: Mapping[str, str], expected: float
) -> None:
    config = config_of(printed_config("--app", "tests.cli_app", *args, env=env))
    assert config["default_hard_timeout"] == expected
    assert config["prefix"] == "app"


def test_without_an_app_the_defaults_apply_under_environment_and_flags() -> None:
    env = {"TYPEDTIGER_URL": REDIS_URL, "TYPEDTIGER_BATCH_QUEUES": "bulk=4 other=2"}
    config = config_of(printed_config(env=env))
    assert config["default_hard_timeout"] == 300.0
    assert config["batch_queues"] == {"bulk": 4, "other": 2}
    config = config_of(printed_config("--batch-queue", "bulk=7", env=env))
    assert config["batch_queues"] == {"bulk": 7}


def test_the_url_comes_from_the_environment_and_is_never_printed() -> None:
    settings = printed_config(env={"REDIS_URL": "redis://:s3cret@127.0.0.1:6379/7"})
    assert settings["storage"] == "RedisBackend(redis://127.0.0.1:6379/7, prefix='t')"
    settings = printed_config(
        "--url",
        "redis://:s3cret@127.0.0.1:6379/5",
        env={"REDIS_URL": "redis://127.0.0.1:6379/7"},
    )
    assert settings["storage"] == "RedisBackend(redis://127.0.0.1:6379/5, prefix='t')"
    assert "s3cret" not in json.dumps(settings)


def test_modules_named_on_the_command_line_are_allowed_unless_any_module_is() -> None:
    env = {"TYPEDTIGER_URL": REDIS_URL}
    config = config_of(
        printed_config("-m", "tests.cli_app_extra", "--allow-module", "json", env=env)
    )
    assert config["allowed_task_modules"] == ["json", "tests.cli_app_extra"]
    assert config["allow_any_module"] is False
    config = config_of(printed_config("--allow-any-module", env=env))
    assert config["allow_any_module"] is True
    assert config["allowed_task_modules"] is None


def test_the_current_directory_is_on_the_import_path(tmp_path: Path) -> None:
    package = tmp_path / "shopapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        "from typedtiger import Config, Tiger\n"
        "from typedtiger.backends.fake import FakeBackend\n"
        "tiger = Tiger(FakeBackend(), Config(default_queue='shop'))\n"
    )
    result = typedtiger("worker", "--app", "shopapp.tasks:tiger", "--print-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config"]["default_queue"] == "shop"


# --- mistakes: one line, exit status 2 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-c", "100000000"), "'--concurrency': 100000000 is not in the range 1<=x<=256"),
        (("--exit-after", "nan"), "must be a finite number of seconds"),
        (("-p", "99999"), "99999 is not in the range 1<=x<=65535"),
        (("--default-hard-timeout", "nan"), "not a finite number of seconds"),
        (("--lock-retry", "1e308"), "Config.lock_retry must be a number of seconds"),
        (("--allow-module", ""), "--allow-module: names nothing"),
        (("--batch-queue", "bulk"), "is not QUEUE=SIZE"),
        (("--url", "http://x"), "Redis URL must specify one of the following schemes"),
        (("--url", "rediss://127.0.0.1/0?ssl_cert_reqs=bogus"), "ssl_cert_reqs"),
        (("-m", "no.such.module"), "cannot import module 'no.such.module'"),
        (("--app", "tests.cli_app:nothing"), "has no 'nothing'"),
        (("--app", "json:dumps"), "calling dumps() failed"),
        (("--app", "tests.cli_app", "--url", REDIS_URL), "drop --url"),
    ],
)
def test_command_line_mistakes_are_one_line_errors(args: Sequence[str], message: str) -> None:
    result = typedtiger("worker", "--exit-after", "idle", *args, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and message in error[0], result.stderr


def test_version() -> None:
    result = typedtiger("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("typedtiger, version ")


def test_a_task_state_is_unchanged_by_print_config(redis_db: redis.Redis[str]) -> None:
    task = app_tiger(redis_db).enqueue(cli_app.slow.spec(0.0))
    printed_config("--app", "tests.cli_app")
    assert app_tiger(redis_db).get_queue_sizes("slow")[TaskState.QUEUED] == 1
    assert redis_db.lrange(cli_app.RAN, 0, -1) == []
    assert task.id in redis_db.zrange("app:queued:slow", 0, -1)


def test_the_asyncio_executor_runs_async_tasks_side_by_side(
    redis_db: redis.Redis[str], tmp_path: Path
) -> None:
    folder = tmp_path / "met"
    folder.mkdir()
    ids = [plant(redis_db, "tests.async_tasks:meet", str(folder), f"t{n}", 4) for n in range(4)]

    result = typedtiger(
        "worker", "--url", REDIS_URL, "-m", "tests.async_tasks", "--executor", "asyncio",
        "-c", "4", "--exit-after", "idle",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["t0", "t1", "t2", "t3"]
    assert [redis_db.exists(f"t:task:{task_id}") for task_id in ids] == [0] * 4
