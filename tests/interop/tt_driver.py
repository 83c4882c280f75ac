"""Drive the real TaskTiger from the interop tests. Runs with the TaskTiger virtualenv's python:

    PYTHONPATH=<repo> <venv>/bin/python tests/interop/tt_driver.py [REQUEST] < request.json
    PYTHONPATH=<repo> <venv>/bin/python tests/interop/tt_driver.py --serve

A request (the argument, else stdin; with --serve, one per stdin line) is one JSON object::

    {"url": "redis://127.0.0.1:6379/12",
     "config": {TaskTiger config keys},
     "decorate": [{"func": "tests.interop_tasks:record", "queue": "q", ...}, ...],
     "commands": [{"op": "delay", ...}, {"op": "worker", ...}, ...],
     "env": {variables to set first}}

``decorate`` applies ``TaskTiger.task(...)`` to the named functions first (the options TaskTiger
keeps on the function: queue, hard_timeout, batch, schedule...). The commands run in order; the
answer, printed on stdout, is the JSON list of their results (with --serve: one line
``{"results": [...]}`` or ``{"error": "<traceback>"}`` per request; what a request decorated is
undone after it). Everything else this process or
its tasks print (TaskTiger's logs included) goes to stderr.

Option encodings: retry_method is ``["fixed"|"linear"|"exponential", [args]]``,
``["callable", "mod:func"]`` or ``["custom", "mod:func", [args]]``; retry_on and runner_class
are "module:qualname" names; when is ``{"in": seconds}`` or ``{"at": epoch seconds}``; schedule
is ``{"periodic": {"seconds": n}}``.

typedtiger is made unimportable here, as in a deployment that runs only TaskTiger.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.abc
import importlib.machinery
import json
import logging
import os
import sys
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import redis
import structlog
import tasktiger
from tasktiger import Task, TaskTiger, Worker
from tasktiger.executor import ForkExecutor, SyncExecutor

JSONObject = dict[str, Any]

#: Config of the TaskTiger side unless a request overrides it: the scheduled-task pass runs on
#: every loop, idle waits are short, running tasks heartbeat twice a second, and the lock of the
#: expired-task pass (``P:lockv2:queue_expired_tasks``, shared with typedtiger's pass) is
#: held for a second rather than 30.
FAST_CONFIG: Mapping[str, object] = {
    "QUEUE_SCHEDULED_TASKS_TIME": 0,
    "SELECT_TIMEOUT": 0.2,
    "ACTIVE_TASK_UPDATE_TIMER": 0.5,
    "REQUEUE_EXPIRED_TASKS_INTERVAL": 1,
    "STATS_INTERVAL": 0,
}


class _RefuseTypedtiger(importlib.abc.MetaPathFinder):
    """Makes ``import typedtiger`` fail, as in a TaskTiger-only deployment."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "typedtiger" or fullname.startswith("typedtiger."):
            raise ImportError(f"{fullname} is not installed next to TaskTiger")
        return None


def import_name(name: str) -> Any:
    """The object behind "module:qualname"."""
    module_name, _, qualname = name.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def retry_method(spec: Sequence[Any]) -> Any:
    """A TaskTiger retry method from its JSON description."""
    kind = spec[0]
    if kind in ("fixed", "linear", "exponential"):
        return getattr(tasktiger, kind)(*spec[1])
    if kind == "callable":
        return import_name(spec[1])
    if kind == "custom":
        return (import_name(spec[1]), tuple(spec[2]))
    raise ValueError(f"unknown retry method {spec!r}")


def task_options(request: Mapping[str, Any]) -> JSONObject:
    """TaskTiger keyword options from a JSON request (names translated to objects)."""
    options: JSONObject = {}
    for key in (
        "queue",
        "hard_timeout",
        "unique",
        "unique_key",
        "lock",
        "lock_key",
        "retry",
        "max_queue_size",
        "max_stored_executions",
    ):
        if key in request:
            options[key] = request[key]
    if "retry_method" in request:
        options["retry_method"] = retry_method(request["retry_method"])
    if "retry_on" in request:
        options["retry_on"] = [import_name(name) for name in request["retry_on"]]
    if "runner_class" in request:
        options["runner_class"] = import_name(request["runner_class"])
    return options


def when(request: Mapping[str, Any]) -> datetime.timedelta | datetime.datetime | None:
    """TaskTiger's ``when`` (naive UTC datetimes, as TaskTiger expects)."""
    spec = request.get("when")
    if spec is None:
        return None
    if "in" in spec:
        return datetime.timedelta(seconds=spec["in"])
    at = datetime.datetime.fromtimestamp(spec["at"], datetime.UTC)
    return at.replace(tzinfo=None)


def epoch(value: datetime.datetime | None) -> float | None:
    """A naive UTC datetime (TaskTiger's ``ts``) as epoch seconds."""
    return None if value is None else value.replace(tzinfo=datetime.UTC).timestamp()


def describe(task: Any) -> JSONObject:
    """A TaskTiger Task as JSON."""
    return {
        "id": task.id,
        "queue": task.queue,
        "state": task.state,
        "func": task.serialized_func,
        "args": task.args,
        "kwargs": task.kwargs,
        "data": task.data,
        "executions": task.executions,
        "ts": epoch(task.ts),
    }


