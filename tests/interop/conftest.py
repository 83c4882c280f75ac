"""Fixtures of the TaskTiger interop suite.

The real ``tasktiger`` package (it pins redis<5) lives in its own virtualenv, created once and
cached under ``~/.cache/typedtiger-interop/`` ($TYPEDTIGER_INTEROP_VENV overrides the path); it
is driven only through subprocesses (``tt_driver.py``, TaskTiger's own ``tasktiger`` CLI).
Both sides share one Redis database and the prefix "t". The database is
$TYPEDTIGER_INTEROP_REDIS_URL when set (it is flushed around each test: name one the tests may
empty); otherwise the session starts a redis-server of its own on a free loopback port
(tests/redis_server.py) and uses its db 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis

from tests import interop_tasks
from tests.conftest import redis_client, unavailable
from tests.interop.typed_worker import FAST
from tests.redis_server import RedisServerError, own_redis_server
from tests.waiting import scaled
from typedtiger import Config, Tiger, Worker
from typedtiger.backends.redis import RedisBackend
from typedtiger.executor import Executor, SyncExecutor

TASKTIGER_VERSION = "0.26.3"
REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("tt_driver.py")
JOB_TIMEOUT = "tasktiger.exceptions:JobTimeoutException"
TASKS = "tests.interop_tasks"

JSONObject = dict[str, Any]


def fn(name: str) -> str:
    """The serialized name of a function of tests/interop_tasks.py."""
    return f"{TASKS}:{name}"


# --- the TaskTiger virtualenv -----------------------------------------------------------------


def venv_path() -> Path:
    """Where the TaskTiger virtualenv is cached."""
    override = os.environ.get("TYPEDTIGER_INTEROP_VENV")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "typedtiger-interop" / f"venv-tasktiger-{TASKTIGER_VERSION}"


def _stamp() -> JSONObject:
    return {
        "tasktiger": TASKTIGER_VERSION,
        "python": list(sys.version_info[:2]),
        "base": sys.base_prefix,
    }


def _create_venv(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"tasktiger=={TASKTIGER_VERSION}",
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.fail(
                f"cannot build the TaskTiger virtualenv ({' '.join(step)}):\n"
                f"{done.stdout}\n{done.stderr}"
            )


@pytest.fixture(scope="session")
def tasktiger_venv() -> Path:
    """A virtualenv with tasktiger==0.26.3, built on first use and reused (stamp file)."""
    venv = venv_path()
    venv.parent.mkdir(parents=True, exist_ok=True)
    stamp = venv / "typedtiger-interop-stamp.json"
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent sessions build it once
        if not (stamp.exists() and json.loads(stamp.read_text()) == _stamp()):
            _create_venv(venv)
            stamp.write_text(json.dumps(_stamp()))
    return venv


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def interop_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """$TYPEDTIGER_INTEROP_REDIS_URL, else the URL of a redis-server of the session's own."""
    named = os.environ.get("TYPEDTIGER_INTEROP_REDIS_URL")
    if named:
        yield named
        return
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(own_redis_server(tmp_path_factory.mktemp("redis")))
        except RedisServerError as exc:
            unavailable(f"set $TYPEDTIGER_INTEROP_REDIS_URL or install redis-server: {exc}")
        yield server.url()


