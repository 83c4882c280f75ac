"""The admin commands (queues, tasks, show, retry, delete, cancel, purge-errors, pause, unpause).

They run through click's CliRunner on a FakeBackend (the Tiger is injected as the click context
object), plus end-to-end runs against the real Redis test database through ``--url`` and
``-h/-p/-n``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import click
import pytest
import redis
from click.testing import CliRunner, Result

from tests import result_tasks, tasks, worker_tasks
from tests.conftest import REDIS_URL, run_worker
from typedtiger import Config, Task, TaskSpec, TaskState, Tiger
from typedtiger.backends.fake import FakeBackend
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.commands.admin import make_tiger, parse_duration, register_admin_commands
from typedtiger.commands.connection import ConnectionSettings


@pytest.fixture
def group() -> click.Group:
    """A command group carrying only the admin commands."""
    main = click.Group("typedtiger")
    register_admin_commands(main)
    return main


@pytest.fixture
def fake() -> Tiger:
    tiger = Tiger(FakeBackend(ManualClock()), Config(allowed_task_modules=("tests",)))
    tiger.adopt(tasks.tiger)
    return tiger


@pytest.fixture
def clock(fake: Tiger) -> ManualClock:
    assert isinstance(fake.clock, ManualClock)
    return fake.clock


@pytest.fixture
def client(fake: Tiger) -> redis.Redis[str]:
    assert isinstance(fake.backend, RedisBackend)
    return fake.backend.client


class Cli:
    """Runs admin commands on the injected Tiger."""

    def __init__(self, group: click.Group, tiger: Tiger) -> None:
        self.group = group
        self.tiger = tiger
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, code: int = 0) -> Result:
        result = self.runner.invoke(self.group, list(args), obj=self.tiger, input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == code, result.output
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)


@pytest.fixture
def cli(group: click.Group, fake: Tiger) -> Cli:
    return Cli(group, fake)


def _errored(tiger: Tiger, *args: str, queue: str = "default") -> Task:
    task = tiger.enqueue(TaskSpec.of(tasks.failing, *args).evolve(queue=queue))
    run_worker(tiger)
    return Task.from_id(tiger, queue, TaskState.ERROR, task.id)


def _sizes(tiger: Tiger, queue: str) -> dict[str, int]:
    return {
        state.value: n for state, n in tiger.get_queue_sizes(queue, with_errors=True).items() if n
    }


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("90", 90.0),
        ("1.5", 1.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("3d", 259200.0),
        ("12w", 12 * 604800.0),
        ("1h30m", 5400.0),
        ("1.5d", 129600.0),
        (" 2H ", 7200.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "x", "-5", "5y", "m5", "1h 30m", "h", "nan", "inf", "1h-5m"])
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- queues ------------------------------------------------------------------------------------


def test_queues_on_an_empty_store(cli: Cli) -> None:
    assert cli("queues").output == "No queue holds tasks.\n"
    assert cli.json("queues") == {"queues": []}


def test_queues_table_and_json(cli: Cli, fake: Tiger, clock: ManualClock) -> None:
    _errored(fake, queue="b")
    fake.enqueue(TaskSpec.of(tasks.simple, 1).evolve(queue="a"))
    fake.enqueue(TaskSpec.of(tasks.simple, 2).evolve(queue="a"))
    fake.enqueue(TaskSpec.of(tasks.simple, 3).evolve(queue="a"), when=timedelta(hours=1))
    fake.set_queue_system_lock("paused", 60)

    lines = cli("queues").output.splitlines()
    assert lines[0].split() == [
        "QUEUE",
        "QUEUED",
        "ACTIVE",
        "SCHEDULED",
        "ERROR",
        "PAUSED",
        "UNTIL",
    ]
    assert lines[1].split() == ["a", "2", "0", "1", "0"]
    assert lines[2].split() == ["b", "0", "0", "0", "1"]
    assert lines[3].split() == ["paused", "0", "0", "0", "0", "2026-01-01", "00:01:00", "UTC"]
    assert lines[4].split() == ["TOTAL", "2", "0", "1", "1"]

    assert cli.json("queues") == {
        "queues": [
            {
                "queue": "a",
                "queued": 2,
                "active": 0,
                "scheduled": 1,
                "error": 0,
                "paused_until": None,
            },
            {
                "queue": "b",
                "queued": 0,
                "active": 0,
                "scheduled": 0,
                "error": 1,
                "paused_until": None,
            },
            {
                "queue": "paused",
                "queued": 0,
                "active": 0,
                "scheduled": 0,
                "error": 0,
                "paused_until": "2026-01-01T00:01:00+00:00",
            },
        ]
    }
    clock.advance(60)
    assert [row["queue"] for row in cli.json("queues")["queues"]] == ["a", "b"]


# --- tasks -------------------------------------------------------------------------------------


def test_tasks_lists_newest_first_with_limit_and_skip(
    cli: Cli, fake: Tiger, clock: ManualClock
) -> None:
    ids = []
    for n in range(5):
        ids.append(fake.enqueue(TaskSpec.of(tasks.add, n, b=n * 10)).id)
        clock.advance(60)
    newest = list(reversed(ids))

    output = cli("tasks", "default", "queued", "--limit", "2").output
    lines = output.splitlines()
    assert lines[0].split() == ["ID", "QUEUED", "AT", "FUNC", "ARGS"]
    assert lines[1].split()[0] == newest[0]
    assert lines[1].split()[4:] == ["tests.tasks:add", "4,", "b=40"]
    assert lines[2].split()[0] == newest[1]
    assert "queued tasks 1-2 of 5 in queue 'default', newest first. Next page: --skip 2." in output

    data = cli.json("tasks", "default", "QUEUED", "--skip", "3", "--limit", "10")
    assert (data["total"], data["skip"], data["limit"]) == (5, 3, 10)
    assert [task["id"] for task in data["tasks"]] == newest[3:]
    assert data["tasks"][0] == {
        "id": newest[3],
        "queue": "default",
        "state": "queued",
        "time": "2026-01-01T00:01:00+00:00",
        "waiting": False,
        "func": "tests.tasks:add",
        "args": [1],
        "kwargs": {"b": 10},
        "broken": None,
        "executions_count": 0,
        "last_exception": None,
    }
    assert "No tasks past 10." in cli("tasks", "default", "queued", "--skip", "10").output


def test_tasks_shortens_long_arguments(cli: Cli, fake: Tiger) -> None:
    fake.enqueue(TaskSpec.of(tasks.simple, "x" * 500))
    row = cli("tasks", "default", "queued").output.splitlines()[1]
    assert "xxx..." in row
    assert len(row) < 200


def test_tasks_in_error_show_the_last_exception(cli: Cli, fake: Tiger) -> None:
    errored = _errored(fake, "kaput")
    output = cli("tasks", "default", "error").output
    assert output.splitlines()[0].split()[-2:] == ["LAST", "ERROR"]
    assert errored.id in output
    assert "builtins:ValueError: kaput" in output
    (listed,) = cli.json("tasks", "default", "error")["tasks"]
    assert listed["last_exception"] == "builtins:ValueError: kaput"
    assert listed["executions_count"] == 1


def test_tasks_of_an_empty_queue_and_bad_input(cli: Cli) -> None:
    assert "queue 'nowhere' has no scheduled tasks" in cli("tasks", "nowhere", "scheduled").output
    assert (
        "'done' is not one of 'queued', 'active', 'scheduled', 'error'"
        in cli("tasks", "default", "done", code=2).output
    )
    assert (
        "Invalid value for '--limit'" in cli("tasks", "q", "queued", "--limit", "0", code=2).output
    )


# --- show --------------------------------------------------------------------------------------


def test_show_an_errored_task(cli: Cli, fake: Tiger, clock: ManualClock) -> None:
    errored = _errored(fake, "first")
    clock.advance(60)
    errored.retry()
    run_worker(fake)

    output = cli("show", errored.id).output
    assert f"Task {errored.id}" in output
    assert "state:      error" in output
    assert "failed at:  2026-01-01 00:01:00 UTC" in output
    assert "func:       tests.tasks:failing" in output
    assert "call:       failing('first')" in output
    assert '"func": "tests.tasks:failing"' in output
    assert "executions: 2 failed, the last 2 shown:" in output
    assert "#1 2026-01-01 00:00:00 UTC" in output
    assert "#2 2026-01-01 00:01:00 UTC" in output
    assert "last traceback:" in output
    assert "ValueError: first" in output.split("last traceback:")[1]

    assert "#2 " in cli("show", errored.id, "--executions", "1").output
    assert "#1 " not in cli("show", errored.id, "--executions", "1").output

    data = cli.json("show", errored.id)
    (where,) = data["locations"]
    assert data["id"] == errored.id
    assert (where["queue"], where["state"], where["broken"]) == ("default", "error", None)
    assert where["payload"]["args"] == ["first"]
    assert where["executions_count"] == 2
    assert [e["exception"] for e in where["executions"]] == ["first", "first"]
    assert "ValueError: first" in where["executions"][-1]["traceback"]


def test_show_a_scheduled_task(cli: Cli, fake: Tiger) -> None:
    task = fake.enqueue(TaskSpec.of(tasks.simple, "later"), when=timedelta(hours=2))
    output = cli("show", task.id).output
    assert "state:      scheduled" in output
    assert "due at:     2026-01-01 02:00:00 UTC" in output
    assert "executions: none failed" in output


def test_show_a_task_waiting_for_another(cli: Cli, fake: Tiger) -> None:
    first = fake.enqueue(TaskSpec.of(tasks.simple, "first").evolve(queue="q"))
    second = fake.enqueue(TaskSpec.of(tasks.simple, "second"), after=first)
    output = cli("show", second.id).output
    assert "due at:     waiting for other tasks" in output
    assert f"waiting for: q/{first.id}" in output
    assert f"dependents: default/{second.id}" in cli("show", first.id).output
    shown = cli.json("show", second.id)
    assert shown["waiting_for"] == [{"queue": "q", "id": first.id}]
    assert shown["dependents"] == []
    assert shown["locations"][0]["waiting"] is True
    assert "waiting for other tasks" in cli("tasks", "default", "scheduled").output


def test_show_unknown_task_and_queue_filter(cli: Cli, fake: Tiger) -> None:
    task = fake.enqueue(TaskSpec.of(tasks.simple).evolve(queue="q"))
    assert "Error: no task 'nope' in any queue" in cli("show", "nope", code=1).output
    assert "Error: no task" in cli("show", task.id, "--queue", "other", code=1).output
    assert "queue:      q" in cli("show", task.id, "--queue", "q").output


def test_show_finds_a_task_by_its_id_and_shows_a_kept_result(cli: Cli, fake: Tiger) -> None:
    fake.adopt(result_tasks.tiger)
    done = fake.enqueue(result_tasks.multiply.spec(6, 7))
    failed = fake.enqueue(result_tasks.give_up_quietly.spec())
    later = fake.enqueue(result_tasks.later.spec(1), when=timedelta(hours=1))
    run_worker(fake)
    assert "queue:      later" in cli("show", later.id).output  # (by the queue its payload names)
    output = cli("show", done.id).output
    assert "state:      succeeded (no longer stored)" in output and "result:     42" in output
    assert cli.json("show", done.id) == {
        "id": done.id,
        "locations": [],
        "status": "succeeded",
        "result": 42,
        "failure": None,
    }
    output = cli("show", failed.id).output
    assert "state:      error (no longer stored)" in output
    assert "failed:     typedtiger.exceptions:RetryException" in output
    assert cli.json("show", failed.id)["failure"]["exception_name"] == (
        "typedtiger.exceptions:RetryException"
    )
    assert "Error: no task" in cli("show", done.id, "--queue", "default", code=1).output


# --- corrupted payloads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json at all", "not valid JSON"),
        ("[1, 2]", "JSON list"),
        ('{"id": "ID"}', "required field missing @ task payload.func"),
        ('{"id": "ID", "func": 42}', "task payload.func"),
        ('{"id": "other", "func": "tests.tasks:simple"}', "names another task id"),
        (None, "payload is missing"),
    ],
)
def test_a_corrupted_payload_is_marked_and_can_be_removed(
    cli: Cli, fake: Tiger, client: redis.Redis[str], payload: str | None, reason: str
) -> None:
    broken = fake.enqueue(TaskSpec.of(tasks.simple, "broken"))
    fine = fake.enqueue(TaskSpec.of(tasks.simple, "fine"))
    if payload is None:
        client.delete(f"t:task:{broken.id}")
    else:
        client.set(f"t:task:{broken.id}", payload.replace("ID", broken.id))

    # Queued: listed and shown as broken; retry refuses (wrong state), cancel removes it.
    listing = cli("tasks", "default", "queued").output
    broken_row = next(line for line in listing.splitlines() if line.startswith(broken.id))
    assert "!! BROKEN" in broken_row and reason in broken_row
    fine_row = next(line for line in listing.splitlines() if line.startswith(fine.id))
    assert "tests.tasks:simple" in fine_row
    (entry,) = [t for t in cli.json("tasks", "default", "queued")["tasks"] if t["id"] == broken.id]
    assert reason in entry["broken"] and entry["func"] is None

    shown = cli("show", broken.id).output
    assert "!! BROKEN PAYLOAD:" in shown and reason in shown
    assert (payload or "(missing)").replace("ID", broken.id) in shown
    (where,) = cli.json("show", broken.id)["locations"]
    assert reason in where["broken"]
    assert where["raw_payload"] == (None if payload is None else payload.replace("ID", broken.id))

    # A worker quarantines it in error; delete removes it and every key it had.
    run_worker(fake)
    assert "!! BROKEN" in cli("tasks", "default", "error").output
    # (a worker records no execution for a task whose payload key is gone)
    recorded = "executions: 1 failed" if payload is not None else "executions: none failed"
    assert recorded in cli("show", broken.id).output
    refused = cli("retry", broken.id, code=1).output
    assert "broken payload" in refused and "delete it instead" in refused
    assert "Deleted 1 task." in cli("delete", broken.id).output
    assert client.keys("t:*") == []
    assert cli.json("queues") == {"queues": []}


def test_a_broken_execution_record_is_marked(
    cli: Cli, fake: Tiger, client: redis.Redis[str]
) -> None:
    errored = _errored(fake, "x")
    client.rpush(f"t:task:{errored.id}:executions", "{garbage")
    client.incr(f"t:task:{errored.id}:executions_count")
    output = cli("show", errored.id).output
    assert "func:       tests.tasks:failing" in output
    assert "#2 !! BROKEN execution record: execution record is not valid JSON" in output
    data = cli.json("show", errored.id)["locations"][0]
    assert data["executions"][-1]["raw"] == "{garbage"
    assert "!! BROKEN execution record" in cli("tasks", "default", "error").output


# --- retry / delete / cancel by id -------------------------------------------------------------


def test_retry_by_id(cli: Cli, fake: Tiger) -> None:
    errored = _errored(fake, "again")
    output = cli("retry", errored.id).output
    assert "Retried 1 task." in output
    assert f"{errored.id} (default, was error)" in output
    assert _sizes(fake, "default") == {"queued": 1}
    run_worker(fake)
    assert tasks.CALLS == [("failing", "again"), ("failing", "again")]


def test_delete_and_cancel_by_id(cli: Cli, fake: Tiger, client: redis.Redis[str]) -> None:
    errored = _errored(fake)
    queued = fake.enqueue(TaskSpec.of(tasks.simple))
    scheduled = fake.enqueue(TaskSpec.of(tasks.simple, 2), when=timedelta(hours=1))

    assert cli.json("delete", errored.id) == {
        "action": "delete",
        "deleted": [{"id": errored.id, "queue": "default", "state": "error"}],
        "failed": [],
    }
    assert "Cancelled 2 tasks." in cli("cancel", queued.id, scheduled.id).output
    assert client.keys("t:*") == []


def test_actions_refuse_tasks_in_the_wrong_state(cli: Cli, fake: Tiger) -> None:
    errored = _errored(fake)
    queued = fake.enqueue(TaskSpec.of(tasks.simple))

    output = cli("retry", queued.id, code=1).output
    assert f"task {queued.id} is queued in queue 'default': retry works on errored tasks" in output
    assert "1 task(s) could not be retried" in output
    output = cli("delete", queued.id, code=1).output
    assert "use cancel for queued or scheduled ones" in output
    output = cli("cancel", errored.id, code=1).output
    assert "is errored in queue 'default'" in output and "use delete for errored ones" in output
    output = cli("cancel", queued.id, "--state", "scheduled", code=1).output
    assert "is queued in queue 'default'" in output
    assert _sizes(fake, "default") == {"queued": 1, "error": 1}


def test_actions_report_unknown_ids_and_go_on(cli: Cli, fake: Tiger) -> None:
    first, second = _errored(fake, "1"), _errored(fake, "2")
    result = cli("delete", first.id, "missing", second.id, code=1)
    assert "Error: no task 'missing' in any queue" in result.output
    assert "Deleted 2 tasks." in result.output
    assert _sizes(fake, "default") == {}

    data = cli.json("retry", "missing", code=1)
    assert data == {
        "action": "retry",
        "retried": [],
        "failed": [{"id": "missing", "queue": None, "error": "no task 'missing' in any queue"}],
    }


def test_actions_by_id_with_a_queue_filter(cli: Cli, fake: Tiger) -> None:
    errored = _errored(fake, queue="a")
    assert "no task" in cli("retry", errored.id, "--queue", "b", code=1).output
    assert "Retried 1 task." in cli("retry", errored.id, "--queue", "a").output


def test_actions_need_ids_or_a_queue(cli: Cli) -> None:
    for action in ("retry", "delete", "cancel"):
        output = cli(action, code=2).output
        assert f"give the ids of the tasks to {action}, or --queue" in output
    assert (
        "cancel --queue needs --state (queued or scheduled)"
        in cli("cancel", "--queue", "q", code=2).output
    )
    assert (
        "Invalid value for '--state'"
        in cli("retry", "--queue", "q", "--state", "queued", code=2).output
    )


# --- retry / delete / cancel in bulk -----------------------------------------------------------


def test_bulk_retry_asks_first(cli: Cli, fake: Tiger) -> None:
    for n in range(3):
        _errored(fake, str(n), queue="bulk")
    _errored(fake, queue="other")

    declined = cli("retry", "--queue", "bulk", input="n\n", code=1)
    assert "Retry all 3 errored tasks of queue 'bulk'? [y/N]" in declined.output
    assert "Aborted" in declined.output
    assert _sizes(fake, "bulk") == {"error": 3}

    accepted = cli("retry", "--queue", "bulk", input="y\n")
    assert "Retried 3 tasks." in accepted.output
    assert _sizes(fake, "bulk") == {"queued": 3}
    assert _sizes(fake, "other") == {"error": 1}


def test_bulk_delete_with_yes_skips_broken_retries(
    cli: Cli, fake: Tiger, client: redis.Redis[str]
) -> None:
    good = _errored(fake, "good")
    bad = _errored(fake, "bad")
    client.set(f"t:task:{bad.id}", "garbage")

    data = cli.json("retry", "--queue", "default", "--yes", code=1)
    assert [item["id"] for item in data["retried"]] == [good.id]
    assert [item["id"] for item in data["failed"]] == [bad.id]
    assert _sizes(fake, "default") == {"queued": 1, "error": 1}

    assert "Deleted 1 task." in cli("delete", "--queue", "default", "-y").output
    assert _sizes(fake, "default") == {"queued": 1}
    assert client.keys(f"t:task:{bad.id}*") == []


def test_bulk_cancel_by_state(cli: Cli, fake: Tiger, clock: ManualClock) -> None:
    for n in range(3):
        fake.enqueue(TaskSpec.of(tasks.simple, n), when=timedelta(hours=1))
    fake.enqueue(TaskSpec.of(tasks.simple, "now"))

    output = cli("cancel", "--queue", "default", "--state", "scheduled", "--yes").output
    assert "Cancelled 3 tasks." in output
    assert _sizes(fake, "default") == {"queued": 1}
    nothing = cli("cancel", "--queue", "default", "--state", "scheduled", "--yes").output
    assert "Nothing to cancel: queue 'default' has no scheduled tasks." in nothing


def test_bulk_actions_work_page_by_page(
    cli: Cli, fake: Tiger, client: redis.Redis[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import typedtiger.commands._admin_actions

    monkeypatch.setattr(typedtiger.commands._admin_actions, "_BULK_PAGE", 2)
    for n in range(5):
        fake.enqueue(TaskSpec.of(tasks.simple, n).evolve(queue="many"))
    broken = fake.enqueue(TaskSpec.of(tasks.simple, "x").evolve(queue="many"))
    client.set(f"t:task:{broken.id}", "garbage")

    assert (
        "Cancelled 6 tasks." in cli("cancel", "--queue", "many", "--state", "queued", "-y").output
    )
    assert client.keys("t:*") == []


# --- purge-errors ------------------------------------------------------------------------------


def _errors_over_time(fake: Tiger, clock: ManualClock) -> None:
    """Errors in a (at 0h, 1h), a.sub (2h) and b (3h); the clock ends at 4h."""
    for queue in ("a", "a", "a.sub", "b"):
        _errored(fake, queue=queue)
        clock.advance(3600)


def test_purge_errors_older_than(cli: Cli, fake: Tiger, clock: ManualClock) -> None:
    _errors_over_time(fake, clock)
    prompt = cli("purge-errors", "--older-than", "2h30m", input="y\n").output
    assert (
        "Purge errored tasks that failed before 2026-01-01 01:30:00 UTC (2h30m ago) "
        "from 3 queue(s) holding 4 errored tasks? [y/N]" in prompt
    )
    assert "Purged 2 errored tasks (a: 2)." in prompt
    assert fake.get_queue_stats() == {"a.sub": {TaskState.ERROR: 1}, "b": {TaskState.ERROR: 1}}

    assert cli.json("purge-errors", "--older-than", "0", "--yes") == {
        "purged": 2,
        "before": "2026-01-01T04:00:00+00:00",
        "queues": {"a.sub": 1, "b": 1},
    }
    assert "No errored tasks to purge." in cli("purge-errors", "--older-than", "0", "-y").output


def test_purge_errors_declined(cli: Cli, fake: Tiger, clock: ManualClock) -> None:
    _errors_over_time(fake, clock)
    assert "Aborted" in cli("purge-errors", "--older-than", "1s", input="n\n", code=1).output
    assert sum(n[TaskState.ERROR] for n in fake.get_queue_stats().values()) == 4


def test_purge_errors_by_queue(cli: Cli, fake: Tiger, clock: ManualClock) -> None:
    _errors_over_time(fake, clock)
    data = cli.json("purge-errors", "--older-than", "0", "-q", "a", "-e", "a.sub", "--yes")
    assert data["queues"] == {"a": 2}
    data = cli.json("purge-errors", "--older-than", "0", "--queue", "a.sub,b", "--yes")
    assert data["queues"] == {"a.sub": 1, "b": 1}
    assert fake.get_queue_stats() == {}


def test_purge_errors_with_a_limit_in_chunks(cli: Cli, fake: Tiger, clock: ManualClock) -> None:
    for n in range(7):
        _errored(fake, str(n), queue="big")
        clock.advance(1)
    _errored(fake, queue="small")
    data = cli.json("purge-errors", "--older-than", "0", "--limit", "5", "--chunk-size", "2", "-y")
    assert data["purged"] == 5 and data["queues"] == {"big": 5, "small": 0}
    remaining = Task.tasks_from_queue(fake, "big", TaskState.ERROR)[1]
    assert [task.args for task in remaining] == [("6",), ("5",)]  # the oldest went first

    result = cli("purge-errors", "--older-than", "0", "--chunk-size", "1", "-y")
    assert "Purged 3 errored tasks (big: 2, small: 1)." in result.output
    assert "purging errored tasks" in result.output  # the progress bar's label (not a tty)
    assert fake.get_queue_stats() == {}


def test_purge_errors_removes_entries_whose_payload_is_gone(
    cli: Cli, fake: Tiger, client: redis.Redis[str]
) -> None:
    ghost = _errored(fake)
    client.delete(f"t:task:{ghost.id}")
    assert cli.json("purge-errors", "--older-than", "0", "-y")["purged"] == 1
    assert client.keys("t:*") == []


def test_purge_errors_bad_input(cli: Cli) -> None:
    assert "Missing option '--older-than'" in cli("purge-errors", code=2).output
    assert "is not a duration" in cli("purge-errors", "--older-than", "12y", code=2).output
    assert (
        "invalid queue name"
        in cli("purge-errors", "--older-than", "1d", "-q", "a..b", "-y", code=2).output
    )


# --- pause / unpause ---------------------------------------------------------------------------


def test_pause_and_unpause(cli: Cli, fake: Tiger, clock: ManualClock) -> None:
    fake.enqueue(TaskSpec.of(tasks.simple, "held").evolve(queue="q"))

    output = cli("pause", "q", "--for", "90m").output
    assert output == "Queue 'q' is paused until 2026-01-01 01:30:00 UTC (for 1h30m).\n"
    assert fake.get_queue_system_lock("q") == clock.now() + 5400
    assert fake.backend.claim("q", clock.now(), 1) == []
    assert "2026-01-01 01:30:00 UTC" in cli("queues").output

    assert cli.json("unpause", "q") == {"queue": "q", "was_paused": True}
    assert fake.get_queue_system_lock("q") is None
    assert cli("unpause", "q").output == "Queue 'q' was not paused.\n"
    run_worker(fake)
    assert tasks.CALLS == [("simple", "held")]


def test_pause_ends_when_the_clock_passes_it(cli: Cli, fake: Tiger, clock: ManualClock) -> None:
    assert cli.json("pause", "q", "--for", "60") == {
        "queue": "q",
        "paused_until": "2026-01-01T00:01:00+00:00",
    }
    clock.advance(59)
    assert fake.get_queue_system_lock("q") is not None
    clock.advance(1)
    assert fake.get_queue_system_lock("q") is None


def test_pause_bad_input(cli: Cli) -> None:
    assert "Missing option '--for'" in cli("pause", "q", code=2).output
    assert "must be longer than 0 seconds" in cli("pause", "q", "--for", "0s", code=2).output
    assert "is not a duration" in cli("pause", "q", "--for", "soon", code=2).output
    assert "invalid queue name" in cli("pause", ".q", "--for", "1m", code=2).output


# --- connection options and real Redis ---------------------------------------------------------


def test_unreachable_redis_is_a_clear_error(group: click.Group) -> None:
    result = CliRunner().invoke(group, ["queues", "--url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 1
    assert "Error: Redis is unavailable" in result.output
    assert "Traceback" not in result.output


def test_bad_prefix_is_a_clear_error(group: click.Group) -> None:
    result = CliRunner().invoke(group, ["queues", "--url", REDIS_URL, "--prefix", "a b"])
    assert result.exit_code == 2  # a usage error
    assert "Error: Config.prefix must be a non-empty key prefix" in result.output


@pytest.fixture
def real(redis_db: redis.Redis[str]) -> Tiger:
    tiger = Tiger(RedisBackend(redis_db), Config(allowed_task_modules=("tests",)))
    tiger.adopt(tasks.tiger)
    return tiger


def test_end_to_end_on_real_redis_with_url(
    group: click.Group, real: Tiger, redis_db: redis.Redis[str]
) -> None:
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(group, [*args, "--url", REDIS_URL])
        assert result.exit_code == code, result.output
        return result

    queued = real.enqueue(TaskSpec.of(tasks.simple, "real").evolve(queue="e2e"))
    broken = real.enqueue(TaskSpec.of(tasks.simple).evolve(queue="e2e"))
    redis_db.set(f"t:task:{broken.id}", "{not json")

    assert json.loads(run("queues", "--json").stdout)["queues"] == [
        {"queue": "e2e", "queued": 2, "active": 0, "scheduled": 0, "error": 0, "paused_until": None}
    ]
    listing = run("tasks", "e2e", "queued").output
    assert queued.id in listing and "!! BROKEN" in listing
    assert "raw payload:\n    {not json" in run("show", broken.id).output
    assert "Cancelled 1 task." in run("cancel", broken.id).output
    assert "paused until" in run("pause", "e2e", "--for", "1h").output
    assert real.get_queue_system_lock("e2e") is not None
    assert "no longer paused" in run("unpause", "e2e").output
    assert "no task" in run("show", broken.id, code=1).output


def test_end_to_end_on_real_redis_with_host_port_db(
    group: click.Group, real: Tiger, redis_db: redis.Redis[str]
) -> None:
    kwargs = redis_db.connection_pool.connection_kwargs
    errored = _errored(real, "e2e", queue="e2e")
    other = Tiger(RedisBackend(redis_db), Config(prefix="other", allowed_task_modules=("tests",)))
    other.enqueue(TaskSpec.of(tasks.simple).evolve(queue="elsewhere"))
    address = ["-h", str(kwargs["host"]), "-p", str(kwargs["port"]), "-n", str(kwargs["db"])]

    result = CliRunner().invoke(group, ["queues", "--json", *address])
    assert result.exit_code == 0, result.output
    assert [row["queue"] for row in json.loads(result.stdout)["queues"]] == ["e2e"]
    result = CliRunner().invoke(group, ["queues", "--json", *address, "--prefix", "other"])
    assert [row["queue"] for row in json.loads(result.stdout)["queues"]] == ["elsewhere"]

    result = CliRunner().invoke(group, ["retry", errored.id, *address])
    assert result.exit_code == 0, result.output
    assert real.get_queue_sizes("e2e")[TaskState.QUEUED] == 1


def test_make_tiger_builds_a_redis_tiger() -> None:
    tiger = make_tiger(ConnectionSettings(db=3, prefix="pfx"))
    assert isinstance(tiger.backend, RedisBackend)
    assert tiger.backend.prefix == "pfx"
    assert tiger.backend.client.connection_pool.connection_kwargs["db"] == 3


def _cli_registers_admin_commands() -> bool:
    from typedtiger import cli

    return cli.main.get_command(click.Context(cli.main), "queues") is not None


@pytest.mark.skipif(
    not _cli_registers_admin_commands(),
    reason="typedtiger/cli.py does not register the admin commands yet",
)
def test_typedtiger_console_command_end_to_end(real: Tiger, redis_db: redis.Redis[str]) -> None:
    errored = _errored(real, "sub", queue="proc")
    env = {**os.environ, "TYPEDTIGER_URL": REDIS_URL}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "typedtiger.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    listed = run("queues", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["queues"][0]["queue"] == "proc"
    deleted = run("delete", errored.id)
    assert deleted.returncode == 0, deleted.stderr
    assert "Deleted 1 task." in deleted.stdout
    assert redis_db.keys("t:*") == []


def _set_raw(client: redis.Redis[str], key: str, value: bytes) -> None:
    client.execute_command("SET", key, value)  # (bytes go as they are)


POISONED: dict[str, tuple[bytes, str, str]] = {
    "NaN": (b'{"id": "ID", "func": "tests.tasks:simple", "hard_timeout": NaN}', "is nan", "NaN"),
    "invalid UTF-8": (
        b'{"id": "ID", "func": "tests.tasks:simple", "args": ["a\xff\x00z"]}',
        "not valid UTF-8 (byte 0xff",
        '"a\\xff\\x00z"',
    ),
    "nested 5,000 deep": (
        b'{"id": "ID", "func": "tests.tasks:simple", "args": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
        "nested too deeply",
        "[[[[",
    ),
    "an integer past 2**63": (
        b'{"id": "ID", "func": "tests.tasks:simple", "args": [18446744073709551616]}',
        "is the integer 18446744073709551616",
        "[18446744073709551616]",
    ),
}


@pytest.mark.parametrize("case", list(POISONED))
def test_a_poisoned_payload_is_shown_escaped_and_can_be_removed(
    cli: Cli, fake: Tiger, client: redis.Redis[str], case: str
) -> None:
    raw, reason, shown_raw = POISONED[case]
    broken = fake.enqueue(TaskSpec.of(tasks.simple, "broken"))
    fine = fake.enqueue(TaskSpec.of(tasks.simple, "fine"))
    _set_raw(client, f"t:task:{broken.id}", raw.replace(b"ID", broken.id.encode()))

    for state in ("queued", "error"):  # before and after a worker quarantines it
        listing = cli("tasks", "default", state).output
        row = next(line for line in listing.splitlines() if line.startswith(broken.id))
        assert "!! BROKEN" in row and reason in row
        (entry,) = [t for t in cli.json("tasks", "default", state)["tasks"] if t["id"] == broken.id]
        assert reason in entry["broken"]
        shown = cli("show", broken.id).output
        assert "!! BROKEN PAYLOAD:" in shown and reason in shown and shown_raw in shown
        (where,) = cli.json("show", broken.id)["locations"]
        assert reason in where["broken"] and shown_raw in where["raw_payload"]
        run_worker(fake)

    assert tasks.CALLS == [("simple", "fine")]
    refused = cli("retry", broken.id, code=1).output
    assert "broken payload" in refused and "delete it instead" in refused
    assert "Deleted 1 task." in cli("delete", broken.id).output
    assert client.keys("t:*") == [] and fine.id
    assert cli.json("queues") == {"queues": []}


@pytest.mark.parametrize(
    ("plant", "reason", "quarantined"),
    [
        (
            lambda c, k: c.set(f"{k}:executions_count", "abc"),
            "!! BROKEN KEYS: executions_count holds 'abc', not a count",
            True,
        ),
        (
            lambda c, k: _set_raw(c, f"{k}:executions_count", b"\xff"),
            "executions_count holds '\\xff', not a count",
            True,
        ),
        (
            lambda c, k: c.hset(f"{k}:executions", "a", "b"),
            "executions cannot be read: WRONGTYPE",
            True,
        ),
        (  # (a record is only read to be shown: the task runs)
            lambda c, k: (
                c.execute_command("RPUSH", f"{k}:executions", b"\xff\x01{")
                + c.incr(f"{k}:executions_count")
            ),
            "BROKEN execution record: execution record is not valid UTF-8 (byte 0xff at "
            "character 0): \\xff\\x01{",
            False,
        ),
    ],
    ids=["count abc", "count not UTF-8", "executions a hash", "a record not UTF-8"],
)
def test_broken_task_keys_are_shown_and_the_task_can_be_retried(
    cli: Cli, fake: Tiger, client: redis.Redis[str], plant: Any, reason: str, quarantined: bool
) -> None:
    broken = fake.enqueue(TaskSpec.of(tasks.simple, "broken"))
    plant(client, f"t:task:{broken.id}")

    listing = cli("tasks", "default", "queued").output
    assert broken.id in listing
    cli.json("tasks", "default", "queued")
    assert reason in cli("show", broken.id).output
    assert cli.json("show", broken.id)["locations"]

    run_worker(fake)
    if quarantined:  # its keys rebuilt, with a PayloadError record saying why
        (where,) = cli.json("show", broken.id)["locations"]
        assert where["state"] == "error" and where["broken"] is None
        assert where["executions"][-1]["exception_name"] == "typedtiger.exceptions:PayloadError"
        assert "Retried 1 task." in cli("retry", broken.id).output
        run_worker(fake)
    assert tasks.CALLS == [("simple", "broken")]
    assert cli.json("queues") == {"queues": []}


def test_an_exception_message_with_a_lone_surrogate_is_shown_escaped(cli: Cli, fake: Tiger) -> None:
    task = fake.enqueue(TaskSpec.of(worker_tasks.fail_on_an_undecodable_name))
    run_worker(fake)
    assert "no such file: caf\\udce9" in cli("show", task.id).output
    assert "no such file: caf\\udce9" in cli("tasks", "default", "error").output
    (where,) = cli.json("show", task.id)["locations"]
    assert where["executions"][0]["exception"] == "no such file: caf\udce9"


def test_a_record_whose_time_is_no_time_is_shown(
    cli: Cli, fake: Tiger, client: redis.Redis[str]
) -> None:
    errored = _errored(fake, "x")
    client.rpush(f"t:task:{errored.id}:executions", '{"success": false, "time_failed": 1e300}')
    client.incr(f"t:task:{errored.id}:executions_count")
    assert "#2 1e+300 (not a time)" in cli("show", errored.id).output
    assert cli.json("show", errored.id)["locations"][0]["executions"][-1]["time_failed"] == 1e300


def test_a_task_id_that_is_not_utf8_is_listed_escaped_and_deleted(
    cli: Cli, fake: Tiger, client: redis.Redis[str]
) -> None:
    bad_id = b"\xfe\xff" + b"0" * 62
    client.execute_command("SET", b"t:task:" + bad_id, b'{"id": "x", "func": "m:f"}')
    client.zadd("t:queued:default", {bad_id: 1.0})
    client.sadd("t:queued", "default")
    run_worker(fake)  # quarantined by the claim

    row = next(
        line for line in cli("tasks", "default", "error").output.splitlines() if "000" in line
    )
    assert row.startswith("\\udcfe\\udcff000") and "!! BROKEN" in row
    (entry,) = cli.json("tasks", "default", "error")["tasks"]
    assert entry["id"] == "\udcfe\udcff" + "0" * 62
    assert "Deleted 1 task." in cli("delete", "--queue", "default", "-y").output
    assert client.keys("t:*") == []
