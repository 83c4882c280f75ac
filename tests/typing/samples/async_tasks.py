from collections.abc import Coroutine
from typing import Any

from typedtiger import Task, TaskSpec, Tiger

tiger = Tiger()


@tiger.task
async def fetch(url: str, *, retries: int = 0) -> int:
    return 0


@tiger.task(queue="io")
async def store(key: str) -> None: ...


async def plain(x: int) -> str:
    return ""


task: Task = fetch.delay("u", retries=1)
coroutine: Coroutine[Any, Any, int] = fetch("u")
fetch.delay(1)  # E: Argument 1 to "delay" of "TaskFunction" has incompatible type "int"; expected "str"
fetch.delay("u", retries="x")  # E: Argument "retries" to "delay" of "TaskFunction" has incompatible type "str"; expected "int"
store.delay()  # E: Missing positional argument "key" in call to "delay" of "TaskFunction"
TaskSpec.of(plain, 1)
TaskSpec.of(plain, "x")  # E: Argument 2 to "of" of "TaskSpec" has incompatible type "str"; expected "int"


async def handler() -> None:
    queued: Task = await fetch.adelay("u", retries=2)
    await fetch.adelay(2)  # E: Argument 1 to "adelay" of "TaskFunction" has incompatible type "int"; expected "str"
    many: list[Task] = await tiger.aenqueue_many([fetch.spec("a"), store.spec("k")])
    found: Task = await Task.afrom_id(tiger, "default", "queued", queued.id)
    del many, found