@pytest.fixture
def rdb(interop_url: str) -> Iterator[redis.Redis[str]]:
    """The shared interop database, empty."""
    client = redis_client(interop_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# --- processes --------------------------------------------------------------------------------


class Processes:
    """Subprocesses started by a test, each in its own session; killed (group) at teardown."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
        log_path = self._logs / f"{name}-{len(self._started)}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                list(argv),
                cwd=REPO,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._started.append(popen)
        return Process(popen, log_path)

    def stop_all(self) -> None:
        for popen in self._started:
            kill_group(popen)


class Process:
    """A started worker process and its log."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.popen = popen
        self.log = log

    def kill(self) -> None:
        """SIGKILL the process and its forked children (its whole session)."""
        kill_group(self.popen)

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM the process only (a warm shutdown) and wait for it (``timeout`` scaled)."""
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=scaled(timeout))

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit (``timeout`` scaled); kill it and fail after that."""
        try:
            return self.popen.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"process did not exit; log:\n{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def kill_group(popen: subprocess.Popen[Any]) -> None:
    """SIGKILL the session ``popen`` leads (it was started with start_new_session)."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(timeout=10)
    # Forked children may outlive their parent within the group: kill the rest too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)


@pytest.fixture
def processes(tmp_path: Path, rdb: redis.Redis[str]) -> Iterator[Processes]:
    """Processes of this test; they are killed before the database is flushed."""
    started = Processes(tmp_path)
    yield started
    started.stop_all()


# --- the TaskTiger side -----------------------------------------------------------------------


class DriverServer:
    """One ``tt_driver.py --serve`` process for the session: a request costs no interpreter
    start. It is restarted if a request kills it (e.g. TaskTiger's SyncExecutor exits its
    worker after a hard timeout)."""

    def __init__(self, venv: Path, env: Mapping[str, str], log: Path) -> None:
        self._argv = [str(venv / "bin" / "python"), str(DRIVER), "--serve"]
        self._env = dict(env)
        self._log = log
        self._popen: subprocess.Popen[str] | None = None

    def _process(self) -> subprocess.Popen[str]:
        if self._popen is None or self._popen.poll() is not None:
            with open(self._log, "a") as log:
                self._popen = subprocess.Popen(
                    self._argv,
                    cwd=REPO,
                    env=self._env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    start_new_session=True,
                )
        return self._popen

    def request(self, request: str, timeout: float) -> JSONObject:
        process = self._process()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(request + "\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if ready else ""
        if not line:
            self.close()
            tail = self._log.read_text(errors="replace")[-6000:]
            raise AssertionError(f"tt_driver gave no answer to {request[:2000]}:\n{tail}")
        reply: JSONObject = json.loads(line)
        return reply

    def close(self) -> None:
        if self._popen is not None:
            kill_group(self._popen)
            for stream in (self._popen.stdin, self._popen.stdout):
                if stream is not None:
                    stream.close()
            self._popen = None


def driver_env(ledger: Path | None = None) -> dict[str, str]:
    """The environment of TaskTiger processes: the repository importable, nothing of ours."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PYTHONPATH"] = str(REPO)
    if ledger is not None:
        env["INTEROP_LEDGER"] = str(ledger)
    return env


@pytest.fixture(scope="session")
def driver_server(
    tasktiger_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DriverServer]:
    log = tmp_path_factory.mktemp("tasktiger") / "driver-server.log"
    server = DriverServer(tasktiger_venv, driver_env(), log)
    yield server
    server.close()


class TaskTigerSide:
    """The real TaskTiger, run by its virtualenv's python through tt_driver.py."""

    def __init__(
        self, venv: Path, server: DriverServer, processes: Processes, ledger: Path, url: str
    ) -> None:
        self.url = url
        self.venv = venv
        self._server = server
        self._processes = processes
        self._ledger = ledger
        self.env = driver_env(ledger)

    def _request(
        self,
        commands: Sequence[JSONObject],
        config: Mapping[str, object] | None,
        decorate: Sequence[JSONObject],
    ) -> str:
        request = {
            "url": self.url,
            "config": dict(config or {}),
            "decorate": list(decorate),
            "commands": list(commands),
            "env": {"INTEROP_LEDGER": str(self._ledger)},
        }
        return json.dumps(request)

    def run(
        self,
        *commands: JSONObject,
        config: Mapping[str, object] | None = None,
        decorate: Sequence[JSONObject] = (),
        timeout: float = 60,
    ) -> list[JSONObject]:
        """Run commands (in the session's driver server); their results."""
        reply = self._server.request(self._request(commands, config, decorate), timeout)
        if "error" in reply:
            raise AssertionError(f"tt_driver failed on {commands!r}:\n{reply['error']}")
        results: list[JSONObject] = reply["results"]
        return results

    def one(
        self,
        command: JSONObject,
        config: Mapping[str, object] | None = None,
        decorate: Sequence[JSONObject] = (),
    ) -> JSONObject:
        """Run one command; its result."""
        return self.run(command, config=config, decorate=decorate)[0]

    def start(
        self,
        *commands: JSONObject,
        config: Mapping[str, object] | None = None,
        decorate: Sequence[JSONObject] = (),
    ) -> Process:
        """Run commands in a driver process in the background (e.g. a worker loop)."""
        request = self._request(commands, config, decorate)
        python = str(self.venv / "bin" / "python")
        argv = [python, str(DRIVER), request]
        return self._processes.start("tasktiger-driver", argv, self.env)

    def cli_worker(self, *args: str) -> Process:
        """TaskTiger's own ``tasktiger`` command (a worker with TaskTiger's default config)."""
        url = urlparse(self.url)
        connection = [
            "-h",
            url.hostname or "127.0.0.1",
            "-p",
            str(url.port or 6379),
            "-n",
            url.path.strip("/") or "0",
        ]
        argv = [str(self.venv / "bin" / "tasktiger"), *connection, *args]
        return self._processes.start("tasktiger-cli", argv, self.env)

    # --- conveniences ---------------------------------------------------------------------

    def delay(self, func: str, *args: object, **options: object) -> JSONObject:
        """``TaskTiger.delay(func, args=args, ...)``; kwargs of the task go in ``kwargs=``."""
        return self.one({"op": "delay", "func": fn(func), "args": list(args), **options})

    def tasks(self, queue: str, state: str, load_executions: int = 0) -> list[JSONObject]:
        """``Task.tasks_from_queue(tiger, queue, state, load_executions=...)``."""
        request = {"op": "tasks", "queue": queue, "state": state}
        result = self.one({**request, "load_executions": load_executions})
        found: list[JSONObject] = result["tasks"]
        return found

    def sizes(self, queue: str) -> dict[str, int]:
        """``tiger.get_queue_sizes(queue)``."""
        return self.one({"op": "sizes", "queue": queue})

    def work(
        self,
        rounds: int = 1,
        config: Mapping[str, object] | None = None,
        decorate: Sequence[JSONObject] = (),
        **options: object,
    ) -> None:
        """``Worker(tiger, ...).run(once=True)``, ``rounds`` times: one run moves the scheduled
        tasks that are due to queued *after* processing the queues, the next one runs them."""
        command = {"op": "worker", "once": True, **options}
        self.run(*[command] * rounds, config=config, decorate=decorate)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """The file the interop tasks append their JSON lines to."""
    return tmp_path / "ledger.jsonl"


