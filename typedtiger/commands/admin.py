"""The admin commands of the ``typedtiger`` CLI: inspect queues and tasks, retry, delete or cancel
tasks, purge errored tasks, pause queues.

``cli.py`` registers them on its group with ``register_admin_commands``; this module never
imports ``cli`` (it receives the Tiger factory and the connection options instead). A Tiger put
in the click context object (``CliRunner().invoke(main, args, obj=tiger)``) is used instead of
connecting, which is how the tests run the commands on a FakeBackend.

Output is for humans by default; ``--json`` prints one JSON document on stdout for scripts.
Errors are ``click.ClickException`` (exit status 1, "Error: ..." on stderr).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import click

from typedtiger._queues import queue_matches
from typedtiger.backends.base import StoredTask, TaskState
from typedtiger.commands.connection import ConnectionSettings, connection_options, make_tiger
from typedtiger.exceptions import PayloadError, TaskNotFound, TypedTigerError
from typedtiger.serialization import (
    ExecutionRecord,
    TaskPayload,
    decode_execution,
    decode_payload,
    payload_as_dict,
)
from typedtiger.task import Task
from typedtiger.tiger import Tiger

__all__ = [
    "ConnectionOptions",
    "Duration",
    "TigerFactory",
    "connection_options",
    "make_tiger",
    "parse_duration",
    "register_admin_commands",
]

#: Builds the Tiger a command works on from the connection options.
TigerFactory = Callable[[ConnectionSettings], Tiger]
#: A decorator adding the connection options (``--app``, ``--url``, ``-h/-p/-a/-n``,
#: ``--prefix``).
ConnectionOptions = Callable[[Callable[..., None]], Callable[..., None]]

_STATES: Final = tuple(state.value for state in TaskState)
#: What the score of a task means in each state.
_TIME_LABELS: Final = {
    TaskState.QUEUED: "queued at",
    TaskState.ACTIVE: "last heartbeat",
    TaskState.SCHEDULED: "due at",
    TaskState.ERROR: "failed at",
}
#: How a task in each state is described in messages.
_ADJECTIVES: Final = {
    TaskState.QUEUED: "queued",
    TaskState.ACTIVE: "active (running)",
    TaskState.SCHEDULED: "scheduled",
    TaskState.ERROR: "errored",
}
_BROKEN_MARK: Final = "!! BROKEN"
_BULK_PAGE: Final = 500


# --- connection ----------------------------------------------------------------------------


@attrs.frozen
class _Env:
    """What each command needs: how to get the Tiger."""

    make_tiger: TigerFactory

    def tiger(self, options: dict[str, Any]) -> Tiger:
        connection = ConnectionSettings.pop_from(options)
        injected = click.get_current_context().find_object(Tiger)
        if injected is not None:
            return injected
        try:
            return self.make_tiger(connection)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc


@contextmanager
def _clear_errors() -> Iterator[None]:
    """Turn library errors into one-line CLI errors (no traceback)."""
    try:
        yield
    except TypedTigerError as exc:
        raise click.ClickException(str(exc)) from exc


# --- durations -----------------------------------------------------------------------------

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``15m``, ``2h``, ``3d``, ``12w``, ``1h30m``, ``1.5d``.

    A bare number is seconds. ValueError for anything else.
    """
    value = text.strip().lower()
    if not value:
        raise ValueError("empty duration")
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{text!r} is not a duration >= 0")
        return seconds
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(value) or position == 0:
        raise ValueError(
            f"{text!r} is not a duration: use a number with a unit, s m h d w "
            "(e.g. 90s, 15m, 2h, 3d, 12w, 1h30m)"
        )
    return total


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A click parameter for ``parse_duration``; ``positive`` refuses zero."""

    name = "DURATION"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            try:
                seconds = parse_duration(str(value))
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        if self.positive and seconds <= 0:
            self.fail(f"{value!r} must be longer than 0 seconds", param, ctx)
        return seconds


def _format_seconds(seconds: float) -> str:
    remaining = round(seconds)
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(parts) or "0s"


# --- decoding and formatting ---------------------------------------------------------------


@attrs.frozen
class _Execution:
    record: ExecutionRecord | None
    raw: str
    broken: str | None


@attrs.frozen
class _Decoded:
    """A stored task, decoded as far as it can be: a broken payload is reported, not raised."""

    stored: StoredTask
    payload: TaskPayload | None
    broken: str | None
    executions: tuple[_Execution, ...]

    @classmethod
    def of(cls, stored: StoredTask) -> _Decoded:
        payload: TaskPayload | None = None
        problems = [] if stored.broken is None else [stored.broken]  # (its other keys)
        if stored.payload is None:
            if not problems:
                problems.append("the payload is missing (no task key)")
        else:
            try:
                payload = decode_payload(stored.payload)
            except PayloadError as exc:
                problems.insert(0, str(exc))
            else:
                if payload.id != stored.id:
                    problems.insert(0, f"the payload names another task id, {payload.id!r}")
                    payload = None
        broken = "; ".join(problems) or None
        executions = []
        for raw in stored.executions:
            try:
                executions.append(_Execution(decode_execution(raw), raw, None))
            except PayloadError as exc:
                executions.append(_Execution(None, raw, str(exc)))
        return cls(stored, payload, broken, tuple(executions))

    @property
    def last_exception(self) -> str | None:
        if not self.executions:
            return None
        last = self.executions[-1].record
        return f"{_BROKEN_MARK} execution record" if last is None else _exception_text(last)

    def summary(self) -> dict[str, Any]:
        stored, payload = self.stored, self.payload
        return {
            "id": stored.id,
            "queue": stored.queue,
            "state": stored.state.value,
            "time": _iso(stored.score),
            "func": None if payload is None else payload.func,
            "args": None if payload is None else list(payload.args),
            "kwargs": None if payload is None else payload.kwargs,
            "broken": self.broken,
            "executions_count": stored.executions_count,
            "last_exception": self.last_exception,
        }


def _exception_text(record: ExecutionRecord) -> str:
    name = record.exception_name or "?"
    return f"{name}: {record.exception}" if record.exception else name


def _datetime(timestamp: float) -> datetime | None:
    """The time, or None for a number no datetime holds (a record written by another tool)."""
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    when = _datetime(timestamp)
    return repr(timestamp) if when is None else when.isoformat()


def _human_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    when = _datetime(timestamp)
    return f"{timestamp!r} (not a time)" if when is None else when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _call_text(payload: TaskPayload) -> str:
    parts = [repr(arg) for arg in payload.args]
    parts += [f"{key}={value!r}" for key, value in payload.kwargs.items()]
    return ", ".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _json_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text."
    )(command)


def _queue_names(values: Sequence[str]) -> list[str]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    for name in names:
        if name.startswith(".") or name.endswith(".") or ".." in name:
            raise click.BadParameter(f"invalid queue name {name!r}")
    return names


# --- commands ------------------------------------------------------------------------------


def register_admin_commands(
    group: click.Group,
    make_tiger: TigerFactory = make_tiger,
    connection_options: ConnectionOptions = connection_options,
) -> None:
    """Add ``queues``, ``tasks``, ``show``, ``retry``, ``delete``, ``cancel``, ``purge-errors``,
    ``pause`` and ``unpause`` to ``group``.

    ``make_tiger`` builds the Tiger from the connection options that ``connection_options``
    adds (the defaults are the ones ``typedtiger worker`` uses too).
    """
    env = _Env(make_tiger)
    for build in (
        _queues_command,
        _tasks_command,
        _show_command,
        _retry_command,
        _delete_command,
        _cancel_command,
        _purge_command,
        _pause_command,
        _unpause_command,
    ):
        group.add_command(build(env, connection_options))


def _queues_command(env: _Env, connection: ConnectionOptions) -> click.Command:
    @click.command("queues", context_settings={"help_option_names": ["--help"]})
    @connection
    @_json_option
    def queues(as_json: bool, **options: Any) -> None:
        """A table of every queue's size in each state (and the queues that are paused)."""
        tiger = env.tiger(options)
        with _clear_errors():
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
                "paused_until": _iso(paused.get(queue)),
            }
            for queue in names
        ]
        if as_json:
            _echo_json({"queues": rows})
            return
        if not rows:
            click.echo("No queue holds tasks.")
            return
        totals = [sum(int(row[state]) for row in rows) for state in _STATES]
        table_rows = [
            [
                str(row["queue"]),
                *(str(row[state]) for state in _STATES),
                _human_time(paused[str(row["queue"])]) if row["queue"] in paused else "",
            ]
            for row in rows
        ]
        table_rows.append(["TOTAL", *(str(n) for n in totals), ""])
        headers = ["QUEUE", *(state.upper() for state in _STATES), "PAUSED UNTIL"]
        click.echo(_table(headers, table_rows, right={1, 2, 3, 4}))

    return queues


