"""ForkExecutor: real forks, real signals, small timeouts."""

from __future__ import annotations

import faulthandler
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from types import FrameType

import attrs
import pytest
import redis
from structlog.testing import capture_logs

from tests.waiting import scaled
from typedtiger import Config
from typedtiger._json import JSONValue
from typedtiger.backends.fake import FakeBackend
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import SystemClock
from typedtiger.executor import ExecutorSettings, ForkedJob, ForkExecutor, Job, RunJob, Running
from typedtiger.runner import BatchCall, DefaultRunner
from typedtiger.serialization import TaskPayload
from typedtiger.tiger import Tiger
from typedtiger.worker import Worker, process
from typedtiger.worker.heartbeat import Heartbeat, Heartbeats
from typedtiger.worker.job import Failed, Outcome, Succeeded
from typedtiger.worker.resolve import Resolver

JOB_TIMEOUT = "tasktiger.exceptions:JobTimeoutException"
CHILD_DIED = "typedtiger.exceptions:ChildProcessDied"
LINUX = sys.platform.startswith("linux")

# Runs functions by name; the outcomes' times are the system's.
TIGER = Tiger(FakeBackend(), Config(allowed_task_modules=("tests",)), clock=SystemClock())
RESOLVER = Resolver(TIGER)


# --- task functions (run in the forked child) ---------------------------------------------------


def ok() -> None:
    pass


def fail(message: str) -> None:
    raise ValueError(message)


def record_pid(path: str) -> None:
    Path(path).write_text(str(os.getpid()))


def record_pipes(path: str) -> None:
    """Write the inodes of the pipes this process holds."""
    inodes = []
    for name in os.listdir("/proc/self/fd"):
        with suppress(OSError):  # the listing's own descriptor
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith("pipe:["):
                inodes.append(target[6:-1])
    Path(path).write_text(" ".join(inodes))


def record_ids(path: str) -> None:
    Path(path).write_text(f"{os.getpid()} {os.getpgid(0)} {os.getsid(0)}")


def append_pid(path: str) -> None:
    with open(path, "a") as file:
        file.write(f"{os.getpid()}\n")


def append_length(path: str, text: str) -> None:
    with open(path, "a") as file:
        file.write(f"{len(text)}\n")


def sleep_for(seconds: float) -> None:
    time.sleep(seconds)


def record_pid_and_sleep(path: str, seconds: float) -> None:
    record_pid(path)
    time.sleep(seconds)


def sleep_deaf_to_alarm(how: str, seconds: float) -> None:
    if how == "ignore":
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
    else:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)


def exit_with(code: int) -> None:
    os._exit(code)


def kill_self(signum: int) -> None:
    faulthandler.disable()  # pytest enables it: no stack dump for the SIGSEGV case
    os.kill(os.getpid(), signum)
    time.sleep(5)


def stop_self_and_go_on(path: str) -> None:
    """SIGTERM and SIGINT itself, as a stop sent to every process would, then finish."""
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)
    Path(path).write_text("finished")


def terminate_a_program() -> None:
    """A program the task runs must take SIGTERM's default action (an ignored signal would
    stay ignored across exec)."""
    program = subprocess.Popen(["sleep", "30"])
    program.send_signal(signal.SIGTERM)
    if program.wait(timeout=10) != -signal.SIGTERM:
        raise AssertionError(f"the program ended with {program.returncode}")


def leave_a_grandchild(path: str, then: str) -> None:
    """Start a process that outlives the task (holding none of its pipes), then return or hang
    deaf to the hard timeout's alarm."""
    grandchild = subprocess.Popen(["sleep", "60"])
    Path(path).write_text(str(grandchild.pid))
    if then == "hang":
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(60)


def fail_with_size(size: int) -> None:
    raise ValueError("x" * size)


def fork_lingering_grandchild(path: str) -> None:
    """Leave behind a process that holds the write end of the outcome pipe."""
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(10)
        finally:
            os._exit(0)
    Path(path).write_text(str(pid))


