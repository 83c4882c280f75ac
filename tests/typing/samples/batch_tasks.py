"""A batch task receives a typed list of call records; ``.delay`` queues one call whose
arguments must be JSON values."""

# Expected-error comments must stay on the line they describe: no reformatting.
# fmt: off

from typedtiger import BatchCall, Tiger

tiger = Tiger()


@tiger.task(batch=True, queue="emails")
def send_batch(calls: list[BatchCall]) -> int:
    for call in calls:
        reveal_type(call["args"])  # N: Revealed type is "list[None | bool | int | float | str | list[...] | dict[str, ...]]"
        reveal_type(call["kwargs"])  # N: Revealed type is "dict[str, None | bool | int | float | str | list[...] | dict[str, ...]]"
    return len(calls)


reveal_type(send_batch)  # N: Revealed type is "typedtiger._registry.BatchTaskFunction[int]"
reveal_type(send_batch([]))  # N: Revealed type is "int"
reveal_type(send_batch.delay("a@b.c", subject="hi"))  # N: Revealed type is "typedtiger.task.Task[object]"
reveal_type(send_batch.spec(1, [2.5, None], {"k": [True]}))  # N: Revealed type is "typedtiger.spec.TaskSpec[object]"

send_batch.delay(object())  # E: Argument 1 to "delay" of "BatchTaskFunction" has incompatible type "object"; expected "JSONValue"
send_batch.delay({1: "one"})  # E: Dict entry 0 has incompatible type "int": "str"
send_batch.delay(when={1, 2})  # E: Argument "when" to "delay" of "BatchTaskFunction" has incompatible type "set[int]"; expected "JSONValue"
send_batch(["a@b.c"])  # E: List item 0 has incompatible type "str"; expected "BatchCall"
send_batch([{"args": [], "kwargs": {}, "extra": 1}])  # E: Extra key "extra" for TypedDict "BatchCall"
