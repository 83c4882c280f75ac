"""The names of RedisBackend's keys, and the keys each script declares in KEYS.

Every script refuses a key it was not given in KEYS (``_common.lua``), so these lists and the
scripts cannot drift apart unnoticed: a missing name fails the call with an UNDECLARED error.

Two layouts (docs/redis-layout.md, docs/scaling.md). The classic one is TaskTiger's: every key
under the prefix ``P``. The per-queue one (Redis Cluster, a prefix without a hash tag) is the
classic layout under a prefix of each queue's own, ``P:{<queue>}``: a queue's keys, its tasks'
and its locks' share one slot, so different queues land on different shards and no script
crosses slots. Only what spans queues stays under ``P:{P}`` (the registry of queue names, the
worker registry); the scripts receive the queue's prefix as their ``P``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from typedtiger.backends.base import Completion, NewTask, TaskState

__all__ = ["KeyLayout", "glob_escaped", "has_hash_tag"]

_STATES = tuple(TaskState)
_ENQUEUED_INTO = tuple(state for state in _STATES if state != TaskState.ERROR)
#: Queues whose key lists a layout keeps built (a call per task builds them otherwise); past it,
#: the lists are dropped and built again (subqueues may be many).
_KEPT_QUEUES = 1024


def glob_escaped(text: str) -> str:
    """``text`` as a SCAN/KEYS pattern matching itself only."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def has_hash_tag(prefix: str) -> bool:
    """Whether Redis Cluster hashes keys under ``prefix`` by a tag in it (``{...}``, not
    empty), so that they all share one slot."""
    opening = prefix.find("{")
    closing = prefix.find("}", opening + 1)
    return opening >= 0 and closing > opening + 1


