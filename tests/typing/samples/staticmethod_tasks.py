"""Tasks declared as staticmethods keep their signature, reached from the class or an
instance, whichever order the two decorators are written in."""

# Expected-error comments must stay on the line they describe: no reformatting.
# fmt: off

from typedtiger import Tiger

tiger = Tiger()


class Reports:
    @staticmethod
    @tiger.task(queue="reports")
    def build(year: int, *, draft: bool = False) -> str:
        return str(year)

    @tiger.task(queue="reports")
    @staticmethod
    def publish(name: str) -> None: ...


reveal_type(Reports.build)  # N: Revealed type is "typedtiger._registry.TaskFunction[[year: int, *, draft: bool =], str]"
reveal_type(Reports().build)  # N: Revealed type is "typedtiger._registry.TaskFunction[[year: int, *, draft: bool =], str]"
reveal_type(Reports.build(2026))  # N: Revealed type is "str"
reveal_type(Reports.publish)  # N: Revealed type is "typedtiger._registry.TaskFunction[[name: str], None]"
Reports.build.delay(2026, draft=True)
Reports().publish.delay("q1")

Reports.build.delay("2026")  # E: Argument 1 to "delay" of "TaskFunction" has incompatible type "str"; expected "int"
Reports().build(2026, final=True)  # E: Unexpected keyword argument "final" for "__call__" of "TaskFunction"
Reports.publish.spec()  # E: Missing positional argument "name" in call to "spec" of "TaskFunction"
Reports().publish.delay(1)  # E: Argument 1 to "delay" of "TaskFunction" has incompatible type "int"; expected "str"
