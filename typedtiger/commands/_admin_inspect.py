"""The admin commands that read: ``queues``, ``tasks`` and ``show``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
import click

from typedtiger._status import Status, TaskStatus
from typedtiger.backends.base import StoredTask, TaskState
from typedtiger.commands._admin_common import (
    BROKEN_MARK,
    STATES,
    TIME_LABELS,
    ConnectionOptions,
    Decoded,
    Env,
    Execution,
    call_text,
    clear_errors,
    echo_json,
    escaped,
    exception_text,
    human_time,
    iso,
    json_option,
    printable,
    shorten,
    table,
)
from typedtiger.serialization import payload_as_dict
from typedtiger.tiger import Tiger

__all__ = ["queues_command", "show_command", "tasks_command"]


def queues_command(env: Env, connection: ConnectionOptions) -> click.Command:
    @click.command("queues", context_settings={"help_option_names": ["--help"]})
    @connection
    @json_option
    def queues(as_json: bool, **options: Any) -> None:
        """A table of every queue's size in each state (and the queues that are paused)."""
        tiger = env.tiger(options)
        with clear_errors():
            sizes = tiger.backend.queue_sizes(None)
            now = tiger.clock.now()
            paused = {
                queue: until
                for queue, until in tiger.backend.get_queue_system_locks().items()
                if until > now
            }
        names = sorted(set(sizes) | set(paused))
        rows: list[dict[str, Any]] = [
            {
                "queue": queue,
                **{state.value: sizes.get(queue, {}).get(state, 0) for state in TaskState},
                "paused_until": iso(paused.get(queue)),
            }
            for queue in names
        ]
        if as_json:
            echo_json({"queues": rows})
            return
        if not rows:
            click.echo("No queue holds tasks.")
            return
        totals = [sum(int(row[state]) for row in rows) for state in STATES]
        table_rows = [
            [
                str(row["queue"]),
                *(str(row[state]) for state in STATES),
                human_time(paused[str(row["queue"])]) if row["queue"] in paused else "",
            ]
            for row in rows
        ]
        table_rows.append(["TOTAL", *(str(n) for n in totals), ""])
        headers = ["QUEUE", *(state.upper() for state in STATES), "PAUSED UNTIL"]
        click.echo(printable(table(headers, table_rows, right={1, 2, 3, 4})))

    return queues


def tasks_command(env: Env, connection: ConnectionOptions) -> click.Command:
    @click.command("tasks", context_settings={"help_option_names": ["--help"]})
    @click.argument("queue")
    @click.argument("state", type=click.Choice(STATES, case_sensitive=False), metavar="STATE")
    @click.option(
        "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Tasks shown."
    )
    @click.option(
        "--skip", type=click.IntRange(min=0), default=0, show_default=True, help="Tasks skipped."
    )
    @connection
    @json_option
    def tasks(queue: str, state: str, limit: int, skip: int, as_json: bool, **options: Any) -> None:
        """List the tasks of QUEUE in STATE (queued, active, scheduled, error), newest first.

        Tasks whose stored payload cannot be read are listed and marked "!! BROKEN".
        """
        tiger = env.tiger(options)
        task_state = TaskState(state)
        load = 1 if task_state is TaskState.ERROR else 0
        with clear_errors():
            total, stored = tiger.backend.list_tasks(queue, task_state, skip, limit, load)
        decoded = [Decoded.of(item) for item in stored]
        if as_json:
            echo_json(
                {
                    "queue": queue,
                    "state": task_state.value,
                    "total": total,
                    "skip": skip,
                    "limit": limit,
                    "tasks": [item.summary() for item in decoded],
                }
            )
            return
        if not decoded:
            where = f"queue {queue!r} has no {task_state.value} tasks"
            click.echo(f"Nothing to show: {where}." if total == 0 else f"No tasks past {skip}.")
            return
        click.echo(printable(_tasks_table(decoded, task_state)))
        shown = f"{skip + 1}-{skip + len(decoded)}"
        footer = f"{task_state.value} tasks {shown} of {total} in queue {queue!r}, newest first."
        if skip + len(decoded) < total:
            footer += f" Next page: --skip {skip + len(decoded)}."
        click.echo(printable(footer))
        if any(item.broken for item in decoded):
            click.echo(
                f"{BROKEN_MARK}: the stored payload cannot be read; `typedtiger show ID` "
                "tells why, `typedtiger delete`/`cancel` removes it."
            )

    return tasks


