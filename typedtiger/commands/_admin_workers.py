"""The ``workers`` admin command: the live workers of the worker registry."""

from __future__ import annotations

from typing import Any

import click

from typedtiger._worker_info import WorkerInfo
from typedtiger.commands._admin_common import (
    ConnectionOptions,
    Env,
    clear_errors,
    echo_json,
    human_time,
    json_option,
    printable,
    table,
)

__all__ = ["workers_command"]


def _as_json(info: WorkerInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "queues": list(info.queues),
        "exclude_queues": list(info.exclude_queues),
        "executor": info.executor,
        "concurrency": info.concurrency,
        "started": info.started.isoformat(),
        "last_beat": info.last_beat.isoformat(),
        "tasks": [
            {
                "id": task.id,
                "queue": task.queue,
                "func": task.func,
                "started": task.started.isoformat(),
            }
            for task in info.tasks
        ],
    }


def _queues_text(info: WorkerInfo) -> str:
    served = ",".join(info.queues) or "*"
    if info.exclude_queues:
        served += " -" + ",-".join(info.exclude_queues)
    return served


def _tasks_text(info: WorkerInfo) -> str:
    if not info.tasks:
        return "idle"
    funcs = sorted({task.func for task in info.tasks})
    return f"{len(info.tasks)}: " + ", ".join(funcs)


def workers_command(env: Env, connection: ConnectionOptions) -> click.Command:
    @click.command("workers", context_settings={"help_option_names": ["--help"]})
    @connection
    @json_option
    def workers(as_json: bool, **options: Any) -> None:
        """The live workers: host, pid, queues, executor, concurrency, when they started,
        their last beat and the tasks they were running then.

        A worker writes its record at most once per heartbeat period; a worker not heard from
        for active_task_update_timeout is gone from the list (one that stops leaves at once).
        """
        tiger = env.tiger(options)
        with clear_errors():
            found = tiger.get_workers()
        if as_json:
            echo_json({"workers": [_as_json(info) for info in found]})
            return
        if not found:
            click.echo("No live worker.")
            return
        rows = [
            [
                info.id[:8],
                info.host,
                str(info.pid),
                _queues_text(info),
                info.executor,
                str(info.concurrency),
                human_time(info.started.timestamp()),
                human_time(info.last_beat.timestamp()),
                _tasks_text(info),
            ]
            for info in found
        ]
        headers = ["ID", "HOST", "PID", "QUEUES", "EXECUTOR", "C", "STARTED", "LAST BEAT", "TASKS"]
        click.echo(printable(table(headers, rows, right={2, 5})))

    return workers
