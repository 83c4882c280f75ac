"""Executors run claimed tasks and report an Outcome; they never touch storage.

``SyncExecutor`` runs tasks in the worker process. ``ForkExecutor`` (the default on Redis) forks
one child per task or batch and enforces the hard timeout by killing it; the child reports its
outcome through a pipe and never writes to storage. ``PreforkExecutor`` keeps a pool of
long-lived children (one per concurrency slot) that run jobs one after the other, replaced after
a number of tasks, past a memory size, or when killed at a hard timeout. ``AsyncioExecutor``
awaits ``async def`` tasks side by side on one event loop in a child of the worker, cancelling
them at their hard timeout (a watchdog replaces a loop a task blocks). The worker heartbeats
while jobs run.

This module re-exports them from ``typedtiger.worker`` (where the execution path lives), with
the protocol (``Executor``, ``Running``, ``ExecutorSettings``) and the values it deals in.
"""

from typedtiger.worker.asyncio_executor import AsyncioExecutor, AsyncioJob
from typedtiger.worker.executor import Executor, ExecutorSettings, Finished, RunJob, Running
from typedtiger.worker.fork import ForkedJob, ForkExecutor
from typedtiger.worker.job import Failed, Job, Outcome, Succeeded
from typedtiger.worker.prefork import PreforkedJob, PreforkExecutor
from typedtiger.worker.sync import SyncExecutor

__all__ = [
    "AsyncioExecutor",
    "AsyncioJob",
    "Executor",
    "ExecutorSettings",
    "Failed",
    "Finished",
    "ForkExecutor",
    "ForkedJob",
    "Job",
    "Outcome",
    "PreforkExecutor",
    "PreforkedJob",
    "RunJob",
    "Running",
    "Succeeded",
    "SyncExecutor",
]
