"""The task locks as inspection reads them: ``HeldLock``, and the part of the ``Backend``
protocol that reads them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

import attrs

__all__ = ["REQUEUE_LOCK", "HeldLock", "LockInspection"]

#: The lock id of the lock one worker holds while it requeues expired tasks (TaskTiger's name).
REQUEUE_LOCK: Final = "queue_expired_tasks"


@attrs.frozen(kw_only=True)
class HeldLock:
    """A task lock key as read for inspection (held until it expires or its task ends)."""

    #: The lock id (the key's name after ``<prefix>:lockv2:``).
    id: str
    #: The id of the task holding it, None for a value of another form (a TaskTiger token).
    holder: str | None
    #: When it expires (epoch seconds), None for a value of another form.
    expires: float | None
    #: The stored value, bytes that are not UTF-8 kept as lone surrogates.
    raw: str
    #: The queue whose lock it is in the per-queue Redis Cluster layout, where each queue has
    #: locks of its own (docs/scaling.md); None in the classic layout (one lock, every queue).
    queue: str | None = None


class LockInspection(Protocol):
    """The ``Backend`` methods that read task locks."""

    def held_locks(self, limit: int) -> tuple[list[HeldLock], bool]:
        """Up to ``limit`` lock keys (sorted by id, then queue), and whether there were more.
        This scans the keyspace (of every primary, on a cluster): it takes longer the more
        tasks are stored."""
        ...

    def read_locks(self, lock_ids: Sequence[str], queue: str | None = None) -> list[HeldLock]:
        """The lock keys of ``lock_ids`` that exist, in that order (one read each): in the
        per-queue layout ``queue``'s, or with None those of every queue of the registry (each
        id's queue by queue); in the classic layout a lock is every queue's anyway."""
        ...
