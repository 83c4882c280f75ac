"""The HTTP side: handlers enqueue with ``await task.adelay(...)`` and read a task back with
``await Task.afrom_id(...)``, never blocking the event loop on Redis.

Run it with ``create_app(RedisBackend.from_url("redis://localhost:6379/0"))`` under any ASGI
server; its tests use a FakeBackend (test_app.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from examples.fastapi_app.tasks import send_welcome, tiger
from typedtiger import Task, TaskNotFound, TaskState
from typedtiger.backends.base import Backend


class Signup(BaseModel):
    address: str
    name: str


class Queued(BaseModel):
    task_id: str
    queue: str
    state: str


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    await tiger.aclose()  # the async client's connections on this loop


def create_app(backend: Backend | None = None) -> FastAPI:
    """The application; ``backend`` initialises the Tiger (None: it is bound already, as the
    test harness does)."""
    if backend is not None:
        tiger.init(backend=backend)
    app = FastAPI(lifespan=lifespan)

    @app.post("/signups", status_code=202)
    async def signup(body: Signup) -> Queued:
        task = await send_welcome.adelay(body.address, name=body.name)
        return Queued(task_id=task.id, queue=task.queue, state=str(task.state))

    @app.get("/tasks/{queue}/{task_id}")
    async def task_state(queue: str, task_id: str) -> Queued:
        for state in (TaskState.QUEUED, TaskState.ACTIVE, TaskState.SCHEDULED, TaskState.ERROR):
            try:
                task = await Task.afrom_id(tiger, queue, state, task_id)
            except TaskNotFound:
                continue
            return Queued(task_id=task.id, queue=task.queue, state=str(task.state))
        raise HTTPException(404, f"task {task_id} is not stored (done, or never queued)")

    return app
