"""The shop's batch task, tested with the pytest plugin (docs/tasks.md shows this example)."""

from __future__ import annotations

import pytest

from examples.shop import search
from typedtiger import Config
from typedtiger.testing import TigerHarness


@pytest.fixture
def typedtiger_config() -> Config:
    return search.CONFIG


@pytest.fixture(autouse=True)
def index(monkeypatch: pytest.MonkeyPatch) -> search.SearchIndex:
    fresh = search.SearchIndex()
    monkeypatch.setattr(search, "index", fresh)
    return fresh


def test_changes_reach_the_index_in_batches_of_fifty(
    typedtiger_harness: TigerHarness, index: search.SearchIndex
) -> None:
    for n in range(120):
        search.reindex_product.delay(f"sku-{n:03}")

    result = typedtiger_harness.run_until_idle(raise_errors=True)

    assert result.ran == 120  # one execution per queued call, in 3 calls of the function
    assert [len(request) for request in index.requests] == [50, 50, 20]
    sent = sorted(product for request in index.requests for product in request)
    assert sent == [f"sku-{n:03}" for n in range(120)]


def test_a_product_changed_twice_is_sent_once(
    typedtiger_harness: TigerHarness, index: search.SearchIndex
) -> None:
    search.reindex_product.delay("sku-1")
    search.reindex_product.delay("sku-2")
    search.reindex_product.delay("sku-1")

    typedtiger_harness.run_until_idle(raise_errors=True)

    assert index.requests == [["sku-1", "sku-2"]]


class TestWithoutABatchSize:
    @pytest.fixture
    def typedtiger_config(self) -> Config:
        return Config()  # "search" is not in batch_queues

    def test_the_function_gets_lists_of_one(
        self, typedtiger_harness: TigerHarness, index: search.SearchIndex
    ) -> None:
        search.reindex_product.delay("sku-1")
        search.reindex_product.delay("sku-1")

        typedtiger_harness.run_until_idle(raise_errors=True)

        assert index.requests == [["sku-1"], ["sku-1"]]
