"""The worker registry's values: what a live worker says about itself (``WorkerInfo``, with the
tasks it is running), and their JSON as stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import attrs

from typedtiger.exceptions import PayloadError

__all__ = ["RunningTask", "WorkerInfo", "decode_worker_info", "encode_worker_info"]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"a timezone-aware datetime is needed, got {value!r}")
    return value.astimezone(UTC)


@attrs.frozen(kw_only=True)
class RunningTask:
    """A task a worker was running at its last beat."""

    id: str
    queue: str
    #: The function, as "module:qualname".
    func: str
    started: datetime = attrs.field(converter=_utc)


@attrs.frozen(kw_only=True)
class WorkerInfo:
    """A worker as its last beat recorded it (at most ``active_task_update_timer`` old while it
    lives; gone from the registry ``active_task_update_timeout`` after its last beat)."""

    id: str
    host: str
    pid: int
    #: The queues it serves (empty: every queue but ``exclude_queues``).
    queues: tuple[str, ...]
    exclude_queues: tuple[str, ...]
    #: The executor's class name (``ForkExecutor``, ``PreforkExecutor``, ``SyncExecutor``...).
    executor: str
    concurrency: int
    started: datetime = attrs.field(converter=_utc)
    last_beat: datetime = attrs.field(converter=_utc)
    #: The tasks it was running at ``last_beat``, the oldest first.
    tasks: tuple[RunningTask, ...] = ()


def _stamp(value: datetime) -> float:
    return round(value.timestamp(), 6)


def encode_worker_info(info: WorkerInfo) -> str:
    """The JSON stored for ``info``."""
    data = {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "queues": list(info.queues),
        "exclude_queues": list(info.exclude_queues),
        "executor": info.executor,
        "concurrency": info.concurrency,
        "started": _stamp(info.started),
        "last_beat": _stamp(info.last_beat),
        "tasks": [
            {"id": t.id, "queue": t.queue, "func": t.func, "started": _stamp(t.started)}
            for t in info.tasks
        ],
    }
    return json.dumps(data, separators=(",", ":"))


def _time(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a time in epoch seconds is needed, got {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"a list of strings is needed, got {value!r}")
    return tuple(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a string is needed, got {value!r}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an integer is needed, got {value!r}")
    return value


def decode_worker_info(text: str) -> WorkerInfo:
    """Read a stored worker record; PayloadError says what is wrong with it."""
    try:
        data = json.loads(text)
        tasks = tuple(
            RunningTask(
                id=_text(task["id"]),
                queue=_text(task["queue"]),
                func=_text(task["func"]),
                started=_time(task["started"]),
            )
            for task in data["tasks"]
        )
        return WorkerInfo(
            id=_text(data["id"]),
            host=_text(data["host"]),
            pid=_count(data["pid"]),
            queues=_strings(data["queues"]),
            exclude_queues=_strings(data["exclude_queues"]),
            executor=_text(data["executor"]),
            concurrency=_count(data["concurrency"]),
            started=_time(data["started"]),
            last_beat=_time(data["last_beat"]),
            tasks=tasks,
        )
    except (ValueError, TypeError, KeyError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise PayloadError(f"worker record {text[:200]!r} is unreadable: {what}") from None
