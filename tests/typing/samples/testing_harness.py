"""typedtiger.testing is typed: the harness, what its runs return and the records it lists."""

# Expected-error comments must stay on the line they describe: no reformatting.
# fmt: off

from datetime import datetime, timedelta

from typedtiger import Tiger, exponential
from typedtiger.testing import TigerHarness, fake_tiger

tiger = Tiger()


@tiger.task(retry=exponential(60, 2, 3))
def charge(order_id: str) -> None: ...


def check(harness: TigerHarness) -> None:
    charge.delay("o-1")
    result = harness.advance(timedelta(minutes=10))
    reveal_type(result)  # N: Revealed type is "typedtiger.testing.records.RunResult"
    reveal_type(result.ran)  # N: Revealed type is "int"
    reveal_type(result.of(charge).executions)  # N: Revealed type is "tuple[typedtiger.testing.records.Execution, ...]"
    reveal_type(result.executions[0].retry_in)  # N: Revealed type is "float | None"
    reveal_type(harness.errored(charge))  # N: Revealed type is "list[typedtiger.testing.records.TaskRecord]"
    reveal_type(harness.now)  # N: Revealed type is "datetime.datetime"
    reveal_type(harness.clock.now())  # N: Revealed type is "float"
    harness.advance("10 minutes")  # E: Argument 1 to "advance" of "TigerHarness" has incompatible type "str"; expected "float | timedelta"
    harness.run_until(5.0)  # E: Argument 1 to "run_until" of "TigerHarness" has incompatible type "float"; expected "datetime"
    harness.run_until_idle(raise_error=True)  # E: Unexpected keyword argument "raise_error" for "run_until_idle" of "TigerHarness"; did you mean "raise_errors"?


def next_run(harness: TigerHarness) -> datetime:
    return harness.next_due()  # E: Incompatible return value type (got "datetime | None", expected "datetime")


with fake_tiger(tiger) as harness:
    reveal_type(harness)  # N: Revealed type is "typedtiger.testing.harness.TigerHarness"
    check(harness)
