"""The shop's tasks, tested with the typedtiger pytest plugin: no Redis, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from examples.shop import tasks
from typedtiger.testing import TaskFailed, TigerHarness


@pytest.fixture(autouse=True)
def gateway(monkeypatch: pytest.MonkeyPatch) -> tasks.Gateway:
    """A fresh fake payment gateway, outbox and report list for each test."""
    fresh = tasks.Gateway()
    monkeypatch.setattr(tasks, "gateway", fresh)
    monkeypatch.setattr(tasks, "outbox", [])
    monkeypatch.setattr(tasks, "reports", [])
    return fresh


def test_a_charge_is_retried_with_exponential_backoff(
    typedtiger_harness: TigerHarness, gateway: tasks.Gateway
) -> None:
    gateway.outages = 2
    tasks.charge_order.delay("order-1", 1999)

    result = typedtiger_harness.advance(timedelta(hours=1))

    assert [e.retry_in for e in result.of(tasks.charge_order).executions] == [60, 120, None]
    assert gateway.charges == [("order-1", 1999)]
    assert tasks.outbox == ["receipt for order-1"]  # queued by the charge, run in the same step


def test_a_charge_gives_up_after_four_retries(
    typedtiger_harness: TigerHarness, gateway: tasks.Gateway
) -> None:
    gateway.outages = 100
    tasks.charge_order.delay("order-1", 1999)

    result = typedtiger_harness.advance(timedelta(hours=1))

    assert [e.retry_in for e in result.executions] == [60, 120, 240, 480, None]
    (failed,) = typedtiger_harness.errored(tasks.charge_order)
    assert failed.executions == 5
    assert failed.last_exception == "examples.shop.tasks:GatewayUnavailable"
    assert tasks.outbox == []


def test_a_declined_card_is_not_retried(
    typedtiger_harness: TigerHarness, gateway: tasks.Gateway
) -> None:
    gateway.declined.add("order-2")
    tasks.charge_order.delay("order-2", 500)

    with pytest.raises(TaskFailed, match="PaymentDeclined: card declined for order-2"):
        typedtiger_harness.run_until_idle(raise_errors=True)

    assert typedtiger_harness.scheduled(tasks.charge_order) == []


def test_the_sales_report_runs_every_night_at_four(typedtiger_harness: TigerHarness) -> None:
    typedtiger_harness.clock.set(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

    result = typedtiger_harness.advance(timedelta(days=3))

    assert [e.started_at for e in result.executions] == [
        datetime(2026, 3, day, 4, 0, tzinfo=UTC) for day in (2, 3, 4)
    ]
    assert tasks.reports[-1] == "sales report of 2026-03-04 04:00"


def test_a_receipt_is_queued_once_per_order(typedtiger_harness: TigerHarness) -> None:
    tasks.send_receipt.delay("order-1")
    tasks.send_receipt.delay("order-1")

    assert [(r.queue, r.args) for r in typedtiger_harness.queued()] == [("email", ("order-1",))]
    assert typedtiger_harness.run_until_idle(raise_errors=True).ran == 1
    assert tasks.outbox == ["receipt for order-1"]