class KeyLayout:
    """Key names under ``prefix``, classic or per queue (``sharded``)."""

    def __init__(self, prefix: str, *, sharded: bool = False) -> None:
        if sharded and ("{" in prefix or "}" in prefix):
            raise ValueError(
                f"prefix {prefix!r}: a hash tag puts every key in one slot; the per-queue "
                "layout needs a prefix without braces"
            )
        self.prefix = prefix
        self.sharded = sharded
        self._global = f"{prefix}:{{{prefix}}}" if sharded else prefix
        self._queue_keys: dict[str, tuple[str, ...]] = {}
        self._enqueued_keys: dict[str, tuple[str, ...]] = {}

    def base(self, queue: str) -> str:
        """The prefix of ``queue``'s keys: the scripts' ``P`` for a call on that queue."""
        if not self.sharded:
            return self.prefix
        if not queue or "{" in queue or "}" in queue:
            raise ValueError(
                f"queue {queue!r}: the per-queue Redis Cluster layout hashes a queue's keys by "
                "its name, which must be non-empty and hold no braces"
            )
        return f"{self.prefix}:{{{queue}}}"

    def key(self, *parts: str) -> str:
        """A key of no queue (the worker registry, the registry of queue names)."""
        return ":".join((self._global, *parts))

    def state(self, state: TaskState, queue: str) -> str:
        """The sorted set of ``queue``'s tasks in ``state``."""
        return f"{self.base(queue)}:{state.value}:{queue}"

    def names(self, state: TaskState, queue: str = "") -> str:
        """The set of the names of the queues that hold tasks in ``state`` (per queue: only
        that queue's name)."""
        return f"{self.base(queue) if self.sharded else self.prefix}:{state.value}"

    def task(self, queue: str, task_id: str) -> str:
        return f"{self.base(queue)}:task:{task_id}"

    def lock(self, queue: str, lock_id: str) -> str:
        return f"{self.base(queue)}:lockv2:{lock_id}"

    def qslock(self, queue: str) -> str:
        return f"{self.base(queue)}:qslock:{queue}"

    def claim(self, queue: str, claimant: str) -> str:
        return f"{self.base(queue)}:claim:{claimant}"

    def activity(self) -> str:
        """The channel (or, per queue, the pattern of the channels) queued tasks are announced
        on: not a key."""
        if not self.sharded:
            return f"{self.prefix}:activity"
        return f"{glob_escaped(self.prefix)}:{{*}}:activity"

    def glob(self, kind: str, start: str = "") -> str:
        """A SCAN pattern for the keys of every queue named ``<kind>:<start>...`` (``task``,
        ``lockv2``); glob characters in the names match themselves. (Per queue a key of another
        shape may match too: ``parse`` tells.)"""
        if not self.sharded:
            return f"{glob_escaped(f'{self.prefix}:{kind}:{start}')}*"
        return f"{glob_escaped(self.prefix)}:{{*}}{glob_escaped(f':{kind}:{start}')}*"

    def parse(self, key: str, kind: str) -> tuple[str, str] | None:
        """A key of ``kind`` as (its queue, what follows ``<kind>:``), or None for a key of
        another shape; the queue is "" in the classic layout (a task's key names no queue)."""
        if not self.sharded:
            head = f"{self.prefix}:{kind}:"
            return ("", key[len(head) :]) if key.startswith(head) else None
        head, mark = f"{self.prefix}:{{", f":{kind}:"
        queue, closing, rest = key[len(head) :].partition("}")
        if not key.startswith(head) or not closing or not queue or not rest.startswith(mark):
            return None
        return queue, rest[len(mark) :]

    def registry(self) -> str:
        """Per queue: the set of every queue name enqueued to or paused (no script writes it)."""
        return self.key("queues")

    def queue_keys(self, queue: str) -> tuple[str, ...]:
        """What a script working on one queue may touch of it: its sorted sets and the sets
        of queue names."""
        return _kept(self._queue_keys, queue, self._build_queue_keys)

    def _build_queue_keys(self, queue: str) -> tuple[str, ...]:
        return (
            *(self.state(state, queue) for state in _STATES),
            *(self.names(state, queue) for state in _STATES),
        )

    def _build_enqueued_keys(self, queue: str) -> tuple[str, ...]:
        names = (self.names(TaskState.QUEUED, queue), self.names(TaskState.SCHEDULED, queue))
        return (*names, *(self.state(state, queue) for state in _ENQUEUED_INTO))

    def all_names(self, queue: str = "") -> list[str]:
        return [self.names(state, queue) for state in _STATES]

    def tasks(self, queue: str, task_ids: Iterable[str]) -> list[str]:
        return [self.task(queue, task_id) for task_id in task_ids]

    def locks(self, queue: str, lock_ids: Iterable[str]) -> list[str]:
        return [self.lock(queue, lock_id) for lock_id in lock_ids if lock_id]

    def enqueue_keys(self, tasks: Sequence[NewTask]) -> list[str]:
        """What an enqueue may touch: the queues' sorted sets but error's (a unique or periodic
        task is looked up in them), the sets of queued and scheduled queue names, the tasks;
        for a task enqueued after others, all of its queue's keys (it may be cancelled at once,
        to error) and those of the queues and tasks it waits for."""
        keys: list[str] = []
        for queue in dict.fromkeys(task.queue for task in tasks):
            keys += _kept(self._enqueued_keys, queue, self._build_enqueued_keys)
        keys += [self.task(task.queue, task.id) for task in tasks]
        for task in tasks:
            if task.after:
                keys += self.queue_keys(task.queue)
            for ref in task.after:
                if self.sharded and self.base(ref.queue) != self.base(task.queue):
                    raise ValueError(
                        f"task {task.id} of queue {task.queue!r} cannot wait for a task of queue "
                        f"{ref.queue!r}: in the per-queue Redis Cluster layout each queue is in "
                        "a slot of its own, and a dependency is kept in one atomic step"
                    )
                keys += [*self.queue_keys(ref.queue), self.task(ref.queue, ref.id)]
        return keys

    def completion_keys(self, done: Completion) -> list[str]:
        """What completing ``done`` may touch: its queue's keys, its tasks and locks."""
        keys = [*self.queue_keys(done.queue), *self.tasks(done.queue, done.task_ids)]
        return keys + self.locks(done.queue, done.lock_ids)


def _kept(
    kept: dict[str, tuple[str, ...]], queue: str, build: Callable[[str], tuple[str, ...]]
) -> tuple[str, ...]:
    """``build(queue)``, kept in ``kept`` (emptied once it holds ``_KEPT_QUEUES``)."""
    keys = kept.get(queue)
    if keys is None:
        if len(kept) >= _KEPT_QUEUES:
            kept.clear()
        keys = kept[queue] = build(queue)
    return keys
