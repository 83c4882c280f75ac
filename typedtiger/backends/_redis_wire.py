"""How RedisBackend's script arguments and replies travel: argument lists, undecoded replies
(bytes that are not UTF-8 kept as lone surrogates), counts, and sockets inherited by a fork."""

from __future__ import annotations

import contextlib
import itertools
import math
import socket
from collections.abc import Sequence
from typing import Any

from typedtiger._priorities import queued_score
from typedtiger.backends.base import (
    Claimed,
    Completion,
    Enqueued,
    EnqueueMode,
    NewTask,
    TaskRef,
    TaskState,
)
from typedtiger.exceptions import QueueFullException, StorageDataError

__all__ = [
    "claimed",
    "close_inherited_sockets",
    "completion_args",
    "enqueue_args",
    "enqueue_options",
    "enqueued",
    "escaped",
    "keep_ms",
    "lock_pairs",
    "num",
    "queue_names",
    "raise_skipped",
    "stored_count",
    "undecoded",
    "wire",
]


def close_inherited_sockets(pool: object) -> None:
    # redis-py has no API for this (a pool's own disconnect() first forgets the connections it
    # finds were made in another process): its connection lists, read defensively.
    connections: list[Any] = [
        *getattr(pool, "_available_connections", ()),
        *getattr(pool, "_in_use_connections", ()),
        *getattr(pool, "_connections", ()),  # BlockingConnectionPool
    ]
    for connection in connections:
        sock = getattr(connection, "_sock", None)
        if isinstance(sock, socket.socket):
            connection._sock = None
            with contextlib.suppress(OSError):
                sock.close()


def raise_skipped(skipped: Sequence[str]) -> None:
    """StorageDataError for the queues a script skipped, their keys holding another type (what
    it did for the other queues stands)."""
    if skipped:
        raise StorageDataError(f"WRONGTYPE, queue skipped: {'; '.join(skipped)}")


def enqueue_options(
    task: NewTask,
) -> tuple[str, float, EnqueueMode, int | None, int, tuple[TaskRef, ...]]:
    return task.queue, task.due, task.mode, task.max_queue_size, task.priority, task.after


def enqueue_args(tasks: Sequence[NewTask], now: float, publish: bool) -> list[object]:
    """The enqueue script's arguments (after the prefix) for ``tasks``."""
    args: list[object] = [num(now), int(publish)]
    # Neighbours sharing their options travel as one group: two arguments per task.
    groups = itertools.groupby(tasks, enqueue_options)
    for (queue, due, mode, max_size, priority, after), group in groups:
        pairs = [item for task in group for item in (task.id, task.payload)]
        waits = [item for ref in after for item in (ref.queue, ref.id)]
        args += [queue, num(due), mode.value, max_size or 0, priority, len(after), *waits]
        args += [len(pairs) // 2, *pairs]
    return args


def enqueued(tasks: Sequence[NewTask], now: float, reply: list[Any]) -> list[Enqueued]:
    """Where each of ``tasks`` is, from the enqueue script's undecoded reply; QueueFullException
    or StorageDataError when it stored nothing."""
    status, *rest = reply
    if status != b"ok":
        number, detail = rest
        task = tasks[int(number) - 1]
        if status == b"full":
            raise QueueFullException(
                f"queue {task.queue!r} holds {detail} tasks (max_queue_size "
                f"{task.max_queue_size}); nothing was enqueued"
            )
        raise StorageDataError(
            f"WRONGTYPE: Redis key {undecoded(detail)!r} holds another type of value; nothing "
            "was enqueued"
        )
    results = [
        Enqueued(TaskState.QUEUED, queued_score(now, task.priority))
        if task.due <= now
        else Enqueued(TaskState.SCHEDULED, task.due)
        for task in tasks
    ]
    for at in range(0, len(rest), 4):
        number, state, score, payload = rest[at : at + 4]
        text = None if payload is None else undecoded(payload)
        results[int(number) - 1] = Enqueued(TaskState(state.decode()), float(score), text)
    return results


def num(value: float) -> str:
    return repr(float(value))


def lock_pairs(task_ids: Sequence[str], lock_ids: Sequence[str]) -> list[str]:
    if len(lock_ids) > len(task_ids):
        raise ValueError("more lock ids than task ids")
    pairs: list[str] = []
    for task_id, lock_id in zip(task_ids, lock_ids, strict=False):
        if lock_id:
            pairs += [task_id, lock_id]
    return pairs


def keep_ms(seconds: float) -> int:
    """How long (ms) Redis keeps a result: the time it is kept for, and a minute for clocks
    that differ (the stored text says when it expires)."""
    return math.ceil(seconds * 1000) + 60_000


def completion_args(done: Completion) -> list[object]:
    pairs = lock_pairs(done.task_ids, done.lock_ids)
    results = [
        item for kept in done.results for item in (kept.task_id, kept.text, keep_ms(kept.keep_for))
    ]
    return [
        done.queue,
        len(done.task_ids),
        *done.task_ids,
        len(pairs) // 2,
        *pairs,
        len(done.results),
        *results,
    ]


def claimed(task_id: bytes, payload: bytes | None, count_or_reason: int | bytes) -> Claimed:
    """One task of an undecoded claim reply: a string in place of the count is why the script
    quarantined it. A payload's bytes that are not UTF-8 are kept as lone surrogates
    (surrogateescape), which decoding the payload reports as such."""
    if isinstance(count_or_reason, bytes):  # (an id that is not UTF-8 is shown escaped)
        shown = task_id.decode("utf-8", "backslashreplace")
        return Claimed(shown, None, broken=count_or_reason.decode())
    text = None if payload is None else payload.decode("utf-8", "surrogateescape")
    return Claimed(task_id.decode(), text, int(count_or_reason))


def wire(arg: object) -> object:
    """A script argument as redis-py may send it: text holding bytes that were not UTF-8
    (surrogateescape) as those bytes; redis-py's encoder would refuse it."""
    if isinstance(arg, str) and not arg.isascii():
        try:
            arg.encode()
        except UnicodeEncodeError:
            return arg.encode("utf-8", "surrogateescape")
    return arg


def queue_names(members: set[bytes]) -> set[str]:
    """The queue names of a state's set that are UTF-8: typedtiger refuses any other name at
    enqueue, and none could be passed on as text; another writer's are left alone."""
    names = set()
    for member in members:
        with contextlib.suppress(UnicodeDecodeError):
            names.add(member.decode())
    return names


def undecoded(value: bytes) -> str:
    """Stored text, with bytes that are not UTF-8 kept as lone surrogates (surrogateescape):
    decoding it reports them, and a display can show them escaped."""
    return value.decode("utf-8", "surrogateescape")


def stored_count(value: object) -> int | None:
    """An executions count as stored (absent: 0), or None if it is not one."""
    if value is None:
        return 0
    if isinstance(value, bytes) and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def escaped(value: object) -> str:
    if isinstance(value, bytes):
        return repr(value)[1:]  # (quoted, every byte that is not printable ASCII escaped)
    return f"a value Redis refused to read ({value})"