def _tasks_table(decoded: Sequence[Decoded], state: TaskState) -> str:
    headers = ["ID", TIME_LABELS[state].upper(), "FUNC", "ARGS"]
    if state is TaskState.ERROR:
        headers.append("LAST ERROR")
    rows = []
    for item in decoded:
        if item.payload is None:
            func = f"{BROKEN_MARK}: {shorten(item.broken or '', 60)}"
            args = "-"
        else:
            func = item.payload.func
            args = shorten(call_text(item.payload), 40)
        row = [item.stored.id, item.time_text, func, args]
        if state is TaskState.ERROR:
            row.append(shorten(item.last_exception or "-", 50))
        rows.append(row)
    return table(headers, rows, right=set())


def show_command(env: Env, connection: ConnectionOptions) -> click.Command:
    @click.command("show", context_settings={"help_option_names": ["--help"]})
    @click.argument("task_id")
    @click.option("--queue", default=None, help="Only look in this queue.")
    @click.option(
        "--executions",
        type=click.IntRange(min=0),
        default=10,
        show_default=True,
        help="How many of the latest failed executions to show.",
    )
    @connection
    @json_option
    def show(
        task_id: str, queue: str | None, executions: int, as_json: bool, **options: Any
    ) -> None:
        """Show the task TASK_ID (or the one task whose id starts with it) wherever it is
        filed: payload, executions, last traceback, the tasks it waits for (enqueued ``after``
        them) and those waiting for it; a task no longer stored, its kept result
        (``result_ttl``).

        A task whose stored payload cannot be read is shown with the reason and the raw text.
        """
        tiger = env.tiger(options)
        with clear_errors():
            task_id = _full_id(tiger, task_id)
            found = _locate(tiger, task_id, queue, executions)
            if not found and queue is None:
                _show_outcome(tiger.status(task_id), as_json)
                return
            if not found:
                raise click.ClickException(f"no task {task_id!r} in queue {queue!r}")
            dependencies = tiger.backend.dependencies(task_id)
        decoded = [Decoded.of(stored) for stored in found]
        waits = {
            "waiting_for": [attrs.asdict(ref) for ref in dependencies.waiting_for],
            "dependents": [attrs.asdict(ref) for ref in dependencies.dependents],
        }
        if as_json:
            locations = [_show_json(item) for item in decoded]
            echo_json({"id": task_id, "locations": locations, **waits})
            return
        lines = [_show_text(item) for item in decoded]
        for name, refs in waits.items():
            if refs:
                listed = ", ".join(f"{ref['queue']}/{ref['id']}" for ref in refs)
                lines.append(f"{name.replace('_', ' ')}: {listed}")
        click.echo(printable("\n\n".join(lines)))

    return show


#: How many ids an ambiguous prefix lists.
_SHOWN_MATCHES = 5


def _full_id(tiger: Tiger, given: str) -> str:
    """The id ``given`` names: itself if a task (or a kept result) has it or no id starts
    with it, else the one id it starts (an error when it starts several)."""
    status = tiger.backend.task_status(given)
    if status.places or status.result is not None:
        return given
    matches = tiger.backend.task_ids_starting(given, _SHOWN_MATCHES + 1)
    if len(matches) <= 1:
        return matches[0] if matches else given
    count = f"more than {_SHOWN_MATCHES}" if len(matches) > _SHOWN_MATCHES else len(matches)
    listed = ", ".join(matches[:_SHOWN_MATCHES])
    raise click.ClickException(
        f"{given!r} is ambiguous: {count} task ids start with it ({listed}); give more of it"
    )


