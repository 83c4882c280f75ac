"""Spare children: forked ahead of their job, which the worker sends them (ForkExecutor with a
JobCodec; the executor's other behaviour, run both ways, is in test_fork_executor)."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest
from structlog.testing import capture_logs

from tests.test_fork_executor import (
    CHILD_DIED,
    TIGER,
    alive,
    append_length,
    append_pid,
    assert_no_child_left,
    fail,
    failed,
    make_job,
    no_beat,
    ok,
    read_pid,
    record_pid,
    record_pid_and_sleep,
    wait_until,
)
from tests.waiting import scaled
from typedtiger import _child, _fork, _fork_server
from typedtiger._fork_server import ForkServer, ServedSpare
from typedtiger._job_wire import JobWire
from typedtiger._outcome import Outcome, Succeeded
from typedtiger.backends.fake import FakeBackend
from typedtiger.config import Config
from typedtiger.executor import ForkExecutor
from typedtiger.tiger import Tiger
from typedtiger.worker import Worker


def spare_executor() -> ForkExecutor:
    executor = ForkExecutor()
    executor.use_spares(JobWire(TIGER, store_traceback=True))
    return executor


def spare_pid(executor: ForkExecutor) -> int:
    assert executor._spares, "no spare was forked ahead"
    return executor._spares[0].pid


def test_job_wire_rebuilds_the_job() -> None:
    job = make_job(fail, "boom", hard_timeout=7.5)
    wire = JobWire(TIGER, store_traceback=False)
    rebuilt = wire.decode(wire.encode(job))
    assert rebuilt.func is fail
    assert [task.payload for task in rebuilt.tasks] == [task.payload for task in job.tasks]
    assert (rebuilt.queue, rebuilt.batch, rebuilt.hard_timeout) == ("q", False, 7.5)
    assert rebuilt.serialized_func == job.serialized_func
    assert rebuilt.store_traceback is False
    assert rebuilt.clock is TIGER.clock


def test_the_next_job_runs_in_the_spare_forked_after_the_last(tmp_path: Path) -> None:
    executor = spare_executor()
    first_path, second_path = tmp_path / "first", tmp_path / "second"
    assert isinstance(
        executor.execute(make_job(record_pid, str(first_path)), no_beat, 10), Succeeded
    )
    waiting = spare_pid(executor)
    assert alive(waiting)
    assert isinstance(
        executor.execute(make_job(record_pid, str(second_path)), no_beat, 10), Succeeded
    )
    assert int(second_path.read_text()) == waiting
    assert int(first_path.read_text()) != waiting
    executor.close()
    assert not alive(waiting)
    assert_no_child_left()


def test_a_dead_spare_is_replaced(tmp_path: Path) -> None:
    executor = spare_executor()
    executor.execute(make_job(ok), no_beat, 10)
    dead = spare_pid(executor)
    os.kill(dead, signal.SIGKILL)
    assert wait_until(lambda: not alive(dead), 2.0)
    path = tmp_path / "pid"
    assert isinstance(executor.execute(make_job(record_pid, str(path)), no_beat, 10), Succeeded)
    assert int(path.read_text()) != dead
    executor.close()
    assert_no_child_left()


def test_a_job_the_spare_cannot_rebuild_fails_with_the_reason() -> None:
    executor = spare_executor()
    job = attrs.evolve(make_job(ok), serialized_func="tests.no_such_module:gone")
    outcome = failed(executor.execute(job, no_beat, 10))
    executor.close()
    assert outcome.exception_name == "typedtiger.exceptions:TaskImportError"
    assert "tests.no_such_module" in outcome.message
    assert outcome.time_failed == TIGER.clock.now()  # timed by the Tiger's (manual) clock
    assert outcome.traceback is not None
    assert_no_child_left()


def test_the_spare_rehearses_the_last_job_without_running_it(tmp_path: Path) -> None:
    entered = tmp_path / "entered"

    @contextmanager
    def record_entry() -> Iterator[None]:
        with entered.open("a") as file:
            file.write(f"{os.getpid()}\n")
        yield

    tiger = Tiger(
        FakeBackend(),
        Config(child_context_managers=(record_entry,), allowed_task_modules=("tests",)),
    )
    executor = ForkExecutor()
    executor.use_spares(JobWire(tiger, store_traceback=True))
    path = tmp_path / "pids"
    job = attrs.evolve(make_job(append_pid, str(path)), context_managers=(record_entry,))
    assert isinstance(executor.execute(job, no_beat, 10), Succeeded)
    time.sleep(0.2)  # the spare rehearses the job it was forked after, right away
    executor.close()
    assert len(path.read_text().splitlines()) == 1  # the task ran once
    assert len(entered.read_text().splitlines()) == 1  # and its context manager was entered once
    assert_no_child_left()


def test_a_worker_uses_spares_at_any_concurrency() -> None:
    one, two = ForkExecutor(), ForkExecutor()
    Worker(TIGER, executor=one)
    Worker(TIGER, executor=two, concurrency=2)
    assert isinstance(one._wire, JobWire)
    assert isinstance(two._wire, JobWire)


# --- the fork server --------------------------------------------------------------------------


def server_pid(executor: ForkExecutor) -> int:
    server = executor._server
    assert server is not None, "no fork server was started"
    return server.pid


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def test_spares_are_forked_by_the_fork_server_not_the_worker(tmp_path: Path) -> None:
    executor = spare_executor()
    path = tmp_path / "pid"
    assert isinstance(executor.execute(make_job(record_pid, str(path)), no_beat, 10), Succeeded)
    server = server_pid(executor)
    assert parent_of(server) == os.getpid()
    assert parent_of(spare_pid(executor)) == server
    assert int(path.read_text()) not in (os.getpid(), server)
    executor.execute(make_job(ok), no_beat, 10)
    assert server_pid(executor) == server  # forked once, at the first job
    executor.close()
    assert not alive(server)
    assert_no_child_left()


def test_the_fork_server_ignores_the_signals_meant_for_its_worker() -> None:
    executor = spare_executor()
    executor.execute(make_job(ok), no_beat, 10)
    server = server_pid(executor)
    for signum in (signal.SIGTERM, signal.SIGINT):
        os.kill(server, signum)
    time.sleep(0.1)
    assert alive(server)
    assert isinstance(executor.execute(make_job(ok), no_beat, 10), Succeeded)
    executor.close()
    assert_no_child_left()


def test_a_dead_fork_server_is_replaced(tmp_path: Path) -> None:
    executor = spare_executor()
    executor.execute(make_job(ok), no_beat, 10)
    dead, its_spare = server_pid(executor), spare_pid(executor)
    os.kill(dead, signal.SIGKILL)
    assert wait_until(lambda: not alive(its_spare), 2.0)  # the spare dies with its server
    path = tmp_path / "pid"
    with capture_logs() as logs:
        outcome = executor.execute(make_job(record_pid, str(path)), no_beat, 10)
    assert isinstance(outcome, Succeeded)
    assert server_pid(executor) != dead
    assert parent_of(spare_pid(executor)) == server_pid(executor)
    assert any(log["event"] == "the fork server is gone: starting another" for log in logs)
    executor.close()
    assert_no_child_left()


def test_a_job_whose_fork_server_dies_fails_with_an_unknown_exit(tmp_path: Path) -> None:
    executor = spare_executor()
    path = tmp_path / "pid"
    outcomes = []
    thread = threading.Thread(
        target=lambda: outcomes.append(
            executor.start(make_job(record_pid_and_sleep, str(path), 30.0)).wait(no_beat, 10)
        )
    )
    thread.start()
    child = read_pid(path)
    os.kill(server_pid(executor), signal.SIGKILL)
    thread.join(scaled(5))
    outcome = failed(outcomes[0])
    assert outcome.exception_name == CHILD_DIED
    assert outcome.message == (
        "the task's process ended, but its exit status is unknown (its fork server exited)"
    )
    assert not alive(child)
    executor.close()
    assert_no_child_left()


def test_a_job_too_large_to_rehearse_runs_unrehearsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rehearsed: list[int] = []
    spawn = ForkServer.spawn

    def recording_spawn(server: ForkServer, rehearsal: bytes, load: bool) -> ServedSpare:
        rehearsed.append(len(rehearsal))
        return spawn(server, rehearsal, load)

    monkeypatch.setattr(ForkServer, "spawn", recording_spawn)
    executor = spare_executor()
    path = tmp_path / "lengths"
    big = "x" * _fork._REHEARSAL_MAX
    for text in ("small", big, "small"):
        outcome = executor.execute(make_job(append_length, str(path), text), no_beat, 10)
        assert isinstance(outcome, Succeeded)
    executor.close()
    assert path.read_text().split() == ["5", str(len(big)), "5"]
    # the first spare has nothing to rehearse, the one after the big job is not sent it
    assert rehearsed[0] == 0 and rehearsed[1] > 0 and rehearsed[2] == 0 and rehearsed[3] > 0
    assert_no_child_left()


def test_without_a_fork_server_the_job_is_forked_from_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cannot_fork(*_args: object) -> ForkServer:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(ForkServer, "start", cannot_fork)
    executor = spare_executor()
    path = tmp_path / "pid"
    with capture_logs() as logs:
        outcome = executor.execute(make_job(record_pid, str(path)), no_beat, 10)
    assert isinstance(outcome, Succeeded)
    assert int(path.read_text()) != os.getpid()
    assert executor._server is None
    assert any(log["event"] == "no spare child: forking the job from the worker" for log in logs)
    executor.close()
    assert_no_child_left()


def test_jobs_running_at_once_each_get_a_spare(tmp_path: Path) -> None:
    executor = spare_executor()
    paths = [tmp_path / "one", tmp_path / "two"]
    running = [executor.start(make_job(record_pid_and_sleep, str(path), 1.0)) for path in paths]
    pids = {read_pid(path) for path in paths}  # both run now, for a second
    assert len(pids) == 2
    assert {parent_of(pid) for pid in pids} == {server_pid(executor)}
    outcomes = [job.wait(no_beat, 10) for job in running]
    assert all(isinstance(outcome, Succeeded) for outcome in outcomes)
    executor.close()
    assert_no_child_left()


def test_as_many_spares_wait_as_jobs_may_run_at_once(tmp_path: Path) -> None:
    executor = ForkExecutor()
    executor.use_spares(JobWire(TIGER, store_traceback=True), count=2)
    executor.execute(make_job(ok), no_beat, 10)
    waiting = [spare.pid for spare in executor._spares]
    assert len(set(waiting)) == 2 and all(alive(pid) for pid in waiting)
    paths = [tmp_path / "one", tmp_path / "two"]
    running = [executor.start(make_job(record_pid_and_sleep, str(path), 0.2)) for path in paths]
    assert all(isinstance(job.wait(no_beat, 10), Succeeded) for job in running)
    assert [read_pid(path) for path in paths] == waiting  # oldest spare first
    assert len(executor._spares) == 2
    executor.close()
    assert not any(alive(pid) for pid in waiting)
    assert_no_child_left()


def test_use_spares_needs_at_least_one() -> None:
    with pytest.raises(ValueError, match="count"):
        ForkExecutor().use_spares(JobWire(TIGER, store_traceback=True), count=0)


def test_a_spare_the_server_cannot_fork_leaves_the_running_task_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forks = 0

    def fails_second(run: Callable[[], Outcome | None], fd: int, close: Sequence[int]) -> int:
        nonlocal forks
        forks += 1
        if forks == 2:  # the spare asked for while the first job runs
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return _child.fork_job_child(run, fd, close)

    monkeypatch.setattr(_fork_server, "fork_job_child", fails_second)  # before the server forks
    executor = spare_executor()
    path = tmp_path / "pid"
    with capture_logs():
        outcome = executor.start(make_job(record_pid_and_sleep, str(path), 0.5)).wait(no_beat, 10)
        assert isinstance(outcome, Succeeded)
        assert isinstance(executor.execute(make_job(ok), no_beat, 10), Succeeded)
    executor.close()
    assert_no_child_left()


def test_answers_left_unread_never_block_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork(
        _run: Callable[[], Outcome | None], _fd: int, _close: Sequence[int], _cleanup: object
    ) -> int:
        return 4_000_000  # beyond any pid_max: answered at once, never a process

    monkeypatch.setattr(_fork_server, "fork_job_child", no_fork)
    server = ForkServer.start(JobWire(TIGER, store_traceback=True))
    spares: list[ServedSpare] = []

    def spawn_many() -> None:
        for _ in range(400):  # the answers would fill the socket's buffer ~280 in
            spares.append(server.spawn(b"x" * 60_000, False))

    thread = threading.Thread(target=spawn_many, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), f"blocked after {len(spares)} requests"
    for spare in spares:
        spare.discard()
    server.close()


def test_a_spare_already_reaped_is_not_signalled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = spare_executor()
    executor.execute(make_job(ok), no_beat, 10)
    dead = spare_pid(executor)
    os.kill(dead, signal.SIGKILL)
    assert wait_until(lambda: _fork_server._readable(executor._spares[0].outcome_fd), 2.0)
    signalled: list[int] = []
    kill = os.kill

    def recording_kill(pid: int, signum: int) -> None:
        signalled.append(pid)
        kill(pid, signum)

    monkeypatch.setattr(os, "kill", recording_kill)
    path = tmp_path / "pid"
    assert isinstance(executor.execute(make_job(record_pid, str(path)), no_beat, 10), Succeeded)
    assert dead not in signalled  # its pid may belong to another process by now
    executor.close()
    assert_no_child_left()
