"""A batch task in a module the test workers never import: only their children do."""

from __future__ import annotations

from typedtiger import Tiger
from typedtiger.runner import BatchCall

tiger = Tiger()


@tiger.task(batch=True)
def note_batch(calls: list[BatchCall]) -> None:
    with open(str(calls[0]["args"][0]), "a") as file:
        file.write(f"batch of {len(calls)}\n")
