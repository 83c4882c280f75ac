"""The executor a Worker uses when given none (the one place that picks a concrete one)."""

from __future__ import annotations

from typedtiger.backends.base import Backend
from typedtiger.worker.executor import Executor

__all__ = ["default_executor"]


def default_executor(backend: Backend) -> Executor:
    """ForkExecutor where a forked child can reach the storage (``Backend.forks_safely``),
    SyncExecutor otherwise (an in-process fakeredis cannot see a child's writes)."""
    if backend.forks_safely:
        from typedtiger.worker.fork import ForkExecutor

        return ForkExecutor()
    from typedtiger.worker.sync import SyncExecutor

    return SyncExecutor()
