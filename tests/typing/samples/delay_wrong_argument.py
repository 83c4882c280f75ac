from typedtiger import TaskSpec, Tiger

tiger = Tiger()


@tiger.task
def my_task(x: str) -> None: ...


my_task.delay(1)  # E: Argument 1 to "delay" of "TaskFunction" has incompatible type "int"; expected "str"
my_task.spec(1)  # E: Argument 1 to "spec" of "TaskFunction" has incompatible type "int"; expected "str"
my_task.delay()  # E: Missing positional argument "x" in call to "delay" of "TaskFunction"
my_task.delay("a", y=2)  # E: Unexpected keyword argument "y" for "delay" of "TaskFunction"
TaskSpec.of(my_task, 1)  # E: Argument 2 to "of" of "TaskSpec" has incompatible type "int"; expected "str"
my_task(1)  # E: Argument 1 to "__call__" of "TaskFunction" has incompatible type "int"; expected "str"