class _SlowFlush:
    """A stdout whose flush, the child's last step after reporting, takes a while."""

    def __init__(self, path: str, seconds: float) -> None:
        self.path, self.seconds = path, seconds

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        time.sleep(self.seconds)
        Path(self.path).write_text("flushed")


def exit_slowly(path: str, seconds: float) -> None:
    sys.stdout = _SlowFlush(path, seconds)


@TIGER.task(batch=True)
def batch_count(calls: list[BatchCall]) -> None:
    raise ValueError(f"{len(calls)} calls: {[call['args'] for call in calls]}")


# --- helpers ----------------------------------------------------------------------------------


@attrs.frozen
class Work:
    """A job and how to run it in the current process (what a worker gives its executor)."""

    job: Job
    run: RunJob


def resolver(
    context_managers: tuple[Callable[[], AbstractContextManager[object]], ...] = (),
) -> Resolver:
    if not context_managers:
        return RESOLVER
    config = Config(allowed_task_modules=("tests",), child_context_managers=context_managers)
    return Resolver(Tiger(FakeBackend(), config, clock=SystemClock()))


def make_job(
    func: Callable[..., object],
    *args: JSONValue,
    hard_timeout: float = 5.0,
    context_managers: tuple[Callable[[], AbstractContextManager[object]], ...] = (),
) -> Work:
    payload = TaskPayload(id="t1", func=f"{__name__}:{func.__name__}", args=tuple(args))
    job = Job(
        queue="q", func=payload.func, batch=False, hard_timeout=hard_timeout, tasks=(payload,)
    )
    return Work(job, resolver(context_managers).run_job)


def fork_executor(kill_grace: float = 5.0) -> ForkExecutor:
    return ForkExecutor(kill_grace=kill_grace)


def start(executor: ForkExecutor, work: Work) -> ForkedJob:
    return executor.start(work.job, work.run)


def outcome_of(running: Running) -> Outcome:
    outcome = running.wait(None)
    assert outcome is not None
    return outcome


def execute_work(executor: ForkExecutor, work: Work) -> Outcome:
    return outcome_of(start(executor, work))


def run(work: Work, *, kill_grace: float = 5.0) -> Outcome:
    executor = fork_executor(kill_grace=kill_grace)
    try:
        outcome = execute_work(executor, work)
    finally:
        executor.close()
    assert_no_child_left()
    return outcome


def assert_no_child_left() -> None:
    with suppress(ChildProcessError):  # raised when there is no child at all
        assert os.waitpid(-1, os.WNOHANG) == (0, 0), "a child was left unreaped"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper that never comes counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether ``predicate`` came true within ``timeout`` s (scaled, tests/waiting.py)."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def read_pid(path: Path, timeout: float = 3.0) -> int:
    assert wait_until(lambda: path.exists() and path.read_text() != "", timeout)
    return int(path.read_text())


def failed(outcome: Outcome) -> Failed:
    assert isinstance(outcome, Failed), outcome
    return outcome


# --- outcomes ---------------------------------------------------------------------------------


def test_success() -> None:
    before = time.time()
    outcome = run(make_job(ok))
    assert isinstance(outcome, Succeeded)
    assert before <= outcome.time_started <= outcome.time_finished <= time.time()


def test_exception_becomes_failed_with_traceback() -> None:
    outcome = failed(run(make_job(fail, "boom")))
    assert outcome.exception_name == "builtins:ValueError"
    assert "builtins:Exception" in outcome.exception_mro
    assert outcome.message == "boom"
    assert outcome.traceback is not None
    assert "ValueError: boom" in outcome.traceback
    assert "in fail" in outcome.traceback
    assert outcome.time_started <= outcome.time_failed


def test_runs_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "pid"
    assert isinstance(run(make_job(record_pid, str(path))), Succeeded)
    child = int(path.read_text())
    assert child != os.getpid()
    assert not alive(child)


def test_context_managers_run_in_the_child(tmp_path: Path) -> None:
    path = tmp_path / "pid"

    @contextmanager
    def record() -> Iterator[None]:
        path.write_text(str(os.getpid()))
        yield

    assert isinstance(run(make_job(ok, context_managers=(record,))), Succeeded)
    assert int(path.read_text()) != os.getpid()


