"""Tasks the dashboard tests store: a periodic one, and tasks whose text tries to be markup."""

from __future__ import annotations

from typedtiger import Tiger, periodic

tiger = Tiger()

#: Text a producer or a task might put in arguments or an exception message.
MARKUP = "<script>document.title='pwned'</script><b>bold</b>"


@tiger.task(queue="dash.periodic", schedule=periodic(minutes=10))
def every_ten_minutes() -> None:
    """Does nothing, every ten minutes."""


@tiger.task(queue="dash")
def fail_with(message: str) -> None:
    raise ValueError(message)


@tiger.task(queue="dash")
def noop(value: object = None) -> None:
    """Does nothing."""
