"""Queue names: subqueues separated by periods, and which queues a worker serves."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["QueueSet", "queue_matches", "valid_queue_name"]


def valid_queue_name(name: str) -> bool:
    """Whether ``name`` is a queue name: not empty, no empty subqueue (``a..b``, ``.a``, ``a.``)."""
    return bool(name) and not name.startswith(".") and not name.endswith(".") and ".." not in name


def _prefixes(queue: str) -> list[str]:
    parts = queue.split(".")
    return [".".join(parts[:end]) for end in range(len(parts), 0, -1)]


def queue_matches(queue: str, only: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a worker serving ``only`` (empty: all) minus ``exclude`` serves ``queue``.

    A name covers itself and its subqueues; the most specific name that covers ``queue`` wins,
    so ``only=["email", "email.incoming.a"], exclude=["email.incoming"]`` serves
    ``email.outgoing.x`` and ``email.incoming.a`` but not ``email.incoming.b``.
    """
    for prefix in _prefixes(queue):
        if prefix in exclude:
            return False
        if prefix in only:
            return True
    return not only


class QueueSet:
    """Queue names with O(1) add, discard and random choice (a worker may know thousands)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self.update(names)

    def add(self, name: str) -> None:
        if name not in self._index:
            self._index[name] = len(self._names)
            self._names.append(name)

    def update(self, names: Iterable[str]) -> None:
        for name in names:
            self.add(name)

    def discard(self, name: str) -> None:
        index = self._index.pop(name, None)
        if index is None:
            return
        last = self._names.pop()
        if index < len(self._names):
            self._names[index] = last
            self._index[last] = index

    def choice(self) -> str:
        """A name picked uniformly at random (IndexError when empty)."""
        return self._names[random.randrange(len(self._names))]

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __contains__(self, name: object) -> bool:
        return name in self._index
