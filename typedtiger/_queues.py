"""Queue names: subqueues separated by periods, and which queues a worker serves."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["queue_matches"]


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
