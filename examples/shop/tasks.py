"""The shop's background tasks.

The application creates its Tiger without storage and initialises it when it starts
(``tiger.init(backend=RedisBackend.from_url(...), config=...)``); its tests bind the same Tiger
to an in-process FakeBackend instead (see conftest.py and test_tasks.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import attrs

from typedtiger import Tiger, cron, exponential

tiger = Tiger()


class GatewayUnavailable(Exception):
    """The payment provider could not be reached: worth trying again later."""


class PaymentDeclined(Exception):
    """The payment provider refused the charge: trying again will not help."""


@attrs.define
class Gateway:
    """Stands in for the payment provider's client."""

    #: How many of the next calls time out.
    outages: int = 0
    #: Orders whose card is refused.
    declined: set[str] = attrs.field(factory=set)
    #: (order id, amount in cents) of every successful charge.
    charges: list[tuple[str, int]] = attrs.field(factory=list)

    def charge(self, order_id: str, cents: int) -> None:
        if self.outages > 0:
            self.outages -= 1
            raise GatewayUnavailable("the payment gateway timed out")
        if order_id in self.declined:
            raise PaymentDeclined(f"card declined for {order_id}")
        self.charges.append((order_id, cents))


gateway = Gateway()
#: The emails sent, and the reports written (a real shop would use a mailer and a database).
outbox: list[str] = []
reports: list[str] = []


@tiger.task(queue="payments", retry=exponential(60, 2, 4), retry_on=[GatewayUnavailable])
def charge_order(order_id: str, cents: int) -> None:
    """Charge an order, then send its receipt.

    While the gateway is unavailable the charge is retried 60 s later, then 120 s, 240 s and
    480 s after each failure; a declined card is not retried.
    """
    gateway.charge(order_id, cents)
    send_receipt.delay(order_id)


@tiger.task(queue="email", unique=True)
def send_receipt(order_id: str) -> None:
    """Email the receipt of an order (queued at most once at a time per order)."""
    outbox.append(f"receipt for {order_id}")


@tiger.task(schedule=cron("0 4 * * *"), queue="reports")
def nightly_sales_report() -> None:
    """Every day at 04:00 UTC."""
    now = datetime.fromtimestamp(tiger.clock.now(), UTC)
    reports.append(f"sales report of {now:%Y-%m-%d %H:%M}")