def decorate(tiger: Any, request: Mapping[str, Any]) -> None:
    """Apply ``tiger.task(...)`` to a function, as a TaskTiger application would."""
    func = import_name(request["func"])
    options = task_options(request)
    if request.get("batch"):
        options["batch"] = True
    schedule = request.get("schedule")
    if schedule is not None:
        options["schedule"] = tasktiger.periodic(**schedule["periodic"])
    tiger.task(**options)(func)


def delay(tiger: Any, request: Mapping[str, Any]) -> JSONObject:
    func = import_name(request["func"])
    args = request.get("args", [])
    kwargs = request.get("kwargs", {})
    if request.get("decorated"):
        # The decorated function's own .delay(): the decorator's options only.
        task = func.delay(*args, **kwargs)
    else:
        task = tiger.delay(
            func, args=args, kwargs=kwargs, when=when(request), **task_options(request)
        )
    return {"id": task.id, "state": task.state, "queue": task.queue, "data": task.data}


def unique_id(tiger: Any, request: Mapping[str, Any]) -> JSONObject:
    """The id TaskTiger gives a task (nothing is written)."""
    func = import_name(request["func"])
    options = task_options(request)
    task = Task(tiger, func, args=request.get("args"), kwargs=request.get("kwargs"), **options)
    return {"id": task.id, "data": task.data}


def tasks(tiger: Any, request: Mapping[str, Any]) -> JSONObject:
    total, found = Task.tasks_from_queue(
        tiger,
        request["queue"],
        request["state"],
        load_executions=request.get("load_executions", 0),
    )
    return {"total": total, "tasks": [describe(task) for task in found]}


def from_id(tiger: Any, request: Mapping[str, Any]) -> JSONObject:
    task = Task.from_id(
        tiger,
        request["queue"],
        request["state"],
        request["id"],
        load_executions=request.get("load_executions", 0),
    )
    return describe(task)


def task_action(tiger: Any, request: Mapping[str, Any]) -> JSONObject:
    """retry / cancel / delete / update_scheduled_time on a stored task."""
    task = Task.from_id(tiger, request["queue"], request["state"], request["id"])
    action = request["op"]
    if action == "update_scheduled_time":
        task.update_scheduled_time(when(request))
    else:
        getattr(task, action)()
    return {}


def run_worker(tiger: Any, request: Mapping[str, Any]) -> JSONObject:
    executor = SyncExecutor if request.get("executor") == "sync" else ForkExecutor
    worker = Worker(
        tiger,
        queues=request.get("queues"),
        exclude_queues=request.get("exclude_queues"),
        max_workers_per_queue=request.get("max_workers_per_queue"),
        store_tracebacks=request.get("store_tracebacks"),
        executor_class=executor,
    )
    exit_after = request.get("exit_after")
    worker.run(
        once=bool(request.get("once", exit_after is None)),
        exit_after=None if exit_after is None else datetime.timedelta(seconds=exit_after),
    )
    return {}


def sizes(tiger: Any, request: Mapping[str, Any]) -> JSONObject:
    return dict(tiger.get_queue_sizes(request["queue"]))


def system_lock(tiger: Any, request: Mapping[str, Any]) -> JSONObject:
    """``set_queue_system_lock`` (given ``timeout``), then ``get_queue_system_lock``."""
    if "timeout" in request:
        tiger.set_queue_system_lock(request["queue"], request["timeout"])
    return {"until": tiger.get_queue_system_lock(request["queue"])}


COMMANDS: Mapping[str, Callable[[Any, Mapping[str, Any]], JSONObject]] = {
    "delay": delay,
    "unique_id": unique_id,
    "tasks": tasks,
    "from_id": from_id,
    "retry": task_action,
    "cancel": task_action,
    "delete": task_action,
    "update_scheduled_time": task_action,
    "worker": run_worker,
    "sizes": sizes,
    "system_lock": system_lock,
}


def undecorate(func: Any) -> None:
    """Drop what ``TaskTiger.task`` set on a function (for the next request of a server)."""
    for name in [name for name in vars(func) if name.startswith("_task_") or name == "delay"]:
        delattr(func, name)


def handle(request: Mapping[str, Any]) -> list[JSONObject]:
    """Run one request on a fresh TaskTiger; the results of its commands."""
    os.environ.update(request.get("env", {}))
    connection = redis.Redis.from_url(request["url"], decode_responses=True)
    tiger = TaskTiger(connection=connection, config={**FAST_CONFIG, **request.get("config", {})})
    decorated = []
    try:
        for decoration in request.get("decorate", []):
            decorate(tiger, decoration)
            decorated.append(import_name(decoration["func"]))
        return [COMMANDS[command["op"]](tiger, command) for command in request.get("commands", [])]
    finally:
        for func in decorated:
            undecorate(func)
        connection.close()


def serve(answer: TextIO) -> None:
    """One request per stdin line, one ``{"results": [...]}`` or ``{"error": "..."}`` line back."""
    for line in sys.stdin:
        try:
            reply: JSONObject = {"results": handle(json.loads(line))}
        except Exception:
            reply = {"error": traceback.format_exc()}
        answer.write(json.dumps(reply) + "\n")
        answer.flush()


def main() -> None:
    sys.meta_path.insert(0, _RefuseTypedtiger())
    # The answer goes to the real stdout; everything else printed here goes to stderr.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # TaskTiger's loggers must be structlog's stdlib BoundLoggers; they log to stderr.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )

    if sys.argv[1:] == ["--serve"]:
        serve(answer)
        return
    request: JSONObject = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
    answer.write(json.dumps(handle(request)))
    answer.close()


if __name__ == "__main__":
    main()
