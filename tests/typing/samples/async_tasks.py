from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from typedtiger import Task, TaskSpec, Tiger

tiger = Tiger()


@tiger.task
async def fetch(url: str, *, retries: int = 0) -> int:
    return 0


@tiger.task(queue="io")
async def store(key: str) -> None: ...


class Feeds:
    @staticmethod
    @tiger.task(queue="io", result_ttl=60)
    async def titles(feed: str) -> list[str]:
        return []


async def plain(x: int) -> str:
    return ""


def sync(x: int) -> str:
    return ""


reveal_type(fetch)  # N: Revealed type is "typedtiger._registry.AsyncTaskFunction[[url: str, *, retries: int =], int]"
reveal_type(store)  # N: Revealed type is "typedtiger._registry.AsyncTaskFunction[[key: str], None]"
reveal_type(Feeds.titles)  # N: Revealed type is "typedtiger._registry.AsyncTaskFunction[[feed: str], list[str]]"
reveal_type(fetch.delay("u", retries=1))  # N: Revealed type is "typedtiger.task.Task[int]"
reveal_type(fetch.delay_at(timedelta(minutes=1), "u"))  # N: Revealed type is "typedtiger.task.Task[int]"
reveal_type(store.delay("k"))  # N: Revealed type is "typedtiger.task.Task[None]"
reveal_type(fetch.delay("u").result())  # N: Revealed type is "int"
first: str = Feeds.titles.delay("f").result(timeout=1)[0]
wrong: str = fetch.delay("u").result()  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
coroutine: Coroutine[Any, Any, int] = fetch("u")  # calling it here gives its coroutine
reveal_type(fetch.spec("u"))  # N: Revealed type is "typedtiger.spec.TaskSpec[typing.Coroutine[Any, Any, int]]"
reveal_type(tiger.enqueue(fetch.spec("u")))  # N: Revealed type is "typedtiger.task.Task[int]"
reveal_type(tiger.enqueue(fetch.spec("u").evolve(queue="other")))  # N: Revealed type is "typedtiger.task.Task[int]"
reveal_type(tiger.enqueue(TaskSpec.of(plain, 1)))  # N: Revealed type is "typedtiger.task.Task[str]"
reveal_type(tiger.enqueue(TaskSpec.of(sync, 1)))  # N: Revealed type is "typedtiger.task.Task[str]"
reveal_type(tiger.enqueue(TaskSpec(func="m:f")))  # N: Revealed type is "typedtiger.task.Task[object]"
fetch.delay(1)  # E: Argument 1 to "delay" of "AsyncTaskFunction" has incompatible type "int"; expected "str"
fetch.delay("u", retries="x")  # E: Argument "retries" to "delay" of "AsyncTaskFunction" has incompatible type "str"; expected "int"
store.delay()  # E: Missing positional argument "key" in call to "delay" of "AsyncTaskFunction"
unawaited = fetch(1)  # E: Argument 1 to "__call__" of "AsyncTaskFunction" has incompatible type "int"; expected "str"
TaskSpec.of(plain, 1)
TaskSpec.of(plain, "x")  # E: Argument 2 to "of" of "TaskSpec" has incompatible type "str"; expected "int"


async def handler() -> None:
    reveal_type(await fetch("u"))  # N: Revealed type is "int"
    queued = await fetch.adelay("u", retries=2)
    reveal_type(queued)  # N: Revealed type is "typedtiger.task.Task[int]"
    reveal_type(await fetch.adelay_at(timedelta(seconds=5), "u"))  # N: Revealed type is "typedtiger.task.Task[int]"
    reveal_type(await tiger.aenqueue(fetch.spec("u")))  # N: Revealed type is "typedtiger.task.Task[int]"
    reveal_type(await tiger.aenqueue(TaskSpec.of(sync, 2)))  # N: Revealed type is "typedtiger.task.Task[str]"
    value: int = await queued.aresult(timeout=1)
    await fetch.adelay(2)  # E: Argument 1 to "adelay" of "AsyncTaskFunction" has incompatible type "int"; expected "str"
    many: list[Task] = await tiger.aenqueue_many([fetch.spec("a"), store.spec("k")])
    found: Task = await Task.afrom_id(tiger, "default", "queued", queued.id)
    del many, found, value
