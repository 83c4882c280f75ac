from datetime import timedelta

from typedtiger import TaskSpec, Tiger, exponential, periodic

tiger = Tiger()


@tiger.task(queue="email", retry=exponential(60, 2, 5), hard_timeout=30, unique=True)
def send_email(to: str, *, subject: str = "") -> bool:
    return bool(to and subject)


@tiger.task(schedule=periodic(minutes=5))
def every_five_minutes() -> None: ...


def plain(a: int, b: list[str]) -> None: ...


reveal_type(send_email.delay)  # N: Revealed type is "def (to: str, *, subject: str =) -> typedtiger.task.Task[bool]"
reveal_type(send_email("a@b.c"))  # N: Revealed type is "bool"
reveal_type(every_five_minutes)  # N: Revealed type is "typedtiger._registry.TaskFunction[[], None]"
spec = send_email.spec("a@b.c", subject="hi").evolve(queue="other")
tiger.enqueue(spec, when=timedelta(minutes=5))
tiger.enqueue(TaskSpec.of(plain, 1, ["x"]))
tiger.delay(plain, args=[1, ["x"]], queue="q")
