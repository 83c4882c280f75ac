"""The wire format: task payloads and execution records as JSON, through one cattrs Converter.

Field names are TaskTiger's, so both can read each other's tasks. Built-in retry policies are
stored in TaskTiger's encoding, ``["tasktiger.retry:_exponential", [60, 2, 5]]``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from typedtiger._json import JSONValue, document_problem, text_problem
from typedtiger._priorities import MAX_PRIORITY, MIN_PRIORITY
from typedtiger.exceptions import PayloadError
from typedtiger.spec import MAX_COUNT, MAX_SECONDS, Custom, Exponential, Fixed, Linear, RetryPolicy

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "JOB_TIMEOUT_NAMES",
    "ExecutionRecord",
    "TaskPayload",
    "converter",
    "decode_execution",
    "decode_payload",
    "decode_stored_payload",
    "dumps",
    "encode_execution",
    "encode_payload",
    "loads",
    "new_task_id",
    "structure",
    "unique_task_id",
]

#: Both names a hard timeout is recorded under; either is recognised in ``retry_on``.
JOB_TIMEOUT_NAMES: Final = frozenset(
    {"typedtiger.exceptions:JobTimeoutException", "tasktiger.exceptions:JobTimeoutException"}
)
#: The exception name of the record appended when a task's worker was lost.
WORKER_LOST_NAME: Final = "typedtiger.exceptions:WorkerLost"
#: The name typedtiger records a hard timeout under: TaskTiger's, which its workers compare.
JOB_TIMEOUT_NAME: Final = "tasktiger.exceptions:JobTimeoutException"

T = TypeVar("T")

#: The last second a datetime holds (9999-12-31 23:59:59 UTC): a payload time past it (or
#: before 1970) is no time a producer wrote, and converting it would raise.
MAX_TIMESTAMP: Final = 253402300799.0

_RETRY_FUNCS: Final[Mapping[str, type[Fixed | Linear | Exponential]]] = {
    "tasktiger.retry:_fixed": Fixed,
    "tasktiger.retry:_linear": Linear,
    "tasktiger.retry:_exponential": Exponential,
}
_RETRY_NAMES: Final = {cls: name for name, cls in _RETRY_FUNCS.items()}


@attrs.frozen(kw_only=True)
class TaskPayload:
    """A task as stored at ``<prefix>:task:<id>`` (the queue is where it is filed, not here)."""

    id: str
    func: str
    args: tuple[JSONValue, ...] = ()
    kwargs: dict[str, JSONValue] = attrs.field(factory=dict)
    unique: bool = False
    unique_key: tuple[str, ...] | None = None
    lock: bool = False
    lock_key: tuple[str, ...] | None = None
    hard_timeout: float | None = None
    retry_method: RetryPolicy | None = None
    retry_on: tuple[str, ...] | None = None
    max_queue_size: int | None = None
    max_stored_executions: int | None = None
    runner_class: str | None = None
    time_last_queued: float | None = None
    scheduled_at: float | None = None
    #: typedtiger's (TaskTiger ignores it): see typedtiger._priorities.
    priority: int = 0
    #: typedtiger only: keep the outcome this many seconds for ``Task.result()``.
    result_ttl: float | None = None
    #: The enqueuing span's trace context (W3C ``traceparent``...: ``observability.otel``), so
    #: that the run's span joins its trace. TaskTiger ignores the field.
    trace_context: dict[str, str] | None = None
    #: typedtiger only: the queue it was enqueued in, where ``tiger.status`` looks for its id.
    queue: str | None = None


@attrs.frozen(kw_only=True)
class ExecutionRecord:
    """One failed execution, appended to ``<prefix>:task:<id>:executions``."""

    time_started: float | None = None
    time_failed: float | None = None
    exception_name: str | None = None
    exception: str | None = None
    success: bool = False
    traceback: str | None = None
    host: str | None = None
    retry: bool | None = None
    retry_method: RetryPolicy | None = None
    log_error: bool | None = None


def _unstructure_retry(policy: RetryPolicy) -> list[object]:
    if isinstance(policy, Custom):
        return [policy.func, list(policy.args)]
    fields = [getattr(policy, field.name) for field in attrs.fields(type(policy))]
    return [_RETRY_NAMES[type(policy)], fields]


def _structure_retry(value: object, _: object) -> RetryPolicy:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"retry_method must be [function name, [args]], got {value!r}")
    name, args = value
    if args == {}:  # Lua's cjson (TaskTiger's update_scheduled_time) turns [] into {}
        args = []
    if not isinstance(name, str) or not isinstance(args, list | tuple):
        raise ValueError(f"retry_method must be [function name, [args]], got {value!r}")
    builtin = _RETRY_FUNCS.get(name)
    try:
        return builtin(*args) if builtin is not None else Custom(name, tuple(args))
    except (TypeError, ValueError) as exc:  # (said in full: cattrs would only name the type)
        raise ValueError(f"{value!r} is refused: {exc}") from None


def _unstructure_optional_retry(policy: RetryPolicy | None) -> list[object] | None:
    return None if policy is None else _unstructure_retry(policy)


def _structure_optional_retry(value: object, cls: object) -> RetryPolicy | None:
    return None if value is None else _structure_retry(value, cls)


def _is_json_value_type(cls: object) -> bool:
    # JSONValue is recursive; resolving annotations expands it one level, so compare shapes.
    scalars = typing.get_args(JSONValue)[:5]
    args = getattr(cls, "__args__", ())
    return isinstance(cls, types.UnionType) and len(args) == 7 and args[:5] == scalars


def _structure_json(value: object, _: object) -> JSONValue:
    # Only task payloads hold JSON values, and _loads checked every one (document_problem).
    return typing.cast(JSONValue, value)


def _strict_scalar(cls: type, accepted: tuple[type, ...]) -> Callable[[object, object], object]:
    def structure(value: object, _: object) -> object:
        if not isinstance(value, accepted) or (cls is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {cls.__name__}, got {type(value).__name__} {value!r}")
        return cls(value)

    return structure


def _is_homogeneous_tuple(cls: object) -> bool:
    return typing.get_origin(cls) is tuple and typing.get_args(cls)[1:] == (Ellipsis,)


def _unstructure_execution(record: ExecutionRecord) -> dict[str, object]:
    # By hand, not through cattrs: the worker encodes one at every requeue_expired pass, and an
    # idle worker should not have to import cattrs. Same output as omit_if_default would give.
    data: dict[str, object] = {"success": record.success}  # first, as cattrs put it
    for field in attrs.fields(ExecutionRecord):
        value = getattr(record, field.name)
        if field.name != "success" and value != field.default:
            data[field.name] = (
                _unstructure_optional_retry(value) if field.name == "retry_method" else value
            )
    return data


def _make_converter() -> cattrs.Converter:
    import cattrs
    from cattrs.gen import make_dict_unstructure_fn

    converter = cattrs.Converter(forbid_extra_keys=False)
    # JSON data is taken as it is: no str(3), no tuple("abc"), no int(True).
    for cls, accepted in ((str, (str,)), (bool, (bool,)), (int, (int,)), (float, (int, float))):
        converter.register_structure_hook(cls, _strict_scalar(cls, accepted))

    def structure_tuple(value: object, cls: object) -> tuple[object, ...]:
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON list, got {type(value).__name__} {value!r}")
        item_type = typing.get_args(cls)[0]
        return tuple(converter.structure(item, item_type) for item in value)

    converter.register_structure_hook_func(_is_homogeneous_tuple, structure_tuple)
    converter.register_unstructure_hook(RetryPolicy, _unstructure_retry)
    converter.register_structure_hook(RetryPolicy, _structure_retry)
    converter.register_unstructure_hook(RetryPolicy | None, _unstructure_optional_retry)
    converter.register_structure_hook(RetryPolicy | None, _structure_optional_retry)
    converter.register_structure_hook_func(_is_json_value_type, _structure_json)
    converter.register_unstructure_hook(
        TaskPayload, make_dict_unstructure_fn(TaskPayload, converter, _cattrs_omit_if_default=True)
    )
    converter.register_unstructure_hook(ExecutionRecord, _unstructure_execution)
    return converter


@functools.cache
def _converter() -> cattrs.Converter:
    """The converter, built on first use with every hook generated: cattrs generates them on
    first use, and a forked child that had to generate its own would pay for it on every task.
    (The parent decodes a payload before it forks, so this runs there.)"""
    converter = _make_converter()
    samples = (TaskPayload(id="", func=""), ExecutionRecord())
    for sample in samples:
        converter.structure(converter.unstructure(sample), type(sample))
    for sample in samples:  # structuring may register hooks lazily, which clears the caches
        converter.unstructure(sample)
    return converter


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def _loads(text: str | bytes, what: str, *, task_data: bool = False) -> dict[str, Any]:
    """The JSON object ``text`` holds. With ``task_data``, nothing ``to_json_value`` would
    refuse at enqueue (NaN, Infinity, integers past 64 bits, lone surrogates, deep nesting) is
    anywhere in it: a worker acts on it. Records and outcomes only carry messages (an exception's
    may hold a lone surrogate, from a file name say), so only their bytes are checked."""
    problem = text_problem(text) if isinstance(text, str) else None
    if problem is not None:
        raise PayloadError(f"{what} {problem}")
    try:
        data = json.loads(text)
    except ValueError as exc:  # (invalid UTF-8 in bytes is a ValueError too)
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(f"{what} is nested too deeply for JSON to read") from None
    if not isinstance(data, dict):
        raise PayloadError(f"{what} is a JSON {type(data).__name__}, not an object")
    problem = document_problem(data, what) if task_data else None
    if problem is not None:
        raise PayloadError(problem)
    return data


def _format_error(exc: BaseException, cls: type | None) -> str:
    """cattrs' own wording, except that a ValueError's message is kept (it says what is wrong
    with the value; cattrs would only name the type expected)."""
    import cattrs.v

    if type(exc) is ValueError and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, cls)


def _structure(data: dict[str, Any], cls: type[T], what: str) -> T:
    import cattrs

    try:
        return _converter().structure(data, cls)
    except cattrs.ClassValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path=what, format_exception=_format_error))
        raise PayloadError(problems) from None
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what}: {exc}") from None


def encode_payload(payload: TaskPayload) -> str:
    """The JSON stored for ``payload``."""
    return _dumps(_converter().unstructure(payload))


def decode_payload(text: str | bytes) -> TaskPayload:
    """Read a stored payload; PayloadError names what is wrong."""
    data = _loads(text, "task payload", task_data=True)
    payload = _structure(data, TaskPayload, "task payload")
    problem = _range_problem(payload)
    if problem is not None:
        raise PayloadError(f"task payload.{problem}")
    return payload


def _range_problem(payload: TaskPayload) -> str | None:
    """The numbers TaskSpec checks at enqueue, checked again (a worker acts on them)."""
    for name in ("hard_timeout", "result_ttl"):
        seconds = getattr(payload, name)
        if seconds is not None and not 0 < seconds <= MAX_SECONDS:
            return f"{name} is {seconds!r}, not > 0 and <= {MAX_SECONDS:.0f} seconds (a year)"
    for name in ("time_last_queued", "scheduled_at"):
        when = getattr(payload, name)
        if when is not None and not 0 <= when <= MAX_TIMESTAMP:
            return f"{name} is {when!r}, not a time (0 to {MAX_TIMESTAMP:.0f}, the year 9999)"
    for name, low in (("max_queue_size", 1), ("max_stored_executions", 0)):
        count = getattr(payload, name)
        if count is not None and not low <= count <= MAX_COUNT:
            return f"{name} is {count!r}, not >= {low} and <= {MAX_COUNT}"
    if not MIN_PRIORITY <= payload.priority <= MAX_PRIORITY:
        return f"priority is {payload.priority!r}, not {MIN_PRIORITY} to {MAX_PRIORITY}"
    return None


def decode_stored_payload(task_id: str, text: str | bytes | None) -> TaskPayload:
    """The payload stored for ``task_id``; PayloadError if missing, corrupt or another task's."""
    if text is None:
        raise PayloadError(f"the payload of task {task_id} is missing")
    payload = decode_payload(text)
    if payload.id != task_id:
        raise PayloadError(f"task {task_id}'s payload names another id, {payload.id!r}")
    return payload


