"""What a running task reads about itself, and task handles, are typed."""

# Expected-error comments must stay on the line they describe: no reformatting.
# fmt: off

from datetime import datetime

from typedtiger import Task, TaskState, Tiger

tiger = Tiger()


@tiger.task
def work(n: int) -> None:
    task = tiger.current_task
    reveal_type(task)  # N: Revealed type is "typedtiger.task.Task[object]"
    reveal_type(tiger.current_tasks)  # N: Revealed type is "list[typedtiger.task.Task[object]]"
    reveal_type(tiger.current_task_is_batch)  # N: Revealed type is "bool"
    reveal_type(tiger.current_serialized_func)  # N: Revealed type is "str"
    reveal_type(task.id)  # N: Revealed type is "str"
    reveal_type(task.state)  # N: Revealed type is "typedtiger.backends.base.TaskState | None"
    reveal_type(task.args)  # N: Revealed type is "tuple[None | bool | int | float | str | list[...] | dict[str, ...], ...]"
    reveal_type(task.scheduled_at)  # N: Revealed type is "datetime.datetime | None"
    reveal_type(task.n_executions())  # N: Revealed type is "int"
    tiger.current_task = task  # E: Property "current_task" defined in "RunningTaskAccess" is read-only


def started(task: Task) -> datetime:
    return task.scheduled_at  # E: Incompatible return value type (got "datetime | None", expected "datetime")


def handles(queue: str) -> None:
    total, tasks = Task.tasks_from_queue(tiger, queue, TaskState.ERROR, limit=10)
    reveal_type(total)  # N: Revealed type is "int"
    reveal_type(tasks)  # N: Revealed type is "list[typedtiger.task.Task[object]]"
    Task.tasks_from_queue(tiger, queue, TaskState.ERROR, limit="10")  # E: Argument "limit" to "tasks_from_queue" of "Task" has incompatible type "str"; expected "int"
