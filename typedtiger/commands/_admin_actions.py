"""The admin commands that change tasks: ``retry``, ``delete``, ``cancel`` and
``purge-errors``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import click

from typedtiger._queues import queue_matches
from typedtiger.backends.base import StoredTask, TaskState
from typedtiger.commands._admin_common import (
    ADJECTIVES,
    ConnectionOptions,
    Decoded,
    Duration,
    Env,
    clear_errors,
    echo_json,
    format_seconds,
    human_time,
    iso,
    json_option,
    printable,
    progress,
    queue_names,
)
from typedtiger.exceptions import TaskNotFound
from typedtiger.serialization import TaskPayload
from typedtiger.task import Task
from typedtiger.tiger import Tiger

__all__ = ["cancel_command", "delete_command", "purge_command", "retry_command"]

#: How many tasks a bulk action reads and changes at a time.
_BULK_PAGE: Final = 500


# --- retry / delete / cancel ---------------------------------------------------------------


@attrs.frozen
class _Action:
    name: str
    past: str
    states: tuple[TaskState, ...]
    apply: Callable[[Tiger, Task], None]
    #: Whether a task with a broken payload may be acted on.
    broken_ok: bool


def _retry(_tiger: Tiger, task: Task) -> None:
    task.retry()


def _delete(_tiger: Tiger, task: Task) -> None:
    task.delete()


def _cancel(tiger: Tiger, task: Task) -> None:
    """Remove a queued or scheduled task (``Task.cancel``, as TaskTiger's, only removes
    scheduled ones; the command removes queued ones too)."""
    assert task.state is not None
    if not tiger.backend.remove(task.queue, task.state, task.id, tiger.clock.now()):
        raise TaskNotFound(f"task {task.id} is not {task.state} in queue {task.queue!r}")


_RETRY: Final = _Action("retry", "retried", (TaskState.ERROR,), _retry, broken_ok=False)
_DELETE: Final = _Action("delete", "deleted", (TaskState.ERROR,), _delete, broken_ok=True)
_CANCEL: Final = _Action(
    "cancel", "cancelled", (TaskState.QUEUED, TaskState.SCHEDULED), _cancel, broken_ok=True
)
_ACTION_HELP: Final = {
    "retry": "Queue errored tasks again: TASK_IDS, or every errored task of --queue.\n\n"
    "Acting on a whole queue asks first (--yes skips the question). A task whose payload "
    "is broken is not retried (delete it).",
    "delete": "Delete errored tasks: TASK_IDS, or every errored task of --queue.\n\n"
    "Acting on a whole queue asks first (--yes skips the question). Tasks with a broken "
    "payload are deleted too.",
    "cancel": "Cancel queued or scheduled tasks: TASK_IDS, or every task of --queue in "
    "--state.\n\nActing on a whole queue asks first (--yes skips the question).",
}
_HINTS: Final = {
    "retry": "retry works on errored tasks",
    "delete": "delete removes errored tasks; use cancel for queued or scheduled ones",
    "cancel": "cancel removes queued or scheduled tasks; use delete for errored ones",
}


@attrs.define
class _Report:
    action: _Action
    done: list[dict[str, str]] = attrs.field(factory=list)
    failed: list[dict[str, str | None]] = attrs.field(factory=list)

    def ok(self, stored: StoredTask) -> None:
        self.done.append({"id": stored.id, "queue": stored.queue, "state": stored.state.value})

    def error(self, task_id: str, queue: str | None, message: str) -> None:
        self.failed.append({"id": task_id, "queue": queue, "error": message})


def _act_on(tiger: Tiger, action: _Action, stored: StoredTask, report: _Report) -> bool:
    """Apply ``action`` to one stored task; False if it is left where it is."""
    decoded = Decoded.of(stored)
    if decoded.broken is not None and not action.broken_ok:
        report.error(
            stored.id,
            stored.queue,
            f"task {stored.id} has a broken payload ({decoded.broken}); it cannot be "
            f"{action.past}, delete it instead",
        )
        return False
    # A broken payload may name another id: the handle must carry the id the task is filed
    # under, whatever the payload says.
    handle = Task(
        tiger,
        payload=decoded.payload or TaskPayload(id=stored.id, func="<broken>"),
        queue=stored.queue,
        state=stored.state,
        score=stored.score,
    )
    try:
        action.apply(tiger, handle)
    except TaskNotFound as exc:
        report.error(stored.id, stored.queue, f"task {stored.id} moved meanwhile: {exc}")
        return True
    report.ok(stored)
    return True


def _act_by_ids(
    tiger: Tiger,
    action: _Action,
    task_ids: Sequence[str],
    queue: str | None,
    states: tuple[TaskState, ...],
    report: _Report,
) -> None:
    for task_id in task_ids:
        places = [(q, s) for q, s in tiger.backend.find_task(task_id) if queue in (None, q)]
        if not places:
            where = "any queue" if queue is None else f"queue {queue!r}"
            report.error(task_id, queue, f"no task {task_id!r} in {where}")
            continue
        targets = [(q, s) for q, s in places if s in states]
        if not targets:
            found = ", ".join(f"{ADJECTIVES[s]} in queue {q!r}" for q, s in places)
            report.error(task_id, places[0][0], f"task {task_id} is {found}: {_HINTS[action.name]}")
            continue
        for target_queue, state in targets:
            stored = tiger.backend.get_task(target_queue, state, task_id, 0)
            if stored is None:
                report.error(task_id, target_queue, f"task {task_id} moved meanwhile")
                continue
            _act_on(tiger, action, stored, report)


def _act_in_bulk(
    tiger: Tiger,
    action: _Action,
    queue: str,
    states: tuple[TaskState, ...],
    yes: bool,
    as_json: bool,
    report: _Report,
) -> None:
    sizes = tiger.backend.queue_sizes([queue])[queue]
    counts = {state: sizes[state] for state in states}
    total = sum(counts.values())
    if total == 0:
        if not as_json:
            kinds = " or ".join(ADJECTIVES[state] for state in states)
            click.echo(f"Nothing to {action.name}: queue {queue!r} has no {kinds} tasks.")
        return
    described = " and ".join(f"{n} {ADJECTIVES[state]}" for state, n in counts.items() if n)
    if not yes:
        click.confirm(
            f"{action.name.capitalize()} all {described} tasks of queue {queue!r}?",
            abort=True,
            err=True,
        )
    with progress(total, f"{action.name}: {queue}", as_json) as advance:
        for state, count in counts.items():
            left_alone = 0
            handled = 0
            while handled < count:
                page_size = min(_BULK_PAGE, count - handled)
                _, page = tiger.backend.list_tasks(queue, state, left_alone, page_size, 0)
                if not page:
                    break
                for stored in page:
                    if not _act_on(tiger, action, stored, report):
                        left_alone += 1
                    handled += 1
                    advance(1)


def _action_command(env: Env, connection: ConnectionOptions, action: _Action) -> click.Command:
    state_choices = [state.value for state in action.states]

    @click.command(action.name, context_settings={"help_option_names": ["--help"]})
    @click.argument("task_ids", nargs=-1)
    @click.option("--queue", default=None, help="The queue (every matching task without ids).")
    @click.option(
        "--state",
        type=click.Choice(state_choices, case_sensitive=False),
        default=state_choices[0] if len(state_choices) == 1 else None,
        help="The state of the tasks to act on"
        + (" (required with --queue and no ids)." if len(state_choices) > 1 else "."),
    )
    @click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
    @connection
    @json_option
    def command(
        task_ids: tuple[str, ...],
        queue: str | None,
        state: str | None,
        yes: bool,
        as_json: bool,
        **options: Any,
    ) -> None:
        tiger = env.tiger(options)
        states = action.states if state is None else (TaskState(state),)
        report = _Report(action)
        with clear_errors():
            if task_ids:
                _act_by_ids(tiger, action, task_ids, queue, states, report)
            elif queue is None:
                raise click.UsageError(
                    f"give the ids of the tasks to {action.name}, or --queue (and --state) "
                    f"to {action.name} every matching task"
                )
            elif state is None:
                raise click.UsageError(
                    f"{action.name} --queue needs --state ({' or '.join(state_choices)})"
                )
            else:
                _act_in_bulk(tiger, action, queue, states, yes, as_json, report)
        _finish(report, as_json)

    command.help = _ACTION_HELP[action.name]
    return command


def _finish(report: _Report, as_json: bool) -> None:
    action = report.action
    if as_json:
        echo_json({"action": action.name, action.past: report.done, "failed": report.failed})
    else:
        for failure in report.failed:
            click.echo(printable(f"Error: {failure['error']}"), err=True)
        if report.done:
            noun = "task" if len(report.done) == 1 else "tasks"
            click.echo(f"{action.past.capitalize()} {len(report.done)} {noun}.")
            if len(report.done) <= 10:
                for item in report.done:
                    click.echo(printable(f"  {item['id']} ({item['queue']}, was {item['state']})"))
    if report.failed:
        ctx = click.get_current_context()
        if as_json:
            ctx.exit(1)
        raise click.ClickException(f"{len(report.failed)} task(s) could not be {action.past}")


def retry_command(env: Env, connection: ConnectionOptions) -> click.Command:
    return _action_command(env, connection, _RETRY)


def delete_command(env: Env, connection: ConnectionOptions) -> click.Command:
    return _action_command(env, connection, _DELETE)


def cancel_command(env: Env, connection: ConnectionOptions) -> click.Command:
    return _action_command(env, connection, _CANCEL)


# --- purge-errors --------------------------------------------------------------------------


def purge_command(env: Env, connection: ConnectionOptions) -> click.Command:
    @click.command("purge-errors", context_settings={"help_option_names": ["--help"]})
    @click.option(
        "--older-than",
        type=Duration(),
        required=True,
        help="Purge tasks that failed longer ago than this (12w, 30d, 1h30m; 0 for all).",
    )
    @click.option(
        "-q", "--queue", "queues", multiple=True, help="Only these queues (and subqueues)."
    )
    @click.option(
        "-e", "--exclude-queue", "exclude_queues", multiple=True, help="Skip these queues."
    )
    @click.option("--limit", type=click.IntRange(min=1), default=None, help="Purge at most N.")
    @click.option(
        "--chunk-size",
        type=click.IntRange(min=1),
        default=1000,
        show_default=True,
        help="Tasks removed per Redis call (keeps each call short).",
    )
    @click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
    @connection
    @json_option
    def purge_errors(
        older_than: float,
        queues: tuple[str, ...],
        exclude_queues: tuple[str, ...],
        limit: int | None,
        chunk_size: int,
        yes: bool,
        as_json: bool,
        **options: Any,
    ) -> None:
        """Delete errored tasks that failed longer ago than --older-than.

        Works queue by queue, oldest first, in chunks, with a progress bar.
        """
        tiger = env.tiger(options)
        only, exclude = queue_names(queues), queue_names(exclude_queues)
        with clear_errors():
            before = tiger.clock.now() - older_than
            names = sorted(
                queue
                for queue in tiger.backend.queues_with_tasks(TaskState.ERROR)
                if queue_matches(queue, only, exclude)
            )
            sizes = tiger.backend.queue_sizes(names) if names else {}
            errored = {queue: sizes[queue][TaskState.ERROR] for queue in names}
            total = sum(errored.values())
            if total and not yes:
                click.confirm(
                    f"Purge errored tasks that failed before {human_time(before)} "
                    f"({format_seconds(older_than)} ago) from {len(names)} queue(s) holding "
                    f"{total} errored tasks" + (f" (at most {limit})" if limit else "") + "?",
                    abort=True,
                    err=True,
                )
            purged = _purge(tiger, errored, before, limit, chunk_size, as_json)
        count = sum(purged.values())
        if as_json:
            echo_json({"purged": count, "before": iso(before), "queues": purged})
            return
        if not total:
            click.echo("No errored tasks to purge.")
            return
        detail = ", ".join(f"{queue}: {n}" for queue, n in purged.items() if n)
        click.echo(
            printable(
                f"Purged {count} errored task{'' if count == 1 else 's'}"
                + (f" ({detail})." if detail else ".")
            )
        )

    return purge_errors


def _purge(
    tiger: Tiger,
    errored: dict[str, int],
    before: float,
    limit: int | None,
    chunk_size: int,
    quiet: bool,
) -> dict[str, int]:
    purged = dict.fromkeys(errored, 0)
    total = sum(errored.values())
    with progress(total, "purging errored tasks", quiet or not total) as advance:
        done = 0
        for queue, size in errored.items():
            while limit is None or done < limit:
                chunk = chunk_size if limit is None else min(chunk_size, limit - done)
                removed = tiger.backend.purge_errors(queue, before, chunk)
                purged[queue] += removed
                done += removed
                advance(removed)
                if removed < chunk:
                    break
            # The tasks that failed too recently are done with too.
            advance(max(0, size - purged[queue]))
    return purged
