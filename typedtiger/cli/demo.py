"""The story ``typedtiger demo`` tells: three tasks on an in-process FakeBackend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from typedtiger.backends.base import TaskState
from typedtiger.backends.fake import FakeBackend
from typedtiger.config import Config
from typedtiger.spec import TaskSpec
from typedtiger.task import Task
from typedtiger.tiger import Tiger

__all__ = ["run_demo"]


def greet(name: str) -> None:
    """A task that succeeds."""
    print(f"      greet says: hello, {name}!")


def divide(a: int, b: int) -> float:
    """A task that fails when b is 0."""
    return a / b


def nightly_report() -> None:
    """A task scheduled for later."""
    print("      nightly_report says: report built")


def _run_worker(tiger: Tiger, echo: Callable[[str], None]) -> None:
    with capture_logs() as events:
        tiger.run_worker(once=True)
    for event in events:
        if event["event"] in {"processing", "done", "error", "retrying"}:
            func = str(event.get("func", "")).rpartition(":")[2]
            detail = f" ({event['exception_name']})" if "exception_name" in event else ""
            echo(f"    worker: {event['event']:<10} {func}{detail}")


def _sizes(tiger: Tiger) -> str:
    stats = tiger.get_queue_stats()
    if not stats:
        return "all queues empty"
    return "; ".join(
        f"{queue}: " + ", ".join(f"{state.value}={n}" for state, n in sizes.items())
        for queue, sizes in sorted(stats.items())
    )


def run_demo(echo: Callable[[str], None] = print) -> None:
    """Enqueue a success, a failure and a task an hour ahead; run them; print what happened."""
    backend = FakeBackend()
    tiger = Tiger(backend, Config(allowed_task_modules=(__name__,)))  # its functions, by name
    clock = backend.clock
    start = datetime.fromtimestamp(clock.now(), UTC)
    echo(f"typedtiger demo: in-process FakeBackend, ManualClock at {start:%Y-%m-%d %H:%M} UTC")
    echo("")
    echo("1. enqueue greet('world'), divide(1, 0), and nightly_report() one hour from now")
    tiger.enqueue(TaskSpec.of(greet, "world"))
    failing = tiger.enqueue(TaskSpec.of(divide, 1, 0))
    tiger.enqueue(TaskSpec.of(nightly_report).evolve(queue="reports"), when=timedelta(hours=1))
    echo(f"    {_sizes(tiger)}")
    echo("")
    echo("2. run a worker until idle")
    _run_worker(tiger, echo)
    errored = Task.from_id(tiger, failing.queue, TaskState.ERROR, failing.id, load_executions=1)
    last = errored.executions[-1]
    echo(f"    divide is in the error state: {last.exception_name}: {last.exception}")
    echo(f"    {_sizes(tiger)}")
    echo("")
    echo("3. advance the clock by one hour and run the worker again")
    clock.advance(timedelta(hours=1))
    _run_worker(tiger, echo)
    echo(f"    {_sizes(tiger)}")
    echo("")
    echo("Done: one task succeeded, one failed into the error queue, one ran an hour later.")
