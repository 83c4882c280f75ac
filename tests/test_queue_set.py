"""QueueSet: the worker's set of non-empty queues, with O(1) random choice."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from typedtiger._queues import QueueSet

_operations = st.lists(st.tuples(st.booleans(), st.sampled_from("abcdefgh")), max_size=60)


@given(_operations)
def test_behaves_like_a_set(operations: list[tuple[bool, str]]) -> None:
    queues, model = QueueSet(), set[str]()
    for add, name in operations:
        if add:
            queues.add(name)
            model.add(name)
        else:
            queues.discard(name)
            model.discard(name)
        assert set(queues) == model and len(queues) == len(model)
        assert all(name in queues for name in model)
        if model:
            assert queues.choice() in model


def test_choice_is_uniform() -> None:
    random.seed(7)
    queues = QueueSet(["a", "b", "c", "d"])
    queues.discard("b")
    counts = Counter(queues.choice() for _ in range(3000))
    assert set(counts) == {"a", "c", "d"}
    assert all(800 < n < 1200 for n in counts.values())
