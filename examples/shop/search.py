"""A batch task: product changes reach the search index in bulk requests.

Each change queues one call (``reindex_product.delay("sku-1")``); a worker claims up to
``Config.batch_queues["search"]`` of them at once and calls the function with the whole list.
"""

from __future__ import annotations

import attrs

from examples.shop.tasks import tiger
from typedtiger import Config
from typedtiger.runner import BatchCall

#: What the shop initialises its Tiger with: batches of up to 50 calls in the "search" queue.
CONFIG = Config(batch_queues={"search": 50})


@attrs.define
class SearchIndex:
    """Stands in for the search engine's client."""

    #: The product ids of every bulk request, in order.
    requests: list[list[str]] = attrs.field(factory=list)

    def bulk_update(self, product_ids: list[str]) -> None:
        self.requests.append(product_ids)


index = SearchIndex()


@tiger.task(queue="search", batch=True)
def reindex_product(calls: list[BatchCall]) -> None:
    """Send every product changed since the last batch to the index, in one request."""
    product_ids = {str(call["args"][0]) for call in calls}  # a product changed twice: once
    index.bulk_update(sorted(product_ids))
