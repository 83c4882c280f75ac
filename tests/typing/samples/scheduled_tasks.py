"""A periodic (scheduled) task keeps its type: TaskTiger's typed decorator was reverted
because scheduled tasks lost theirs."""

# Expected-error comments must stay on the line they describe: no reformatting.
# fmt: off

from datetime import UTC, datetime

from typedtiger import Tiger, cron, periodic

tiger = Tiger()


@tiger.task(schedule=periodic(hours=1, start_date=datetime(2026, 1, 1, tzinfo=UTC)))
def hourly() -> int:
    return 1


@tiger.task(schedule=cron("0 4 * * *"), queue="reports", retry=True)
def nightly_report(dry_run: bool = False) -> str:
    return "done"


reveal_type(hourly)  # N: Revealed type is "typedtiger._registry.TaskFunction[[], int]"
reveal_type(hourly())  # N: Revealed type is "int"
reveal_type(hourly.delay)  # N: Revealed type is "def () -> typedtiger.task.Task[int]"
reveal_type(nightly_report)  # N: Revealed type is "typedtiger._registry.TaskFunction[[dry_run: bool =], str]"
reveal_type(nightly_report(dry_run=True))  # N: Revealed type is "str"
reveal_type(nightly_report.spec)  # N: Revealed type is "def (dry_run: bool =) -> typedtiger.spec.TaskSpec[str]"
nightly_report.delay(dry_run=True)

hourly(1)  # E: Too many arguments for "__call__" of "TaskFunction"
hourly.delay("now")  # E: Too many arguments for "delay" of "TaskFunction"
nightly_report("yes")  # E: Argument 1 to "__call__" of "TaskFunction" has incompatible type "str"; expected "bool"
nightly_report.spec(dry=True)  # E: Unexpected keyword argument "dry" for "spec" of "TaskFunction"
total: str = hourly()  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
tiger.task(schedule=periodic(hourz=1))  # E: Unexpected keyword argument "hourz" for "periodic"