def test_batch_job() -> None:
    tasks = tuple(
        TaskPayload(id=f"t{n}", func=f"{__name__}:batch_count", args=(n,)) for n in (1, 2)
    )
    job = Job(queue="q", func=f"{__name__}:batch_count", batch=True, hard_timeout=5.0, tasks=tasks)
    assert failed(run(Work(job, RESOLVER.run_job))).message == "2 calls: [[1], [2]]"


def test_large_outcome_goes_through_the_pipe() -> None:
    size = 3 * 1024 * 1024  # far beyond a pipe's buffer, and in the traceback too
    outcome = failed(run(make_job(fail_with_size, size)))
    assert outcome.message == "x" * size
    assert outcome.traceback is not None
    assert len(outcome.traceback) > size


# --- hard timeout -----------------------------------------------------------------------------


def test_hard_timeout_raises_in_the_task() -> None:
    start = time.monotonic()
    outcome = failed(run(make_job(sleep_for, 10.0, hard_timeout=0.3)))
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < scaled(2.0)
    assert outcome.exception_name == JOB_TIMEOUT
    assert "0.3" in outcome.message
    assert outcome.traceback is not None
    assert "in sleep_for" in outcome.traceback  # where the task was when the alarm rang


@pytest.mark.parametrize("how", ["ignore", "block"])
def test_task_deaf_to_the_alarm_is_killed_after_the_grace(how: str) -> None:
    start = time.monotonic()
    with capture_logs() as logs:
        outcome = failed(
            run(make_job(sleep_deaf_to_alarm, how, 10.0, hard_timeout=0.3), kill_grace=0.3)
        )
    elapsed = time.monotonic() - start
    assert 0.6 <= elapsed < scaled(2.0)
    assert outcome.exception_name == JOB_TIMEOUT
    assert outcome.traceback is None
    assert any(log["event"] == "hard timeout: killing child" for log in logs)


def test_hard_timeout_when_forked_from_a_thread() -> None:
    outcomes: list[Outcome] = []
    thread = threading.Thread(
        target=lambda: outcomes.append(run(make_job(sleep_for, 10.0, hard_timeout=0.3)))
    )
    thread.start()
    thread.join(scaled(5))
    outcome = failed(outcomes[0])
    assert outcome.exception_name == JOB_TIMEOUT
    assert outcome.traceback is not None  # the SIGALRM path, not the SIGKILL one


# --- a child that dies --------------------------------------------------------------------


def test_exit_without_outcome() -> None:
    with capture_logs() as logs:
        outcome = failed(run(make_job(exit_with, 3)))
    assert outcome.exception_name == CHILD_DIED
    assert outcome.message == "the task's process exited with code 3"
    assert outcome.traceback is None
    assert any(log["event"] == "child died" for log in logs)


@pytest.fixture
def worker_sigterm_handler() -> Iterator[None]:
    """A Python SIGTERM handler in the parent, as the worker installs (the child must drop it)."""

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        raise RuntimeError("the worker's SIGTERM handler ran in the child")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("worker_sigterm_handler")
@pytest.mark.parametrize(
    ("signum", "label"),
    [
        (signal.SIGKILL, "SIGKILL (9)"),
        (signal.SIGSEGV, "SIGSEGV (11)"),
        (signal.SIGABRT, "SIGABRT (6)"),
    ],
)
def test_killed_by_a_signal(signum: int, label: str) -> None:
    outcome = failed(run(make_job(kill_self, signum)))
    assert outcome.exception_name == CHILD_DIED
    assert outcome.message == f"the task's process was killed by signal {label}"


@pytest.mark.usefixtures("worker_sigterm_handler")
def test_sigterm_and_sigint_leave_the_task_running(tmp_path: Path) -> None:
    path = tmp_path / "finished"
    assert isinstance(run(make_job(stop_self_and_go_on, str(path))), Succeeded)
    assert path.read_text() == "finished"


@pytest.mark.usefixtures("worker_sigterm_handler")
def test_programs_a_task_runs_take_sigterm_default_action() -> None:
    assert isinstance(run(make_job(terminate_a_program)), Succeeded)