def _locate(tiger: Tiger, task_id: str, queue: str | None, load: int) -> list[StoredTask]:
    """Where the task is stored: found by its id (``task_status``: the queue its payload
    names), or, with ``queue``, in each state of that queue."""
    if queue is None:
        places = list(tiger.backend.task_status(task_id).places)
    else:
        places = [(q, s) for q, s in tiger.backend.find_task(task_id) if q == queue]
    found = []
    for place_queue, state in places:
        stored = tiger.backend.get_task(place_queue, state, task_id, load)
        if stored is not None:
            found.append(stored)
    return found


def _show_outcome(status: TaskStatus, as_json: bool) -> None:
    """A task no longer stored: the outcome it keeps as its result, or an error."""
    failure = status.failure
    if status.status is Status.UNKNOWN:
        raise click.ClickException(f"no task {status.task_id!r} in any queue")
    if as_json:
        failed = None
        if failure is not None:
            failed = {
                "exception_name": failure.exception_name,
                "exception": failure.message,
                "traceback": failure.traceback,
            }
        kept = {"status": status.status.value, "result": status.result, "failure": failed}
        echo_json({"id": status.task_id, "locations": [], **kept})
        return
    lines = [f"Task {status.task_id}", f"  state:      {status.status.value} (no longer stored)"]
    if failure is None:
        lines.append(f"  result:     {json.dumps(status.result)}")
    else:
        lines.append(f"  failed:     {failure.exception_name}: {failure.message}")
        if failure.traceback:
            lines += ["  traceback:", _indent(failure.traceback.rstrip())]
    click.echo(printable("\n".join(lines)))


def _show_json(item: Decoded) -> dict[str, Any]:
    stored = item.stored
    return {
        "queue": stored.queue,
        "state": stored.state.value,
        "time": iso(item.time),
        "waiting": item.waiting,
        "broken": item.broken,
        "payload": None if item.payload is None else payload_as_dict(item.payload),
        "raw_payload": escaped(stored.payload) if item.broken and stored.payload else None,
        "executions_count": stored.executions_count,
        "executions": [
            json.loads(execution.raw)
            if execution.broken is None
            else {"broken": execution.broken, "raw": escaped(execution.raw)}
            for execution in item.executions
        ],
    }


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def _show_text(item: Decoded) -> str:
    stored = item.stored
    lines = [
        f"Task {stored.id}",
        f"  queue:      {stored.queue}",
        f"  state:      {stored.state.value}",
        f"  {TIME_LABELS[stored.state] + ':':<11} {item.time_text}",
    ]
    if item.payload is not None and stored.broken is not None:
        lines.append(f"  {BROKEN_MARK} KEYS: {stored.broken}")
    if item.payload is None:
        lines.append(f"  {BROKEN_MARK} PAYLOAD: {item.broken}")
        raw = "(missing)" if stored.payload is None else escaped(stored.payload)
        lines += ["  raw payload:", _indent(raw)]
    else:
        payload = item.payload
        lines += [
            f"  func:       {payload.func}",
            f"  call:       {payload.func.rpartition(':')[2]}({call_text(payload)})",
            f"  queued at:  {human_time(payload.time_last_queued)}",
            *([f"  priority:   {payload.priority}"] if payload.priority else []),
            "  payload:",
            _indent(json.dumps(payload_as_dict(payload), indent=2)),
        ]
    count = stored.executions_count
    if count:
        shown = len(item.executions)
        lines.append(
            f"  executions: {count} failed" + (f", the last {shown} shown:" if shown else "")
        )
        for number, execution in enumerate(item.executions, start=count - shown + 1):
            lines.append(f"    #{number} {_execution_line(execution)}")
        last = item.executions[-1].record if item.executions else None
        if last is not None and last.traceback:
            lines += ["  last traceback:", _indent(last.traceback.rstrip())]
    else:
        lines.append("  executions: none failed")
    return "\n".join(lines)


def _execution_line(execution: Execution) -> str:
    record = execution.record
    if record is None:
        raw = shorten(escaped(execution.raw), 80)
        return f"{BROKEN_MARK} execution record: {execution.broken}: {raw}"
    host = f" on {record.host}" if record.host else ""
    return f"{human_time(record.time_failed)}{host}: {exception_text(record)}"
