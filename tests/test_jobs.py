"""The execution path's values: a Job and its Outcome round-trip through the one converter
(the layering of worker/ is checked in tests/test_architecture.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from typedtiger.exceptions import PayloadError
from typedtiger.serialization import TaskPayload
from typedtiger.spec import Exponential, Fixed
from typedtiger.worker.job import (
    Failed,
    Job,
    Succeeded,
    decode_job,
    decode_outcome,
    encode_job,
    encode_outcome,
)

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
times = st.floats(0, 4e9, allow_nan=False)
names = st.text(min_size=1, max_size=30)
payloads = st.builds(
    TaskPayload,
    id=st.text(alphabet="0123456789abcdef", min_size=1, max_size=64),
    func=names,
    args=st.lists(json_scalars, max_size=3).map(tuple),
    kwargs=st.dictionaries(st.text(max_size=8), json_scalars, max_size=3),
    lock=st.booleans(),
    hard_timeout=st.none() | st.floats(0.1, 1000),
    retry_method=st.none() | st.just(Fixed(60, 3)) | st.just(Exponential(1, 2, 5)),
)
jobs = st.builds(
    Job,
    queue=names,
    func=names,
    batch=st.none() | st.booleans(),
    hard_timeout=st.floats(0.1, 1e6),
    runner_class=st.none() | names,
    store_traceback=st.booleans(),
    tasks=st.lists(payloads, min_size=1, max_size=3).map(tuple),
)
outcomes = st.builds(
    Succeeded, time_started=times, time_finished=times, batch_function=st.none() | st.booleans()
) | st.builds(
    Failed,
    time_started=times,
    time_failed=times,
    exception_name=names,
    exception_mro=st.lists(names, max_size=3).map(tuple),
    message=st.text(max_size=50),
    traceback=st.none() | st.text(max_size=50),
    retry_requested=st.booleans(),
    retry_method=st.none() | st.just(Fixed(5, 1)),
    log_error=st.booleans(),
    batch_function=st.none() | st.booleans(),
)


@given(jobs)
def test_a_job_round_trips_through_the_converter(job: Job) -> None:
    assert decode_job(encode_job(job)) == job


@given(outcomes)
def test_an_outcome_round_trips_as_a_tagged_union(outcome: Succeeded | Failed) -> None:
    text = encode_outcome(outcome)
    assert f'"kind":"{type(outcome).__name__.lower()}"' in text
    assert decode_outcome(text) == outcome


def test_a_bad_outcome_is_refused_by_name() -> None:
    with pytest.raises(PayloadError, match="kind"):
        decode_outcome('{"kind": "maybe"}')
    with pytest.raises(PayloadError, match="time_started"):
        decode_outcome('{"kind": "succeeded", "time_finished": 1}')