def encode_execution(record: ExecutionRecord) -> str:
    """The JSON stored for ``record``."""
    return _dumps(_unstructure_execution(record))


def decode_execution(text: str | bytes) -> ExecutionRecord:
    """Read a stored execution record; PayloadError names what is wrong."""
    return _structure(_loads(text, "execution record"), ExecutionRecord, "execution record")


def payload_as_dict(payload: TaskPayload) -> dict[str, Any]:
    """The payload as plain JSON data (what ``Task.data`` shows)."""
    data: dict[str, Any] = _converter().unstructure(payload)
    return data


def new_task_id() -> str:
    """A random 64-hex-digit task id."""
    return os.urandom(32).hex()


def unique_task_id(
    func: str, args: tuple[JSONValue, ...] | None, kwargs: Mapping[str, JSONValue]
) -> str:
    """The id TaskTiger derives for a unique task (and for a lock): sha256 of sorted JSON."""
    document = {"func": func, "args": None if args is None else list(args), "kwargs": dict(kwargs)}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode("utf8")).hexdigest()


def converter() -> cattrs.Converter:
    """The one converter (built on first use), for values defined elsewhere (a worker's Job and
    Outcome) to be encoded the same way: register their hooks on it once, then warm them."""
    return _converter()


def dumps(data: object) -> str:
    """Compact JSON, refusing NaN and infinities."""
    return _dumps(data)


def loads(text: str | bytes, what: str, *, task_data: bool = False) -> dict[str, Any]:
    """The JSON object ``text`` holds; PayloadError naming ``what`` otherwise (see ``_loads``)."""
    return _loads(text, what, task_data=task_data)


def structure(data: dict[str, Any], cls: type[T], what: str) -> T:
    """``data`` as a ``cls`` through the converter; PayloadError naming the wrong field."""
    return _structure(data, cls, what)
