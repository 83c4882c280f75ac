"""Tiger: the facade users hold. Registers tasks, enqueues them, inspects and administers queues."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

import attrs

from typedtiger._allowlist import Allowlist
from typedtiger._async_client import AsyncClient, Timed
from typedtiger._context import RunningTaskAccess, running
from typedtiger._coroutines import refuse_async_generator, running_to_end
from typedtiger._delay import TaskTigerDelay
from typedtiger._inspection import QueueInspection
from typedtiger._logging import setup_structlog as setup_structlog_json_lines
from typedtiger._names import qualified_name
from typedtiger._payloads import build_payload
from typedtiger._registry import (
    AsyncTaskFunction,
    BatchTaskFunction,
    Registration,
    TaskDecorator,
    TaskFunction,
    TaskRegistry,
)
from typedtiger.backends.base import Backend, Enqueued, EnqueueMode, TaskRef
from typedtiger.clock import Clock, due_at
from typedtiger.config import Config
from typedtiger.exceptions import NotInitialized, PayloadError, QueueFullException
from typedtiger.runner import BaseRunner, BatchCall
from typedtiger.serialization import TaskPayload, decode_stored_payload
from typedtiger.spec import KeyNames, RetryPolicy, Schedule, TaskSpec
from typedtiger.task import Task, refs_of

if TYPE_CHECKING:
    from typedtiger.executor import Executor

__all__ = ["EnqueueTracer", "Tiger"]

P = ParamSpec("P")
R = TypeVar("R")

#: Wraps an enqueue (``Tiger.instrument_enqueue``), sync or awaited: given the payloads, a context
#: entered around their storing that gives the payloads to store (changed as it needs, e.g. with
#: a trace context).
EnqueueTracer = Callable[[Timed], contextlib.AbstractContextManager[Timed]]


@attrs.frozen
class _Bound:
    backend: Backend
    config: Config
    clock: Clock


class Tiger(AsyncClient, TaskRegistry, QueueInspection, TaskTigerDelay, RunningTaskAccess):
    """A task queue on a storage backend.

    ``Tiger(backend, config)`` is ready to use. ``Tiger()`` creates one to be initialised later
    with ``init(backend=..., config=...)`` (an application factory): tasks can be decorated
    before, anything that needs storage raises NotInitialized until then. With
    ``setup_structlog=True`` structlog is configured for JSON lines (``typedtiger.logging``).
    """

    def __init__(
        self,
        backend: Backend | None = None,
        config: Config | None = None,
        *,
        clock: Clock | None = None,
        setup_structlog: bool = False,
    ) -> None:
        self._bound: _Bound | None = None
        #: The backends ``bound_to`` holds this Tiger to, while its block runs.
        self._held: tuple[Backend, ...] = ()
        self._registry: dict[str, Registration] = {}
        #: ``allowlist`` as last built, and the Config it was built from (None: build anew).
        self._allowlist: tuple[Config, Allowlist] | None = None
        self._enqueue_tracer: EnqueueTracer | None = None
        if setup_structlog:
            setup_structlog_json_lines()
        if backend is not None:
            self.init(backend=backend, config=config, clock=clock)
        elif config is not None or clock is not None:
            raise ValueError("config and clock are given to init() when no backend is given")

    def init(
        self, *, backend: Backend, config: Config | None = None, clock: Clock | None = None
    ) -> None:
        """Attach storage and settings.

        Called again (an application factory run once per test), it replaces them: from then
        on this Tiger, its tasks' ``.delay()`` and its Task handles use the new backend and
        Config. The previous backend is left as it is, not closed (it may be shared; close it
        if nothing else uses it), and a Worker already made keeps the binding it was made with.

        Inside ``bound_to`` (the test harness) only the backend bound there is accepted: an
        application factory run by a test must not take the Tiger back to real storage.
        """
        if self._held and not any(backend is held for held in self._held):
            raise RuntimeError(
                f"this Tiger is bound to {self._held[0]!r} for now (Tiger.bound_to, the test "
                f"harness); init() would replace it with {backend!r}. Give the application "
                "factory that backend (e.g. harness.backend) instead"
            )
        self._bind(backend, config, clock)

    def _bind(self, backend: Backend, config: Config | None, clock: Clock | None) -> None:
        config = config if config is not None else Config()
        self._bound = _Bound(
            backend.with_prefix(config.prefix, config.cluster),
            config,
            clock if clock is not None else backend.clock,
        )

    @property
    def initialised(self) -> bool:
        """Whether this Tiger has a backend (``init`` was called)."""
        return self._bound is not None

    def reconfigure(self, config: Config) -> None:
        """Apply ``config`` to this initialised Tiger, keeping its backend and clock (the
        ``typedtiger`` commands apply their overrides to the application's Tiger this way)."""
        bound = self._require()
        self._bound = _Bound(
            bound.backend.with_prefix(config.prefix, config.cluster), config, bound.clock
        )

    @contextmanager
    def bound_to(
        self, backend: Backend, config: Config | None = None, *, clock: Clock | None = None
    ) -> Iterator[Tiger]:
        """Use another backend (and config) for the duration of the block, then restore.

        Meant for tests: point an application's Tiger at a FakeBackend.
        """
        previous, held = self._bound, self._held
        self._bind(backend, config, clock)
        self._held = (backend, self._require().backend)
        try:
            yield self
        finally:
            self._bound, self._held = previous, held

    @classmethod
    def from_url(cls, url: str, config: Config | None = None) -> Tiger:
        """A Tiger on the Redis at ``url`` (``redis://host:port/db``, ``rediss://``...)."""
        from typedtiger.backends.redis import RedisBackend

        return cls(RedisBackend.from_url(url), config)

    def _require(self) -> _Bound:
        if self._bound is None:
            raise NotInitialized(
                "this Tiger has no backend yet: call tiger.init(backend=..., config=...) first"
            )
        return self._bound

    @property
    def backend(self) -> Backend:
        """Where tasks are stored."""
        return self._require().backend

    @property
    def config(self) -> Config:
        """The settings in force."""
        return self._require().config

    @property
    def clock(self) -> Clock:
        """Where every "now" comes from."""
        return self._require().clock

    # --- registration -------------------------------------------------------------------

    @overload
    def task(  # type: ignore[overload-overlap]
        self, func: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTaskFunction[P, R]: ...

    @overload
    def task(self, func: Callable[P, R], /) -> TaskFunction[P, R]: ...

    @overload
    def task(
        self,
        *,
        queue: str | None = ...,
        hard_timeout: float | None = ...,
        unique: bool | None = ...,
        unique_key: KeyNames | None = ...,
        lock: bool | None = ...,
        lock_key: KeyNames | None = ...,
        retry: bool | RetryPolicy | None = ...,
        retry_on: Sequence[type[BaseException]] | None = ...,
        max_queue_size: int | None = ...,
        max_stored_executions: int | None = ...,
        runner_class: type[BaseRunner] | None = ...,
        schedule: Schedule | Callable[[datetime], datetime | None] | None = ...,
        priority: int | None = ...,
        result_ttl: float | timedelta | None = ...,
        batch: Literal[False] = ...,
    ) -> TaskDecorator: ...

    @overload
    def task(
        self,
        *,
        queue: str | None = ...,
        hard_timeout: float | None = ...,
        unique: bool | None = ...,
        unique_key: KeyNames | None = ...,
        lock: bool | None = ...,
        lock_key: KeyNames | None = ...,
        retry: bool | RetryPolicy | None = ...,
        retry_on: Sequence[type[BaseException]] | None = ...,
        max_queue_size: int | None = ...,
        max_stored_executions: int | None = ...,
        runner_class: type[BaseRunner] | None = ...,
        schedule: Schedule | Callable[[datetime], datetime | None] | None = ...,
        priority: int | None = ...,
        batch: Literal[True],
    ) -> Callable[[Callable[[list[BatchCall]], R]], BatchTaskFunction[R]]: ...

    def task(
        self,
        func: Callable[..., object] | None = None,
        *,
        queue: str | None = None,
        hard_timeout: float | None = None,
        unique: bool | None = None,
        unique_key: KeyNames | None = None,
        lock: bool | None = None,
        lock_key: KeyNames | None = None,
        retry: bool | RetryPolicy | None = None,
        retry_on: Sequence[type[BaseException]] | None = None,
        max_queue_size: int | None = None,
        max_stored_executions: int | None = None,
        runner_class: type[BaseRunner] | None = None,
        schedule: Schedule | Callable[[datetime], datetime | None] | None = None,
        result_ttl: float | timedelta | None = None,
        batch: bool = False,
        priority: int | None = None,
    ) -> object:
        """Register a task function: ``@tiger.task`` or ``@tiger.task(queue=..., ...)``.

        The options are the task's defaults; a call's TaskSpec can override them. A
        ``schedule`` makes the task periodic (and unique); ``batch=True`` makes workers call
        it with a list of ``BatchCall`` records; a higher ``priority`` (-10 to 10, default 0)
        is claimed first. With ``result_ttl`` (seconds or a timedelta) the task's return
        value is kept that long for ``Task.result()``.
        """

        def register(target: Callable[..., object]) -> object:
            refuse_async_generator(target)
            defaults = TaskSpec(
                func=qualified_name(target),
                queue=queue,
                hard_timeout=hard_timeout,
                unique=True if schedule is not None else unique,
                unique_key=unique_key,
                lock=lock,
                lock_key=lock_key,
                retry=retry,
                retry_on=retry_on,
                max_queue_size=max_queue_size,
                max_stored_executions=max_stored_executions,
                runner_class=runner_class,
                batch=batch,
                priority=priority,
                result_ttl=result_ttl,
            )
            return self._register(target, defaults, schedule)

        if func is not None:
            return register(func)
        return register

    # --- enqueueing ---------------------------------------------------------------------

    def resolve(self, spec: TaskSpec) -> TaskSpec:
        """``spec`` with unset options filled from its registration (Config fills the rest)."""
        registration = self._registry.get(spec.func)
        return spec.inherit(registration.defaults) if registration is not None else spec

    def build(
        self,
        spec: TaskSpec,
        *,
        time_last_queued: float | None = None,
        scheduled_at: float | None = None,
    ) -> tuple[TaskPayload, str]:
        """The payload (with its id) and queue ``spec`` resolves to; ``store`` sets its times
        unless they are given here."""
        return build_payload(
            self.resolve(spec),
            self.config,
            time_last_queued=time_last_queued,
            scheduled_at=scheduled_at,
        )

    @overload
    def enqueue(
        self,
        spec: TaskSpec[Coroutine[Any, Any, R]],
        *,
        when: datetime | timedelta | None = None,
        after: Task | Sequence[Task] | None = None,
    ) -> Task[R]: ...

    @overload
    def enqueue(
        self,
        spec: TaskSpec[R],
        *,
        when: datetime | timedelta | None = None,
        after: Task | Sequence[Task] | None = None,
    ) -> Task[R]: ...

    def enqueue(
        self,
        spec: TaskSpec,
        *,
        when: datetime | timedelta | None = None,
        after: Task | Sequence[Task] | None = None,
    ) -> Task:
        """Queue ``spec`` now, or at ``when`` (a datetime, naive = UTC, or a delay from now).

        With ``after`` (stored tasks), it runs only once each of them has succeeded: it waits
        (scheduled, ``task.waiting``) while one is queued, active or scheduled, and is
        cancelled (to error, with a DependencyFailed record) if one fails for good.

        A unique task is TaskTiger's: an equal one's stored payload is overwritten (the last
        arguments win), and the task is filed in its state (queued now, or scheduled) unless
        it is filed there already, keeping that time: so a unique task that is only scheduled
        is queued too when enqueued for now. Raises
        QueueFullException when ``max_queue_size`` is reached (nothing is written). With
        ``Config.always_eager`` a task due now runs here and now instead.
        """
        return self.enqueue_many([spec], when=when, after=after)[0]

    def enqueue_many(
        self,
        specs: Sequence[TaskSpec],
        *,
        when: datetime | timedelta | None = None,
        after: Task | Sequence[Task] | None = None,
    ) -> list[Task]:
        """Queue many specs in one round trip; the same rules as ``enqueue``."""
        return self._enqueue_specs(specs, when, refs_of(after), chained=False)

    def chain(
        self,
        specs: Sequence[TaskSpec],
        *,
        when: datetime | timedelta | None = None,
        after: Task | Sequence[Task] | None = None,
    ) -> list[Task]:
        """Queue specs to run one after the other, in one round trip: each once the one
        before it succeeded (the first at ``when``, after ``after``; see ``enqueue``). A
        failure for good cancels the rest of the chain."""
        return self._enqueue_specs(specs, when, refs_of(after), chained=True)

    def _enqueue_specs(
        self,
        specs: Sequence[TaskSpec],
        when: datetime | timedelta | None,
        after: tuple[TaskRef, ...],
        *,
        chained: bool,
    ) -> list[Task]:
        now, due, scheduled_at = self._timing(when)
        timed = [
            self.build(spec, time_last_queued=now, scheduled_at=scheduled_at) for spec in specs
        ]
        waits = [after] * len(timed)
        if chained:  # (each after the one before)
            waits[1:] = [(TaskRef(queue, payload.id),) for payload, queue in timed[:-1]]
        return self._store_timed(timed, now, due, None, waits)

    def store(
        self,
        built: Sequence[tuple[TaskPayload, str]],
        *,
        when: datetime | timedelta | None = None,
        mode: EnqueueMode | None = None,
    ) -> list[Task]:
        """Store built payloads (see ``build``), or run them now in eager mode."""
        now, due, scheduled_at = self._timing(when)
        timed = [
            (attrs.evolve(payload, time_last_queued=now, scheduled_at=scheduled_at), queue)
            for payload, queue in built
        ]
        return self._store_timed(timed, now, due, mode, [()] * len(timed))

    def _timing(self, when: datetime | timedelta | None) -> tuple[float, float, float]:
        """Now, when the task is due, and its ``scheduled_at`` (never before now)."""
        now = self.clock.now()
        due = due_at(when, now)
        return now, due, max(due, now)

    def _store_timed(
        self,
        timed: Sequence[tuple[TaskPayload, str]],
        now: float,
        due: float,
        mode: EnqueueMode | None,
        after: Sequence[tuple[TaskRef, ...]],
    ) -> list[Task]:
        if self.config.always_eager and due <= now:  # (what they run after has run)
            return [self._run_eagerly(payload, queue) for payload, queue in timed]
        with self._traced(timed) as traced:
            return self._store_now(traced, now, due, mode, after)

    def instrument_enqueue(self, tracer: EnqueueTracer | None) -> None:
        """Have ``tracer`` wrap every enqueue, awaited ones too, from now on (None: none does);
        tracing does (``typedtiger.observability.otel.instrument``)."""
        self._enqueue_tracer = tracer

    def _traced(self, timed: Timed) -> contextlib.AbstractContextManager[Timed]:
        tracer = self._enqueue_tracer
        return contextlib.nullcontext(timed) if tracer is None else tracer(timed)

    def _store_now(
        self,
        timed: Timed,
        now: float,
        due: float,
        mode: EnqueueMode | None,
        after: Sequence[tuple[TaskRef, ...]],
    ) -> list[Task]:
        new_tasks = self._new_tasks(timed, due, mode, after)
        results = self.backend.enqueue(new_tasks, now, self.config.publish_queued_tasks)
        return [
            self._stored_handle(payload, queue, result)
            for (payload, queue), result in zip(timed, results, strict=True)
        ]

    def _stored_handle(self, payload: TaskPayload, queue: str, result: Enqueued) -> Task:
        """The handle of what is stored: the new task, or the equal one already there."""
        if result.existing_payload is not None:
            with contextlib.suppress(PayloadError):  # a broken stored copy: describe ours
                payload = decode_stored_payload(payload.id, result.existing_payload)
        return Task(self, payload=payload, queue=queue, state=result.state, score=result.score)

    def _run_eagerly(self, payload: TaskPayload, queue: str) -> Task:
        if payload.max_queue_size is not None:
            size = self.get_total_queue_size(queue)
            if size >= payload.max_queue_size:
                raise QueueFullException(
                    f"queue {queue!r} holds {size} tasks (max_queue_size "
                    f"{payload.max_queue_size}); the task was not run"
                )
        task = Task(self, payload=payload, queue=queue, state=None)
        func, batch = self.resolve_function(payload.func)
        runner = self.runner_class_for(payload.runner_class)(self)
        with running([task], batch, payload.func):
            value = runner.run_eager_task(task, running_to_end(func, payload.func), batch)
        task.keep_eager_result(value)
        return task

    # --- running ------------------------------------------------------------------------

    def run_worker(
        self,
        queues: Sequence[str] | None = None,
        exclude_queues: Sequence[str] | None = None,
        max_workers_per_queue: int | None = None,
        executor: Executor | None = None,
        concurrency: int = 1,
        *,
        once: bool = False,
    ) -> None:
        """Run a worker in this process (see ``Worker``); ``once=True`` returns when idle."""
        from typedtiger.worker import Worker

        Worker(
            self,
            queues=queues,
            exclude_queues=exclude_queues,
            max_workers_per_queue=max_workers_per_queue,
            executor=executor,
            concurrency=concurrency,
        ).run(once=once)

    def run_worker_with_args(self, args: Sequence[str]) -> None:
        """Run a worker with ``typedtiger worker`` command-line arguments, on this Tiger."""
        from typedtiger.commands.worker import run_worker_command

        run_worker_command(self, list(args))
