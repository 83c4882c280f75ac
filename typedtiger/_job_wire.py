"""JobWire: a Job as bytes for a spare child forked before the job was claimed, and back.

A spare child has the worker's modules, registrations and configuration (it is a fork of the
worker), but not the job: the worker sends the job's payloads and settings through a pipe and
the child rebuilds the Job exactly as the worker built it (the same function, runner, context
managers, clock and traceback setting).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs

from typedtiger.backends.base import TaskState
from typedtiger.executor import Job
from typedtiger.serialization import decode_stored_payload, encode_payload
from typedtiger.task import Task

if TYPE_CHECKING:
    from typedtiger.clock import Clock
    from typedtiger.tiger import Tiger

__all__ = ["JobWire"]


@attrs.frozen
class JobWire:
    """Encodes a worker's Job (in the worker) and rebuilds it (in the child)."""

    tiger: Tiger
    store_traceback: bool

    @property
    def clock(self) -> Clock:
        """The Tiger's clock, which the worker's jobs use."""
        return self.tiger.clock

    def encode(self, job: Job) -> bytes:
        """The job as JSON: queue, function name, batch flag, hard timeout, whether the
        function is to be imported where the job runs, and payloads."""
        return json.dumps(
            {
                "queue": job.queue,
                "func": job.serialized_func,
                "batch": job.batch,
                "hard_timeout": job.hard_timeout,
                "in_child": job.func is None,
                "payloads": [[task.id, encode_payload(task.payload)] for task in job.tasks],
            }
        ).encode("utf-8")

    def decode(self, data: bytes) -> Job:
        """The Job ``encode`` described (raises if its function or runner cannot be had)."""
        wire = json.loads(data)
        tiger, queue = self.tiger, wire["queue"]
        tasks = tuple(
            Task(
                tiger,
                payload=decode_stored_payload(task_id, text),
                queue=queue,
                state=TaskState.ACTIVE,
            )
            for task_id, text in wire["payloads"]
        )
        # (a function the worker left to the child is imported when the job runs, under its
        # hard timeout, never while rebuilding a rehearsal)
        func = None if wire["in_child"] else tiger.resolve_function(wire["func"])[0]
        return Job(
            queue=queue,
            tasks=tasks,
            func=func,
            resolve=tiger.resolve_function if func is None else None,
            serialized_func=wire["func"],
            batch=wire["batch"],
            hard_timeout=wire["hard_timeout"],
            runner=tiger.runner_for(tasks[0].payload.runner_class),
            context_managers=tiger.config.child_context_managers,
            store_traceback=self.store_traceback,
            clock=tiger.clock,
        )
