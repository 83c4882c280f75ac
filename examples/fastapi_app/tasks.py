"""The application's async tasks. A worker runs them with ``--executor asyncio``::

    typedtiger worker --url redis://localhost:6379/0 -m examples.fastapi_app.tasks \\
        --executor asyncio -c 100
"""

from __future__ import annotations

import asyncio

import attrs

from typedtiger import Tiger, exponential

tiger = Tiger()


@attrs.define
class Mailer:
    """Stands in for an async e-mail client."""

    #: (address, subject) of every message sent.
    sent: list[tuple[str, str]] = attrs.field(factory=list)

    async def send(self, address: str, subject: str) -> None:
        await asyncio.sleep(0)  # the network round trip
        self.sent.append((address, subject))


mailer = Mailer()


@tiger.task(queue="email", hard_timeout=30, retry=exponential(10, 2, 5))
async def send_welcome(address: str, *, name: str) -> None:
    """Welcome a new user by e-mail."""
    await mailer.send(address, f"Welcome, {name}!")
