"""What the admin commands share: how a command gets its Tiger, durations, decoding and
formatting of stored tasks, the ``--json`` option."""

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

from typedtiger._priorities import queued_time
from typedtiger._queues import valid_queue_name
from typedtiger.backends.base import WAITING_SCORE, StoredTask, TaskState
from typedtiger.commands.connection import ConnectionSettings
from typedtiger.exceptions import PayloadError, TypedTigerError
from typedtiger.serialization import (
    ExecutionRecord,
    TaskPayload,
    decode_execution,
    decode_payload,
)
from typedtiger.tiger import Tiger

__all__ = [
    "ADJECTIVES",
    "BROKEN_MARK",
    "STATES",
    "TIME_LABELS",
    "ConnectionOptions",
    "Decoded",
    "Duration",
    "Env",
    "Execution",
    "TigerFactory",
    "call_text",
    "clear_errors",
    "echo_json",
    "escaped",
    "exception_text",
    "format_seconds",
    "human_time",
    "iso",
    "json_option",
    "parse_duration",
    "printable",
    "progress",
    "queue_names",
    "shorten",
    "table",
]


#: Builds the Tiger a command works on from the connection options.
TigerFactory = Callable[[ConnectionSettings], Tiger]
#: A decorator adding the connection options (``--app``, ``--url``, ``-h/-p/-a/-n``,
#: ``--prefix``).
ConnectionOptions = Callable[[Callable[..., None]], Callable[..., None]]

STATES: Final = tuple(state.value for state in TaskState)
#: What the score of a task means in each state.
TIME_LABELS: Final = {
    TaskState.QUEUED: "queued at",
    TaskState.ACTIVE: "last heartbeat",
    TaskState.SCHEDULED: "due at",
    TaskState.ERROR: "failed at",
}
#: How a task in each state is described in messages.
ADJECTIVES: Final = {
    TaskState.QUEUED: "queued",
    TaskState.ACTIVE: "active (running)",
    TaskState.SCHEDULED: "scheduled",
    TaskState.ERROR: "errored",
}
BROKEN_MARK: Final = "!! BROKEN"


# --- connection ----------------------------------------------------------------------------


@attrs.frozen
class Env:
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
def clear_errors() -> Iterator[None]:
    """Turn library errors into one-line CLI errors (no traceback)."""
    try:
        yield
    except TypedTigerError as exc:
        raise click.ClickException(printable(str(exc))) from exc


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


def format_seconds(seconds: float) -> str:
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
class Execution:
    record: ExecutionRecord | None
    raw: str
    broken: str | None


@attrs.frozen
class Decoded:
    """A stored task, decoded as far as it can be: a broken payload is reported, not raised."""

    stored: StoredTask
    payload: TaskPayload | None
    broken: str | None
    executions: tuple[Execution, ...]

    @classmethod
    def of(cls, stored: StoredTask) -> Decoded:
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
                executions.append(Execution(decode_execution(raw), raw, None))
            except PayloadError as exc:
                executions.append(Execution(None, raw, str(exc)))
        return cls(stored, payload, broken, tuple(executions))

    @property
    def waiting(self) -> bool:
        """Whether it waits for other tasks (enqueued ``after`` them: never due until then)."""
        return self.stored.state is TaskState.SCHEDULED and self.stored.score == WAITING_SCORE

    @property
    def time_text(self) -> str:
        """The time its score stands for, as people read it."""
        return "waiting for other tasks" if self.waiting else human_time(self.time)

    @property
    def time(self) -> float:
        """The time its score stands for (a queued score less its priority's head start)."""
        if self.stored.state is TaskState.QUEUED and self.payload is not None:
            return queued_time(self.stored.score, self.payload.priority)
        return self.stored.score

    @property
    def last_exception(self) -> str | None:
        if not self.executions:
            return None
        last = self.executions[-1].record
        return f"{BROKEN_MARK} execution record" if last is None else exception_text(last)

    def summary(self) -> dict[str, Any]:
        stored, payload = self.stored, self.payload
        return {
            "id": stored.id,
            "queue": stored.queue,
            "state": stored.state.value,
            "time": iso(self.time),
            "waiting": self.waiting,
            "func": None if payload is None else payload.func,
            "args": None if payload is None else list(payload.args),
            "kwargs": None if payload is None else payload.kwargs,
            "broken": self.broken,
            "executions_count": stored.executions_count,
            "last_exception": self.last_exception,
        }


def exception_text(record: ExecutionRecord) -> str:
    name = record.exception_name or "?"
    return f"{name}: {record.exception}" if record.exception else name


def _datetime(timestamp: float) -> datetime | None:
    """The time, or None for a number no datetime holds (a record written by another tool)."""
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    when = _datetime(timestamp)
    return repr(timestamp) if when is None else when.isoformat()


def human_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    when = _datetime(timestamp)
    return f"{timestamp!r} (not a time)" if when is None else when.strftime("%Y-%m-%d %H:%M:%S UTC")


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def call_text(payload: TaskPayload) -> str:
    parts = [repr(arg) for arg in payload.args]
    parts += [f"{key}={value!r}" for key, value in payload.kwargs.items()]
    return ", ".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
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


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def json_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text."
    )(command)


def queue_names(values: Sequence[str]) -> list[str]:
    """The queue names of a repeatable, comma-separated option; BadParameter for a bad one."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    for name in names:
        if not valid_queue_name(name):
            raise click.BadParameter(f"invalid queue name {name!r}")
    return names


@contextmanager
def progress(total: int, label: str, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (nothing with ``quiet``), as a function advancing it."""
    if quiet:
        yield lambda _n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def printable(text: str) -> str:
    """``text`` safe for a terminal, lines and tabs kept: control characters (ESC, BEL, CR,
    backspace, C1 such as CSI), bidirectional overrides and lone surrogates (an exception
    message about a file name that is not UTF-8, say) shown as ``\\xNN`` / ``\\uNNNN``. Task data
    is anyone's who can enqueue: printed raw, it could rewrite the screen or the title."""
    return _UNSAFE.sub(_escape_char, text)


#: What ``printable`` escapes: C0 controls but tab and newline, DEL and C1, bidi controls,
#: surrogates.
_UNSAFE: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape_char(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escaped(text: str) -> str:
    """Stored text made printable: bytes that were not UTF-8 (kept as lone surrogates) and
    control characters as \\xNN, so that a broken task is shown, not printed raw."""
    shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", shown)


_CONTROL: Final = re.compile("[\x00-\x1f\x7f]")
