from datetime import timedelta

from typedtiger import Task, TaskSpec, Tiger

tiger = Tiger()


@tiger.task(result_ttl=timedelta(hours=1))
def add(a: int, b: int) -> int:
    return a + b


@tiger.task(result_ttl=60)
def names() -> list[str]:
    return []


@tiger.task(result_ttl=60)
async def fetch_size(url: str) -> int:
    return 0


task = add.delay(1, 2)
reveal_type(task)  # N: Revealed type is "typedtiger.task.Task[int]"
total: int = task.result(timeout=5) + 1
text: str = task.result()  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
task.result().upper()  # E: "int" has no attribute "upper"
first: str = names.delay().result(timeout=timedelta(seconds=1))[0]
later: Task[int] = add.delay_at(timedelta(minutes=1), 1, 2)
untyped: Task = tiger.enqueue(add.spec(1, 2))
reveal_type(untyped.result())  # N: Revealed type is "object"
reveal_type(tiger.enqueue(add.spec(1, 2)))  # N: Revealed type is "typedtiger.task.Task[int]"
reveal_type(tiger.enqueue(TaskSpec.of(add, 1, 2)).result())  # N: Revealed type is "int"
reveal_type(fetch_size.delay("u").result())  # N: Revealed type is "int"
reveal_type(tiger.enqueue(TaskSpec.of(fetch_size, "u")).result())  # N: Revealed type is "int"
size: int = fetch_size.delay("u").result(timeout=5) + 1
fetch_size.delay("u").result().upper()  # E: "int" has no attribute "upper"
widened: Task[object] = task  # a Task[int] is a Task[object]
tiger.task(result_ttl=1, batch=True)  # E: No overload variant of "task" of "Tiger" matches argument types "int", "bool"
found = tiger.status("some-id")
reveal_type(found.status)  # N: Revealed type is "typedtiger._status.Status"
reveal_type(Task.from_id(tiger, "some-id"))  # N: Revealed type is "typedtiger.task.Task[object]"
Task.from_id(tiger, "some-id", "queued")  # E: No overload variant of "from_id" of "Task" matches argument types "Tiger", "str", "str"


async def awaited() -> int:
    return await task.aresult(timeout=1)


async def awaited_wrong() -> str:
    return await task.aresult()  # E: Incompatible return value type (got "int", expected "str")


async def awaited_async_task() -> int:
    queued = await fetch_size.adelay("u")
    reveal_type(queued)  # N: Revealed type is "typedtiger.task.Task[int]"
    return await queued.aresult(timeout=1)