@pytest.fixture
def tt(
    tasktiger_venv: Path,
    driver_server: DriverServer,
    processes: Processes,
    ledger: Path,
    rdb: redis.Redis[str],
    interop_url: str,
) -> TaskTigerSide:
    """The TaskTiger side, on the (flushed) interop database."""
    return TaskTigerSide(tasktiger_venv, driver_server, processes, ledger, interop_url)


# --- the typedtiger side ----------------------------------------------------------------------


@pytest.fixture
def tiger(rdb: redis.Redis[str]) -> Tiger:
    """A typedtiger Tiger on the interop database, with the short timings of typed_worker."""
    return Tiger(RedisBackend(rdb), Config(**FAST))


def tiger_with(rdb: redis.Redis[str], **config: Any) -> Tiger:
    """A typedtiger Tiger on the interop database with some settings changed."""
    return Tiger(RedisBackend(rdb), Config(**{**FAST, **config}))


def run_typed(
    tiger: Tiger,
    queues: Sequence[str] | None = None,
    executor: Executor | None = None,
    **options: Any,
) -> None:
    """A typedtiger worker in this process until nothing is due (SyncExecutor by default)."""
    worker = Worker(tiger, queues=queues, executor=executor or SyncExecutor(), **options)
    worker.run(once=True)


class TypedWorkers:
    """typedtiger worker processes (tests/interop/typed_worker.py)."""

    def __init__(self, processes: Processes, ledger: Path, url: str) -> None:
        self._url = url
        self._processes = processes
        self._env = {**os.environ, "INTEROP_LEDGER": str(ledger)}

    def start(self, *args: str, setup: Mapping[str, object] | None = None) -> Process:
        argv = [
            sys.executable,
            "-m",
            "tests.interop.typed_worker",
            self._url,
            json.dumps(dict(setup or {})),
            *args,
        ]
        return self._processes.start("typedtiger-worker", argv, self._env)


@pytest.fixture
def typed_workers(
    processes: Processes, ledger: Path, rdb: redis.Redis[str], interop_url: str
) -> TypedWorkers:
    return TypedWorkers(processes, ledger, interop_url)


# --- helpers ----------------------------------------------------------------------------------


def entries(ledger: Path, event: str | None = None, label: str | None = None) -> list[JSONObject]:
    """The ledger lines with this event and label."""
    return [
        entry
        for entry in interop_tasks.read_ledger(ledger)
        if (event is None or entry["event"] == event) and (label is None or entry["label"] == label)
    ]


def labels(ledger: Path, event: str = "done") -> list[str]:
    """The labels of the ledger lines with ``event``, in order."""
    return [str(entry["label"]) for entry in entries(ledger, event)]