def test_child_leads_its_own_session(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    assert isinstance(run(make_job(record_ids, str(path))), Succeeded)
    pid, pgid, sid = map(int, path.read_text().split())
    assert pid == pgid == sid != os.getsid(0)


@pytest.mark.parametrize(("then", "expected"), [("return", Succeeded), ("hang", Failed)])
def test_what_a_task_leaves_running_dies_with_it(
    tmp_path: Path, then: str, expected: type[Outcome]
) -> None:
    path = tmp_path / "pid"
    job = make_job(leave_a_grandchild, str(path), then, hard_timeout=1.0)  # (Popen first)
    try:
        assert isinstance(run(job, kill_grace=0.2), expected)
        grandchild = int(path.read_text())
        assert wait_until(lambda: not alive(grandchild), 5.0), "the grandchild outlived its task"
    finally:
        if path.exists():
            with suppress(ProcessLookupError):
                os.kill(int(path.read_text()), signal.SIGKILL)


def test_lingering_grandchild_does_not_delay_the_outcome(tmp_path: Path) -> None:
    path = tmp_path / "pid"
    start = time.monotonic()
    try:
        outcome = run(make_job(fork_lingering_grandchild, str(path)))
        assert time.monotonic() - start < scaled(2.0)
        assert isinstance(outcome, Succeeded)
        grandchild = int(path.read_text())
        assert wait_until(lambda: not alive(grandchild), 5.0)  # killed with its parent's group
    finally:
        if path.exists():
            with suppress(ProcessLookupError):
                os.kill(int(path.read_text()), signal.SIGKILL)


def test_a_child_that_reported_is_left_to_exit_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "flushed"
    executor = fork_executor()
    start = time.monotonic()
    outcome = execute_work(executor, make_job(exit_slowly, str(path), 1.5))
    assert isinstance(outcome, Succeeded)
    # The outcome did not wait for the exit: the child's last step (1.5 s) had not finished.
    assert not path.exists() and time.monotonic() - start < 1.5
    assert wait_until(path.exists, 5.0), "the child was killed after it reported"
    executor.close()
    assert_no_child_left()


# --- heartbeats -----------------------------------------------------------------------------


def beating(heartbeat: Callable[[], None], interval: float, work: Work) -> Outcome:
    """Run ``work`` with the worker's heartbeat thread beating ``heartbeat`` meanwhile."""
    heartbeats, beat = Heartbeats(interval), Heartbeat(heartbeat)
    executor = fork_executor()
    try:
        running = start(executor, work)
        heartbeats.add(beat)
        outcome = outcome_of(running)
        heartbeats.remove(beat)
    finally:
        executor.close()
    assert_no_child_left()
    return outcome


def test_heartbeat_is_called_while_the_task_runs() -> None:
    beats: list[float] = []
    started = time.monotonic()
    outcome = beating(lambda: beats.append(time.monotonic()), 0.1, make_job(sleep_for, 0.55))
    elapsed = time.monotonic() - started  # more than 0.55 s when forking is slow
    assert isinstance(outcome, Succeeded)
    assert 4 <= len(beats) <= elapsed / 0.1 + 1  # every interval, not more often


def test_failing_heartbeat_does_not_stop_the_wait() -> None:
    calls: list[int] = []

    def heartbeat() -> None:
        calls.append(1)
        raise ConnectionError("redis is down")

    with capture_logs() as logs:
        outcome = beating(heartbeat, 0.05, make_job(sleep_for, 0.3))
    assert isinstance(outcome, Succeeded)
    assert len(calls) >= 3
    assert any(log["event"] == "heartbeat failed" for log in logs)


def test_a_wait_with_a_timeout_returns_none_until_the_outcome() -> None:
    executor = fork_executor()
    try:
        running = start(executor, make_job(sleep_for, 0.3))
        assert running.wait(0) is None
        assert running.wait(0.05) is None
        outcome = None
        while outcome is None:
            outcome = running.wait(0.05)
        assert isinstance(outcome, Succeeded)
        assert running.wait(0) is outcome  # (asked again: the same)
    finally:
        executor.close()
    assert_no_child_left()


def test_interrupted_parent_kills_and_reaps_the_child(tmp_path: Path) -> None:
    path = tmp_path / "pid"

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def send_when_started() -> None:
        if wait_until(lambda: path.exists() and path.read_text() != "", 5.0):
            os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    sender = threading.Thread(target=send_when_started)
    try:
        sender.start()
        with pytest.raises(KeyboardInterrupt):  # raised in the wait, in the main thread
            run(make_job(record_pid_and_sleep, str(path), 30.0))
    finally:
        sender.join()
        signal.signal(signal.SIGUSR1, previous)
    assert not alive(int(path.read_text()))
    assert_no_child_left()


# --- the child never outlives its worker ------------------------------------------------------


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux-only")
def test_child_dies_with_its_worker(tmp_path: Path) -> None:
    path = tmp_path / "pid"
    job = make_job(record_pid_and_sleep, str(path), 30.0, hard_timeout=60.0)
    worker = os.fork()
    if worker == 0:
        try:
            execute_work(fork_executor(), job)
        finally:
            os._exit(0)
    try:
        child = read_pid(path)
    finally:
        os.kill(worker, signal.SIGKILL)
        os.waitpid(worker, 0)
    assert wait_until(lambda: not alive(child), 2.0), "the task's process outlived its worker"
    assert_no_child_left()


# --- construction and imports -----------------------------------------------------------------


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kill_grace"):
        ForkExecutor(kill_grace=-1)
    with pytest.raises(ValueError, match="heartbeat interval"):
        Heartbeats(0)
    assert repr(ForkExecutor(kill_grace=2)) == "ForkExecutor(kill_grace=2)"


def test_fork_module_imports_first() -> None:
    code = (
        "import typedtiger.worker.fork as f, typedtiger.executor as e; "
        "assert e.ForkExecutor is f.ForkExecutor"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=30)


def test_without_pidfd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where pidfd_open is missing, the parent polls waitpid instead: same results."""
    monkeypatch.setattr(process, "open_pidfd", lambda _pid: None)
    assert isinstance(run(make_job(ok)), Succeeded)
    assert failed(run(make_job(exit_with, 3))).message == "the task's process exited with code 3"
    assert failed(run(make_job(fail_with_size, 1 << 20))).message == "x" * (1 << 20)
    test_lingering_grandchild_does_not_delay_the_outcome(tmp_path)


def test_kill_grace_defaults_to_configs() -> None:
    assert ForkExecutor().kill_grace == Config().hard_timeout_kill_grace
    configured = ForkExecutor()
    configured.bind(ExecutorSettings(kill_grace=0.7))
    assert configured.kill_grace == 0.7
    given = ForkExecutor(kill_grace=0.4)
    given.bind(ExecutorSettings(kill_grace=0.7))  # what the constructor was given wins
    assert given.kill_grace == 0.4
    with pytest.raises(ValueError, match="kill_grace"):
        configured.bind(ExecutorSettings(kill_grace=math.inf))


def test_a_child_holds_no_pipe_of_another_job(tmp_path: Path) -> None:
    executor = ForkExecutor()
    first = start(executor, make_job(sleep_for, 1.0))
    path = tmp_path / "pipes"
    try:
        assert isinstance(execute_work(executor, make_job(record_pipes, str(path))), Succeeded)
        held = {str(os.fstat(fd).st_ino) for fd in first.fds()}  # its outcome pipe
        assert held and not held & set(path.read_text().split())
        assert isinstance(outcome_of(first), Succeeded)
    finally:
        executor.close()
    assert_no_child_left()


# --- isolation: each child is a fresh fork of the worker at its job's start ---------------------

#: Set by the tests between jobs, read by the tasks: the child must see the latest value.
WORKER_STATE = "unset"


def record_worker_state(path: str) -> None:
    Path(path).write_text(WORKER_STATE)


def record_parent(path: str) -> None:
    Path(path).write_text(str(os.getppid()))


def record_fd_targets(path: str) -> None:
    targets = []
    for name in os.listdir("/proc/self/fd"):
        with suppress(OSError):  # the listing's own descriptor
            targets.append(os.readlink(f"/proc/self/fd/{name}"))
    Path(path).write_text("\n".join(targets))


def test_a_child_sees_the_worker_as_it_is_at_the_job_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor, path = fork_executor(), tmp_path / "state"
    try:
        for state in ("first", "second"):
            # changed in the worker between jobs
            monkeypatch.setattr(sys.modules[__name__], "WORKER_STATE", state)
            assert isinstance(execute(executor, record_worker_state, str(path)), Succeeded)
            assert path.read_text() == state
    finally:
        executor.close()


def test_a_child_never_runs_code_of_another_task(tmp_path: Path) -> None:
    ran_a = tmp_path / "a"  # every pid where task A's code ran (its context manager, itself)

    @contextmanager
    def marking() -> Iterator[None]:
        append_pid(str(ran_a))
        yield

    executor, b_path = fork_executor(), tmp_path / "b"
    b_pids = []
    try:
        for _ in range(3):
            job_a = make_job(append_pid, str(ran_a), context_managers=(marking,))
            assert isinstance(execute_work(executor, job_a), Succeeded)
            assert isinstance(execute(executor, record_pid, str(b_path)), Succeeded)
            b_pids.append(int(b_path.read_text()))
    finally:
        executor.close()
    a_pids = [int(line) for line in ran_a.read_text().split()]
    # each A ran once (its context manager, then its function, in one process of its own)
    assert a_pids[0::2] == a_pids[1::2] and len(set(a_pids)) == 3
    assert not set(a_pids) & set(b_pids) and len(set(b_pids)) == 3


def test_a_task_s_parent_is_the_worker(tmp_path: Path) -> None:
    executor, path = fork_executor(), tmp_path / "parent"
    try:
        for _ in range(2):
            assert isinstance(execute(executor, record_parent, str(path)), Succeeded)
            assert int(path.read_text()) == os.getpid()
    finally:
        executor.close()


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/fd")
def test_a_descriptor_the_worker_closed_is_not_open_in_the_child(tmp_path: Path) -> None:
    marker, path = tmp_path / "marker", tmp_path / "fds"
    marker.write_text("")
    executor = fork_executor()
    fd = os.open(marker, os.O_RDONLY)
    try:
        assert isinstance(execute(executor, record_fd_targets, str(path)), Succeeded)
        assert str(marker) in path.read_text().split("\n")  # open then: the child had it
        os.close(fd)
        fd = -1
        assert isinstance(execute(executor, record_fd_targets, str(path)), Succeeded)
        assert str(marker) not in path.read_text().split("\n")
    finally:
        if fd >= 0:
            os.close(fd)
        executor.close()


def execute(executor: ForkExecutor, func: Callable[..., object], *args: JSONValue) -> Outcome:
    return execute_work(executor, make_job(func, *args))


#: Where PidRunner writes the pid of each process that makes one (set by the test).
RUNNER_LOG = ""


class PidRunner(DefaultRunner):
    """A custom runner that notes where it is made."""

    def __init__(self, tiger: Tiger) -> None:
        super().__init__(tiger)
        append_pid(RUNNER_LOG)


def test_a_custom_runner_is_made_in_the_task_s_process_once_and_never_in_the_worker(
    redis_db: redis.Redis[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "RUNNER_LOG", str(tmp_path / "runners"))
    tiger = Tiger(RedisBackend(redis_db), Config(allowed_task_modules=("tests",)))
    for _ in range(3):
        tiger.delay(append_pid, args=[str(tmp_path / "tasks")], runner_class=PidRunner)
    Worker(tiger, executor=ForkExecutor()).run(once=True)
    runner_pids = [int(pid) for pid in (tmp_path / "runners").read_text().split()]
    task_pids = [int(pid) for pid in (tmp_path / "tasks").read_text().split()]
    assert len(task_pids) == len(set(task_pids)) == 3  # a process per task
    assert sorted(runner_pids) == sorted(task_pids)  # one runner each, made in its process
    assert os.getpid() not in runner_pids
