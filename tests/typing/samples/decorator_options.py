"""Task options given to the decorator are typed: a wrong type or an unknown option is an
error. Once the decorator call fails, mypy also reports the decorated function as untyped;
that second, consequential error is silenced with ``type: ignore[untyped-decorator]``."""

# Expected-error comments must stay on the line they describe: no reformatting.
# fmt: off

from datetime import datetime

from typedtiger import BatchCall, Tiger, exponential, fixed, periodic

tiger = Tiger()


def every_minute(after: datetime) -> datetime | None:
    return after


@tiger.task(
    queue="email",
    hard_timeout=30.0,
    unique=True,
    unique_key=["to"],
    lock=True,
    lock_key=["to"],
    retry=exponential(60, 2, 5),
    retry_on=[ConnectionError, TimeoutError],
    max_queue_size=1000,
    max_stored_executions=10,
)
def send(to: str) -> None: ...


@tiger.task(retry=True, schedule=every_minute)
def with_custom_schedule() -> None: ...


# As plain calls of the decorator factory.
tiger.task(queue=1)  # E: No overload variant of "task" of "Tiger" matches argument type "int"
tiger.task(retry="yes")  # E: No overload variant of "task" of "Tiger" matches argument type "str"
tiger.task(hard_timeout="30")  # E: No overload variant of "task" of "Tiger" matches argument type "str"
tiger.task(retry_on=ValueError)  # E: No overload variant of "task" of "Tiger" matches argument type "type[ValueError]"
tiger.task(schedule="daily")  # E: No overload variant of "task" of "Tiger" matches argument type "str"
tiger.task(qeue="email")  # E: Unexpected keyword argument "qeue" for overloaded function "task" of "Tiger"; did you mean "queue"?


# As decorators.
@tiger.task(queue=1)  # type: ignore[untyped-decorator]  # E: No overload variant of "task" of "Tiger" matches argument type "int"
def bad_queue() -> None: ...


@tiger.task(retry="yes")  # type: ignore[untyped-decorator]  # E: No overload variant of "task" of "Tiger" matches argument type "str"
def bad_retry() -> None: ...


@tiger.task(retry=fixed(60, 3), max_queue_size=10.5)  # type: ignore[untyped-decorator]  # E: No overload variant of "task" of "Tiger" matches argument types "Fixed", "float"
def bad_size() -> None: ...


@tiger.task(schedule=periodic(minutes=5), hard_timeout=None, unique=1)  # type: ignore[untyped-decorator]  # E: No overload variant of "task" of "Tiger" matches argument types "Periodic", "None", "int"
def bad_unique() -> None: ...


@tiger.task(queu="email")  # type: ignore[untyped-decorator]  # E: Unexpected keyword argument "queu" for overloaded function "task" of "Tiger"; did you mean "queue"?
def typo() -> None: ...


# batch=True needs a function taking the list of calls.
@tiger.task(batch=True)  # E: Argument 1 has incompatible type "Callable[[int], None]"; expected "Callable[[list[BatchCall]], None]"
def not_a_batch(x: int) -> None: ...


@tiger.task(batch=True)
def a_batch(calls: list[BatchCall]) -> None: ...
