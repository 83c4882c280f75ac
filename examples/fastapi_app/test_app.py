"""The FastAPI example end to end: a request queues an async task through the async client, a
worker runs it, the status endpoint follows it (on the harness's FakeBackend). The last test is
an async one (anyio's pytest plugin, on asyncio): it awaits the app and the async client, and
runs the harness between its awaits."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from examples.fastapi_app import tasks
from examples.fastapi_app.app import create_app, lifespan
from typedtiger import Task, TaskState, Tiger
from typedtiger.testing import TigerHarness, fake_tiger


async def request(method: str, path: str, json: object = None) -> httpx.Response:
    app = create_app()
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            return await client.request(method, path, json=json)


def test_a_signup_queues_the_welcome_mail_and_a_worker_sends_it() -> None:
    tasks.mailer.sent.clear()
    with fake_tiger(tasks.tiger) as harness:
        queued = asyncio.run(request("POST", "/signups", {"address": "a@b.c", "name": "Ada"}))

        assert queued.status_code == 202
        body = queued.json()
        assert (body["queue"], body["state"]) == ("email", "queued")
        path = f"/tasks/email/{body['task_id']}"
        assert asyncio.run(request("GET", path)).json()["state"] == "queued"

        result = harness.run_until_idle(raise_errors=True)

        assert result.succeeded == 1
        assert tasks.mailer.sent == [("a@b.c", "Welcome, Ada!")]
        assert asyncio.run(request("GET", path)).status_code == 404  # done: gone


def test_a_bad_request_queues_nothing() -> None:
    with fake_tiger(tasks.tiger) as harness:
        response = asyncio.run(request("POST", "/signups", {"address": "a@b.c"}))

        assert response.status_code == 422
        assert harness.queued() == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the async client is on redis.asyncio: not trio


@pytest.fixture
def typedtiger_app() -> Tiger:
    """The Tiger the plugin's ``typedtiger_harness`` binds to a FakeBackend for each test."""
    return tasks.tiger


@pytest.mark.anyio
async def test_an_async_test_awaits_the_app_and_runs_the_harness(
    typedtiger_harness: TigerHarness,
) -> None:
    tasks.mailer.sent.clear()
    queued = await request("POST", "/signups", {"address": "b@b.c", "name": "Bob"})
    task_id = queued.json()["task_id"]

    task = await Task.afrom_id(tasks.tiger, "email", TaskState.QUEUED, task_id)
    assert task.kwargs == {"name": "Bob"}
    result = typedtiger_harness.run_until_idle(raise_errors=True)

    assert [e.task_id for e in result.executions] == [task_id]
    assert tasks.mailer.sent == [("b@b.c", "Welcome, Bob!")]
    assert (await request("GET", f"/tasks/email/{task_id}")).status_code == 404