def _tasks_command(env: _Env, connection: ConnectionOptions) -> click.Command:
    @click.command("tasks", context_settings={"help_option_names": ["--help"]})
    @click.argument("queue")
    @click.argument("state", type=click.Choice(_STATES, case_sensitive=False), metavar="STATE")
    @click.option(
        "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Tasks shown."
    )
    @click.option(
        "--skip", type=click.IntRange(min=0), default=0, show_default=True, help="Tasks skipped."
    )
    @connection
    @_json_option
    def tasks(queue: str, state: str, limit: int, skip: int, as_json: bool, **options: Any) -> None:
        """List the tasks of QUEUE in STATE (queued, active, scheduled, error), newest first.

        Tasks whose stored payload cannot be read are listed and marked "!! BROKEN".
        """
        tiger = env.tiger(options)
        task_state = TaskState(state)
        load = 1 if task_state is TaskState.ERROR else 0
        with _clear_errors():
            total, stored = tiger.backend.list_tasks(queue, task_state, skip, limit, load)
        decoded = [_Decoded.of(item) for item in stored]
        if as_json:
            _echo_json(
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
        click.echo(_printable(_tasks_table(decoded, task_state)))
        shown = f"{skip + 1}-{skip + len(decoded)}"
        footer = f"{task_state.value} tasks {shown} of {total} in queue {queue!r}, newest first."
        if skip + len(decoded) < total:
            footer += f" Next page: --skip {skip + len(decoded)}."
        click.echo(footer)
        if any(item.broken for item in decoded):
            click.echo(
                f"{_BROKEN_MARK}: the stored payload cannot be read; `typedtiger show ID` "
                "tells why, `typedtiger delete`/`cancel` removes it."
            )

    return tasks


def _tasks_table(decoded: Sequence[_Decoded], state: TaskState) -> str:
    headers = ["ID", _TIME_LABELS[state].upper(), "FUNC", "ARGS"]
    if state is TaskState.ERROR:
        headers.append("LAST ERROR")
    rows = []
    for item in decoded:
        if item.payload is None:
            func = f"{_BROKEN_MARK}: {_shorten(item.broken or '', 60)}"
            args = "-"
        else:
            func = item.payload.func
            args = _shorten(_call_text(item.payload), 40)
        row = [item.stored.id, _human_time(item.stored.score), func, args]
        if state is TaskState.ERROR:
            row.append(_shorten(item.last_exception or "-", 50))
        rows.append(row)
    return _table(headers, rows, right=set())


def _show_command(env: _Env, connection: ConnectionOptions) -> click.Command:
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
    @_json_option
    def show(
        task_id: str, queue: str | None, executions: int, as_json: bool, **options: Any
    ) -> None:
        """Show the task TASK_ID wherever it is filed: payload, executions, last traceback.

        A task whose stored payload cannot be read is shown with the reason and the raw text.
        """
        tiger = env.tiger(options)
        with _clear_errors():
            found = _locate(tiger, task_id, queue, executions)
        decoded = [_Decoded.of(stored) for stored in found]
        if as_json:
            _echo_json({"id": task_id, "locations": [_show_json(item) for item in decoded]})
            return
        click.echo(_printable("\n\n".join(_show_text(item) for item in decoded)))

    return show


def _locate(tiger: Tiger, task_id: str, queue: str | None, load: int) -> list[StoredTask]:
    places = [(q, s) for q, s in tiger.backend.find_task(task_id) if queue in (None, q)]
    found = []
    for place_queue, state in places:
        stored = tiger.backend.get_task(place_queue, state, task_id, load)
        if stored is not None:
            found.append(stored)
    if not found:
        where = "any queue" if queue is None else f"queue {queue!r}"
        raise click.ClickException(f"no task {task_id!r} in {where}")
    return found


def _show_json(item: _Decoded) -> dict[str, Any]:
    stored = item.stored
    return {
        "queue": stored.queue,
        "state": stored.state.value,
        "time": _iso(stored.score),
        "broken": item.broken,
        "payload": None if item.payload is None else payload_as_dict(item.payload),
        "raw_payload": _escaped(stored.payload) if item.broken and stored.payload else None,
        "executions_count": stored.executions_count,
        "executions": [
            json.loads(execution.raw)
            if execution.broken is None
            else {"broken": execution.broken, "raw": _escaped(execution.raw)}
            for execution in item.executions
        ],
    }


def _printable(text: str) -> str:
    """``text`` with any lone surrogate (an exception message about a file name that is not
    UTF-8, say) as ``\\udcXX``: a terminal cannot be sent one."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _escaped(text: str) -> str:
    """Stored text made printable: bytes that were not UTF-8 (kept as lone surrogates) and
    control characters as \\xNN, so that a broken task is shown, not printed raw."""
    shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", shown)


_CONTROL: Final = re.compile("[\x00-\x1f\x7f]")


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def _show_text(item: _Decoded) -> str:
    stored = item.stored
    lines = [
        f"Task {stored.id}",
        f"  queue:      {stored.queue}",
        f"  state:      {stored.state.value}",
        f"  {_TIME_LABELS[stored.state] + ':':<11} {_human_time(stored.score)}",
    ]
    if item.payload is not None and stored.broken is not None:
        lines.append(f"  {_BROKEN_MARK} KEYS: {stored.broken}")
    if item.payload is None:
        lines.append(f"  {_BROKEN_MARK} PAYLOAD: {item.broken}")
        raw = "(missing)" if stored.payload is None else _escaped(stored.payload)
        lines += ["  raw payload:", _indent(raw)]
    else:
        payload = item.payload
        lines += [
            f"  func:       {payload.func}",
            f"  call:       {payload.func.rpartition(':')[2]}({_call_text(payload)})",
            f"  queued at:  {_human_time(payload.time_last_queued)}",
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


def _execution_line(execution: _Execution) -> str:
    record = execution.record
    if record is None:
        raw = _shorten(_escaped(execution.raw), 80)
        return f"{_BROKEN_MARK} execution record: {execution.broken}: {raw}"
    host = f" on {record.host}" if record.host else ""
    return f"{_human_time(record.time_failed)}{host}: {_exception_text(record)}"


# --- retry / delete / cancel ---------------------------------------------------------------


@attrs.frozen
class _Action:
    name: str
    past: str
    states: tuple[TaskState, ...]
    apply: Callable[[Tiger, Task], None]
    #: Whether a task with a broken payload may be acted on.
    broken_ok: bool


def _retry(_tiger: Tiger, task: Task) -> None:
    task.retry()


def _delete(_tiger: Tiger, task: Task) -> None:
    task.delete()


def _cancel(tiger: Tiger, task: Task) -> None:
    """Remove a queued or scheduled task (``Task.cancel``, as TaskTiger's, only removes
    scheduled ones; the command removes queued ones too)."""
    assert task.state is not None
    if not tiger.backend.remove(task.queue, task.state, task.id):
        raise TaskNotFound(f"task {task.id} is not {task.state} in queue {task.queue!r}")


_RETRY: Final = _Action("retry", "retried", (TaskState.ERROR,), _retry, broken_ok=False)
_DELETE: Final = _Action("delete", "deleted", (TaskState.ERROR,), _delete, broken_ok=True)
_CANCEL: Final = _Action(
    "cancel", "cancelled", (TaskState.QUEUED, TaskState.SCHEDULED), _cancel, broken_ok=True
)
_ACTION_HELP: Final = {
    "retry": "Queue errored tasks again: TASK_IDS, or every errored task of --queue.\n\n"
    "Acting on a whole queue asks first (--yes skips the question). A task whose payload "
    "is broken is not retried (delete it).",
    "delete": "Delete errored tasks: TASK_IDS, or every errored task of --queue.\n\n"
    "Acting on a whole queue asks first (--yes skips the question). Tasks with a broken "
    "payload are deleted too.",
    "cancel": "Cancel queued or scheduled tasks: TASK_IDS, or every task of --queue in "
    "--state.\n\nActing on a whole queue asks first (--yes skips the question).",
}
_HINTS: Final = {
    "retry": "retry works on errored tasks",
    "delete": "delete removes errored tasks; use cancel for queued or scheduled ones",
    "cancel": "cancel removes queued or scheduled tasks; use delete for errored ones",
}


@attrs.define
class _Report:
    action: _Action
    done: list[dict[str, str]] = attrs.field(factory=list)
    failed: list[dict[str, str | None]] = attrs.field(factory=list)

    def ok(self, stored: StoredTask) -> None:
        self.done.append({"id": stored.id, "queue": stored.queue, "state": stored.state.value})

    def error(self, task_id: str, queue: str | None, message: str) -> None:
        self.failed.append({"id": task_id, "queue": queue, "error": message})


def _act_on(tiger: Tiger, action: _Action, stored: StoredTask, report: _Report) -> bool:
    """Apply ``action`` to one stored task; False if it is left where it is."""
    decoded = _Decoded.of(stored)
    if decoded.broken is not None and not action.broken_ok:
        report.error(
            stored.id,
            stored.queue,
            f"task {stored.id} has a broken payload ({decoded.broken}); it cannot be "
            f"{action.past}, delete it instead",
        )
        return False
    # A broken payload may name another id: the handle must carry the id the task is filed
    # under, whatever the payload says.
    handle = Task(
        tiger,
        payload=decoded.payload or TaskPayload(id=stored.id, func="<broken>"),
        queue=stored.queue,
        state=stored.state,
        score=stored.score,
    )
    try:
        action.apply(tiger, handle)
    except TaskNotFound as exc:
        report.error(stored.id, stored.queue, f"task {stored.id} moved meanwhile: {exc}")
        return True
    report.ok(stored)
    return True


def _act_by_ids(
    tiger: Tiger,
    action: _Action,
    task_ids: Sequence[str],
    queue: str | None,
    states: tuple[TaskState, ...],
    report: _Report,
) -> None:
    for task_id in task_ids:
        places = [(q, s) for q, s in tiger.backend.find_task(task_id) if queue in (None, q)]
        if not places:
            where = "any queue" if queue is None else f"queue {queue!r}"
            report.error(task_id, queue, f"no task {task_id!r} in {where}")
            continue
        targets = [(q, s) for q, s in places if s in states]
        if not targets:
            found = ", ".join(f"{_ADJECTIVES[s]} in queue {q!r}" for q, s in places)
            report.error(task_id, places[0][0], f"task {task_id} is {found}: {_HINTS[action.name]}")
            continue
        for target_queue, state in targets:
            stored = tiger.backend.get_task(target_queue, state, task_id, 0)
            if stored is None:
                report.error(task_id, target_queue, f"task {task_id} moved meanwhile")
                continue
            _act_on(tiger, action, stored, report)


def _act_in_bulk(
    tiger: Tiger,
    action: _Action,
    queue: str,
    states: tuple[TaskState, ...],
    yes: bool,
    as_json: bool,
    report: _Report,
) -> None:
    sizes = tiger.backend.queue_sizes([queue])[queue]
    counts = {state: sizes[state] for state in states}
    total = sum(counts.values())
    if total == 0:
        if not as_json:
            kinds = " or ".join(_ADJECTIVES[state] for state in states)
            click.echo(f"Nothing to {action.name}: queue {queue!r} has no {kinds} tasks.")
        return
    described = " and ".join(f"{n} {_ADJECTIVES[state]}" for state, n in counts.items() if n)
    if not yes:
        click.confirm(
            f"{action.name.capitalize()} all {described} tasks of queue {queue!r}?",
            abort=True,
            err=True,
        )
    with _progress(total, f"{action.name}: {queue}", as_json) as advance:
        for state, count in counts.items():
            left_alone = 0
            handled = 0
            while handled < count:
                page_size = min(_BULK_PAGE, count - handled)
                _, page = tiger.backend.list_tasks(queue, state, left_alone, page_size, 0)
                if not page:
                    break
                for stored in page:
                    if not _act_on(tiger, action, stored, report):
                        left_alone += 1
                    handled += 1
                    advance(1)


@contextmanager
def _progress(total: int, label: str, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (nothing with ``quiet``), as a function advancing it."""
    if quiet:
        yield lambda _n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _action_command(env: _Env, connection: ConnectionOptions, action: _Action) -> click.Command:
    state_choices = [state.value for state in action.states]

    @click.command(action.name, context_settings={"help_option_names": ["--help"]})
    @click.argument("task_ids", nargs=-1)
    @click.option("--queue", default=None, help="The queue (every matching task without ids).")
    @click.option(
        "--state",
        type=click.Choice(state_choices, case_sensitive=False),
        default=state_choices[0] if len(state_choices) == 1 else None,
        help="The state of the tasks to act on"
        + (" (required with --queue and no ids)." if len(state_choices) > 1 else "."),
    )
    @click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
    @connection
    @_json_option
    def command(
        task_ids: tuple[str, ...],
        queue: str | None,
        state: str | None,
        yes: bool,
        as_json: bool,
        **options: Any,
    ) -> None:
        tiger = env.tiger(options)
        states = action.states if state is None else (TaskState(state),)
        report = _Report(action)
        with _clear_errors():
            if task_ids:
                _act_by_ids(tiger, action, task_ids, queue, states, report)
            elif queue is None:
                raise click.UsageError(
                    f"give the ids of the tasks to {action.name}, or --queue (and --state) "
                    f"to {action.name} every matching task"
                )
            elif state is None:
                raise click.UsageError(
                    f"{action.name} --queue needs --state ({' or '.join(state_choices)})"
                )
            else:
                _act_in_bulk(tiger, action, queue, states, yes, as_json, report)
        _finish(report, as_json)

    command.help = _ACTION_HELP[action.name]
    return command


def _finish(report: _Report, as_json: bool) -> None:
    action = report.action
    if as_json:
        _echo_json({"action": action.name, action.past: report.done, "failed": report.failed})
    else:
        for failure in report.failed:
            click.echo(_printable(f"Error: {failure['error']}"), err=True)
        if report.done:
            noun = "task" if len(report.done) == 1 else "tasks"
            click.echo(f"{action.past.capitalize()} {len(report.done)} {noun}.")
            if len(report.done) <= 10:
                for item in report.done:
                    click.echo(_printable(f"  {item['id']} ({item['queue']}, was {item['state']})"))
    if report.failed:
        ctx = click.get_current_context()
        if as_json:
            ctx.exit(1)
        raise click.ClickException(f"{len(report.failed)} task(s) could not be {action.past}")


def _retry_command(env: _Env, connection: ConnectionOptions) -> click.Command:
    return _action_command(env, connection, _RETRY)


def _delete_command(env: _Env, connection: ConnectionOptions) -> click.Command:
    return _action_command(env, connection, _DELETE)


def _cancel_command(env: _Env, connection: ConnectionOptions) -> click.Command:
    return _action_command(env, connection, _CANCEL)


# --- purge-errors --------------------------------------------------------------------------


def _purge_command(env: _Env, connection: ConnectionOptions) -> click.Command:
    @click.command("purge-errors", context_settings={"help_option_names": ["--help"]})
    @click.option(
        "--older-than",
        type=Duration(),
        required=True,
        help="Purge tasks that failed longer ago than this (12w, 30d, 1h30m; 0 for all).",
    )
    @click.option(
        "-q", "--queue", "queues", multiple=True, help="Only these queues (and subqueues)."
    )
    @click.option(
        "-e", "--exclude-queue", "exclude_queues", multiple=True, help="Skip these queues."
    )
    @click.option("--limit", type=click.IntRange(min=1), default=None, help="Purge at most N.")
    @click.option(
        "--chunk-size",
        type=click.IntRange(min=1),
        default=1000,
        show_default=True,
        help="Tasks removed per Redis call (keeps each call short).",
    )
    @click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
    @connection
    @_json_option
    def purge_errors(
        older_than: float,
        queues: tuple[str, ...],
        exclude_queues: tuple[str, ...],
        limit: int | None,
        chunk_size: int,
        yes: bool,
        as_json: bool,
        **options: Any,
    ) -> None:
        """Delete errored tasks that failed longer ago than --older-than.

        Works queue by queue, oldest first, in chunks, with a progress bar.
        """
        tiger = env.tiger(options)
        only, exclude = _queue_names(queues), _queue_names(exclude_queues)
        with _clear_errors():
            before = tiger.clock.now() - older_than
            names = sorted(
                queue
                for queue in tiger.backend.queues_with_tasks(TaskState.ERROR)
                if queue_matches(queue, only, exclude)
            )
            sizes = tiger.backend.queue_sizes(names) if names else {}
            errored = {queue: sizes[queue][TaskState.ERROR] for queue in names}
            total = sum(errored.values())
            if total and not yes:
                click.confirm(
                    f"Purge errored tasks that failed before {_human_time(before)} "
                    f"({_format_seconds(older_than)} ago) from {len(names)} queue(s) holding "
                    f"{total} errored tasks" + (f" (at most {limit})" if limit else "") + "?",
                    abort=True,
                    err=True,
                )
            purged = _purge(tiger, errored, before, limit, chunk_size, as_json)
        count = sum(purged.values())
        if as_json:
            _echo_json({"purged": count, "before": _iso(before), "queues": purged})
            return
        if not total:
            click.echo("No errored tasks to purge.")
            return
        detail = ", ".join(f"{queue}: {n}" for queue, n in purged.items() if n)
        click.echo(
            f"Purged {count} errored task{'' if count == 1 else 's'}"
            + (f" ({detail})." if detail else ".")
        )

    return purge_errors


def _purge(
    tiger: Tiger,
    errored: dict[str, int],
    before: float,
    limit: int | None,
    chunk_size: int,
    quiet: bool,
) -> dict[str, int]:
    purged = dict.fromkeys(errored, 0)
    total = sum(errored.values())
    with _progress(total, "purging errored tasks", quiet or not total) as advance:
        done = 0
        for queue, size in errored.items():
            while limit is None or done < limit:
                chunk = chunk_size if limit is None else min(chunk_size, limit - done)
                removed = tiger.backend.purge_errors(queue, before, chunk)
                purged[queue] += removed
                done += removed
                advance(removed)
                if removed < chunk:
                    break
            # The tasks that failed too recently are done with too.
            advance(max(0, size - purged[queue]))
    return purged


# --- pause / unpause -----------------------------------------------------------------------


def _pause_command(env: _Env, connection: ConnectionOptions) -> click.Command:
    @click.command("pause", context_settings={"help_option_names": ["--help"]})
    @click.argument("queue")
    @click.option(
        "--for",
        "duration",
        type=Duration(positive=True),
        required=True,
        help="How long (60s, 15m, 2h, ...).",
    )
    @connection
    @_json_option
    def pause(queue: str, duration: float, as_json: bool, **options: Any) -> None:
        """Pause QUEUE: no worker claims its tasks until the time is up (`unpause` ends it).

        This sets the queue's system lock; it applies to QUEUE itself, not to its subqueues.
        """
        _queue_names([queue])
        tiger = env.tiger(options)
        with _clear_errors():
            tiger.set_queue_system_lock(queue, duration)
            until = tiger.get_queue_system_lock(queue)
        if as_json:
            _echo_json({"queue": queue, "paused_until": _iso(until)})
            return
        click.echo(
            f"Queue {queue!r} is paused until {_human_time(until)} "
            f"(for {_format_seconds(duration)})."
        )

    return pause


def _unpause_command(env: _Env, connection: ConnectionOptions) -> click.Command:
    @click.command("unpause", context_settings={"help_option_names": ["--help"]})
    @click.argument("queue")
    @connection
    @_json_option
    def unpause(queue: str, as_json: bool, **options: Any) -> None:
        """End the pause of QUEUE now."""
        _queue_names([queue])
        tiger = env.tiger(options)
        with _clear_errors():
            was_paused = tiger.get_queue_system_lock(queue) is not None
            if was_paused:
                # A lock that ended at the epoch: expired for every clock.
                tiger.clear_queue_system_lock(queue)
        if as_json:
            _echo_json({"queue": queue, "was_paused": was_paused})
            return
        click.echo(
            f"Queue {queue!r} " + ("is no longer paused." if was_paused else "was not paused.")
        )

    return unpause
