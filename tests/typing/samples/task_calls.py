"""Calls of a decorated task are checked against the function: direct, .delay, .delay_at,
.spec and TaskSpec.of, with and without decorator arguments."""

# Expected-error comments must stay on the line they describe: no reformatting.
# fmt: off

from datetime import timedelta

from typedtiger import Task, TaskSpec, Tiger

tiger = Tiger()


@tiger.task
def resize(path: str, width: int, *, keep_ratio: bool = True) -> str:
    return path


@tiger.task(queue="images", hard_timeout=60)
def thumbnail(path: str, sizes: list[int]) -> None: ...


def plain(a: int, b: str = "") -> None: ...


# Well-typed calls.
reveal_type(resize("a.png", 10))  # N: Revealed type is "str"
reveal_type(resize.delay("a.png", 10, keep_ratio=False))  # N: Revealed type is "typedtiger.task.Task[str]"
reveal_type(resize.spec("a.png", 10))  # N: Revealed type is "typedtiger.spec.TaskSpec[str]"
reveal_type(thumbnail.delay)  # N: Revealed type is "def (path: str, sizes: list[int]) -> typedtiger.task.Task[None]"
reveal_type(resize.delay_at)  # N: Revealed type is "def (datetime.datetime | datetime.timedelta, path: str, width: int, *, keep_ratio: bool =) -> typedtiger.task.Task[str]"
task: Task = thumbnail.delay("a.png", [64, 128])
TaskSpec.of(plain, 1, b="x")
TaskSpec.of(resize, "a.png", width=3)

# Wrong positional type.
resize.delay("a.png", "wide")  # E: Argument 2 to "delay" of "TaskFunction" has incompatible type "str"; expected "int"
thumbnail.delay("a.png", ["64"])  # E: List item 0 has incompatible type "str"; expected "int"
resize("a.png", 1.5)  # E: Argument 2 to "__call__" of "TaskFunction" has incompatible type "float"; expected "int"
resize.delay_at(timedelta(minutes=5), 1, 2)  # E: Argument 2 to "delay_at" of "TaskFunction" has incompatible type "int"; expected "str"
resize.delay_at("soon", "a.png", 2)  # E: Argument 1 to "delay_at" of "TaskFunction" has incompatible type "str"; expected "datetime | timedelta"

# Missing argument.
resize.delay("a.png")  # E: Missing positional argument "width" in call to "delay" of "TaskFunction"
thumbnail.spec()  # E: Missing positional arguments "path", "sizes" in call to "spec" of "TaskFunction"
TaskSpec.of(plain)  # E: Missing positional argument "a" in call to "of" of "TaskSpec"

# Unknown keyword (enqueue options are not task arguments either).
resize.delay("a.png", 10, ratio=False)  # E: Unexpected keyword argument "ratio" for "delay" of "TaskFunction"
resize.delay("a.png", 10, queue="other")  # E: Unexpected keyword argument "queue" for "delay" of "TaskFunction"
TaskSpec.of(plain, 1, c=2)  # E: Unexpected keyword argument "c" for "of" of "TaskSpec"

# Wrong keyword type, too many arguments.
resize.spec("a.png", 10, keep_ratio="yes")  # E: Argument "keep_ratio" to "spec" of "TaskFunction" has incompatible type "str"; expected "bool"
TaskSpec.of(plain, 1, "x", 3)  # E: Too many arguments for "of" of "TaskSpec"
TaskSpec.of(resize, "a.png", "wide")  # E: Argument 3 to "of" of "TaskSpec" has incompatible type "str"; expected "int"

# Options are changed on the spec, and typed there too.
resize.spec("a.png", 10).evolve(queue="other", hard_timeout=30)
resize.spec("a.png", 10).evolve(queue=1)  # E: Argument "queue" to "evolve" of "TaskSpec" has incompatible type "int"; expected "str | _Unset | None"
resize.spec("a.png", 10).evolve(retry="yes")  # E: Argument "retry" to "evolve" of "TaskSpec" has incompatible type "str"
resize.spec("a.png", 10).evolve(qeue="other")  # E: Unexpected keyword argument "qeue" for "evolve" of "TaskSpec"; did you mean "queue"?
tiger.enqueue(resize.spec("a.png", 10), when=5)  # E: No overload variant of "enqueue" of "Tiger" matches argument types "TaskSpec[str]", "int"
