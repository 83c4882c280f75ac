"""The dashboard's WSGI application, called in-process: what each page shows, the paging and
filters, escaping, the actions with their confirmation, CSRF, ``auth`` and read-only mode."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

import attrs
import pytest

from tests import dashboard_tasks
from tests.conftest import run_worker
from tests.keys import layout
from typedtiger import Config, RunningTask, Task, TaskSpec, TaskState, Tiger, WorkerInfo
from typedtiger.backends.redis import RedisBackend
from typedtiger.clock import ManualClock
from typedtiger.dashboard import Dashboard, DashboardRequest, allow_all
from typedtiger.worker.claims import lock_id_for
from typedtiger.worker.registry import WorkerRecord

MARKUP = dashboard_tasks.MARKUP


@attrs.frozen
class Reply:
    status: int
    headers: Mapping[str, str]
    body: str

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', self.body)
        assert found, self.body
        return found.group(1)


class Client:
    """Calls a WSGI application as a browser would, keeping its CSRF cookie."""

    def __init__(self, app: Dashboard, script_name: str = "") -> None:
        self.app = app
        self.script_name = script_name
        self.cookie = ""

    def call(
        self, method: str, path: str, query: str = "", body: bytes = b"", **headers: str
    ) -> Reply:
        environ: dict[str, object] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": self.script_name,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
        }
        if self.cookie:
            environ["HTTP_COOKIE"] = self.cookie
        setup_testing_defaults(environ)
        seen: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: object = None
        ) -> Callable[[bytes], object]:
            seen.append((status, headers))
            return lambda _data: None

        data = b"".join(self.app(environ, start_response))
        status, header_list = seen[0]
        headers_seen = dict(header_list)
        if "Set-Cookie" in headers_seen:
            self.cookie = headers_seen["Set-Cookie"].split(";")[0]
        return Reply(int(status.split()[0]), headers_seen, data.decode())

    def get(self, path: str, **query: object) -> Reply:
        return self.call("GET", path, urlencode(query))

    def post(self, form: Mapping[str, str], **headers: str) -> Reply:
        return self.call("POST", "/act", body=urlencode(form).encode(), **headers)

    def act(self, action: str, **params: str) -> Reply:
        """Open the action's confirmation page, then send its form."""
        page = self.get("/confirm", action=action, **params)
        assert page.status == 200, page.body
        return self.post({"action": action, "csrf": page.csrf(), **params})


@pytest.fixture
def dtiger(backend: RedisBackend) -> Tiger:
    tiger = Tiger(backend, Config(allowed_task_modules=("tests",)))
    tiger.adopt(dashboard_tasks.tiger)
    return tiger


@pytest.fixture
def client(dtiger: Tiger) -> Client:
    return Client(Dashboard(dtiger, auth=allow_all))


def cells(row: str) -> list[str]:
    """The text of each cell of a table row's HTML."""
    return [
        html.unescape(" ".join(re.sub(r"<[^>]+>", " ", cell).split()))
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def errored(tiger: Tiger, message: str = "boom") -> Task:
    task = tiger.enqueue(dashboard_tasks.fail_with.spec(message).evolve(retry=False))
    run_worker(tiger, queues=["dash"])
    return Task.from_id(tiger, "dash", TaskState.ERROR, task.id)


def test_queues_page_shows_counts_oldest_queued_and_pauses(
    dtiger: Tiger, client: Client, clock: ManualClock
) -> None:
    errored(dtiger)
    dtiger.enqueue(dashboard_tasks.noop.spec(1))
    clock.advance(90)
    dtiger.enqueue(dashboard_tasks.noop.spec(2).evolve(queue="other"))
    dtiger.set_queue_system_lock("other", 600)
    page = client.get("/")
    assert page.status == 200
    rows = dict(re.findall(r'<th scope="row">([^<]+)</th>(.*?)</tr>', page.body, re.S))
    assert cells(rows["dash"])[:4] == ["1", "0", "0", "1"]
    assert cells(rows["dash"])[4] == "1m30s"
    assert "paused, 10m left" in rows["other"]
    assert "Unpause" in rows["other"] and "Purge errors" in rows["dash"]


def test_the_oldest_queued_age_and_queued_times_leave_priorities_out(
    dtiger: Tiger, client: Client, clock: ManualClock
) -> None:
    dtiger.enqueue(dashboard_tasks.noop.spec(1))
    clock.advance(60)
    dtiger.enqueue(dashboard_tasks.noop.spec(2).evolve(priority=3))
    clock.advance(30)
    rows = dict(re.findall(r'<th scope="row">([^<]+)</th>(.*?)</tr>', client.get("/").body, re.S))
    assert cells(rows["dash"])[4] == "1m30s"  # (not 30 days more: a priority's head start)
    listed = client.get("/tasks", queue="dash", state="queued").body
    assert "2026-01-01 00:01:00 UTC" in listed and "2025" not in listed


def test_markup_in_arguments_and_errors_is_shown_as_text(dtiger: Tiger, client: Client) -> None:
    task = errored(dtiger, MARKUP)
    for page in (
        client.get("/task", id=task.id),
        client.get("/tasks", queue="dash", state="error"),
    ):
        assert page.status == 200
        assert "<script>" not in page.body and "<b>bold" not in page.body
        assert "&lt;script&gt;" in page.body
    assert "script-src" not in client.get("/").headers["Content-Security-Policy"]


def test_tasks_are_paged_newest_first(dtiger: Tiger, client: Client, clock: ManualClock) -> None:
    ids = []
    for number in range(5):
        ids.append(dtiger.enqueue(dashboard_tasks.noop.spec(number)).id)
        clock.advance(1)
    page = client.get("/tasks", queue="dash", state="queued", limit=2, skip=2)
    shown = re.findall(r"/task\?id=([0-9a-f]+)", page.body)
    assert shown == [ids[2], ids[1]]
    assert "Tasks 3-4 of 5" in page.body
    assert "skip=4" in page.body and "skip=0" in page.body


def test_a_filter_looks_through_pages_for_matches(
    dtiger: Tiger, client: Client, clock: ManualClock
) -> None:
    wanted = dtiger.enqueue(TaskSpec.of(dashboard_tasks.fail_with, "x").evolve(queue="dash")).id
    for number in range(3):
        clock.advance(1)
        dtiger.enqueue(dashboard_tasks.noop.spec(number))
    page = client.get("/tasks", queue="dash", state="queued", func="FAIL_with", limit=1)
    assert re.findall(r"/task\?id=([0-9a-f]+)", page.body) == [wanted]
    assert "1 matching among tasks 1-4 of 4" in page.body
    assert 'rel="next"' not in page.body


def test_an_error_filter_matches_the_last_exception(dtiger: Tiger, client: Client) -> None:
    first = errored(dtiger, "disk full")
    errored(dtiger, "timeout")
    page = client.get("/tasks", queue="dash", state="error", error="DISK")
    assert re.findall(r"/task\?id=([0-9a-f]+)", page.body) == [first.id]


def test_task_page_shows_executions_with_tracebacks(dtiger: Tiger, client: Client) -> None:
    task = errored(dtiger, "the message")
    page = client.get("/task", id=task.id)
    assert "builtins:ValueError: the message" in page.body
    assert "Traceback (most recent call last)" in page.body
    assert "fail_with(&#39;the message&#39;)" in page.body
    assert client.get("/task", id="f" * 64).status == 404


def test_task_page_shows_what_a_task_waits_for_and_what_waits_for_it(
    dtiger: Tiger, client: Client
) -> None:
    first = dtiger.enqueue(dashboard_tasks.fail_with.spec("first"))
    second = dtiger.enqueue(dashboard_tasks.fail_with.spec("second"), after=first)

    waiting = client.get("/task", id=second.id).body
    assert "Waits for 1 task to succeed" in waiting and first.id[:12] in waiting
    assert "when the tasks it waits for have succeeded" in waiting
    awaited = client.get("/task", id=first.id).body
    assert "Waited for by 1 task" in awaited and second.id[:12] in awaited


def test_retry_asks_first_then_queues_the_task(dtiger: Tiger, client: Client) -> None:
    task = errored(dtiger)
    question = client.get("/confirm", action="retry", id=task.id, queue="dash")
    assert f"Queue the errored task {task.id} of dash again?" in question.body
    assert Task.from_id(dtiger, "dash", TaskState.ERROR, task.id)  # (asking changed nothing)
    done = client.post({"action": "retry", "csrf": question.csrf(), "id": task.id, "queue": "dash"})
    assert done.status == 303
    assert done.headers["Location"] == f"/task?id={task.id}&done=retry"
    assert Task.from_id(dtiger, "dash", TaskState.QUEUED, task.id).id == task.id
    shown = client.get("/task", id=task.id, done="retry")
    assert "The task is queued again." in shown.body and "state-queued" in shown.body


@pytest.mark.parametrize(
    ("token", "headers"),
    [
        ("", {}),
        ("0" * 64, {}),
        (None, {"Sec-Fetch-Site": "cross-site"}),
        (None, {"Origin": "http://evil.example"}),
    ],
)
def test_an_action_without_the_pages_token_is_refused(
    dtiger: Tiger, client: Client, token: str | None, headers: dict[str, str]
) -> None:
    task = errored(dtiger)
    page = client.get("/confirm", action="delete", id=task.id, queue="dash")
    form = {"action": "delete", "id": task.id, "queue": "dash"}
    refused = client.post({**form, "csrf": page.csrf() if token is None else token}, **headers)
    assert refused.status == 403
    assert Task.from_id(dtiger, "dash", TaskState.ERROR, task.id)


def test_a_token_is_bound_to_its_browsers_cookie(dtiger: Tiger) -> None:
    app = Dashboard(dtiger, auth=allow_all)
    task = errored(dtiger)
    attacker, victim = Client(app), Client(app)
    token = attacker.get("/confirm", action="delete", id=task.id, queue="dash").csrf()
    victim.get("/")
    form = {"action": "delete", "csrf": token, "id": task.id, "queue": "dash"}
    assert victim.post(form).status == 403
    assert attacker.post(form).status == 303


def test_the_same_origin_is_accepted(dtiger: Tiger, client: Client) -> None:
    task = errored(dtiger)
    page = client.get("/confirm", action="delete", id=task.id, queue="dash")
    form = {"action": "delete", "csrf": page.csrf(), "id": task.id, "queue": "dash"}
    done = client.post(form, Origin="http://127.0.0.1", Sec_Fetch_Site="same-origin")
    assert done.status == 303
    assert dtiger.get_queue_sizes("dash", with_errors=True)[TaskState.ERROR] == 0


def test_delete_cancel_pause_unpause_and_purge(
    dtiger: Tiger, client: Client, clock: ManualClock
) -> None:
    task = errored(dtiger)
    assert client.act("delete", id=task.id, queue="dash").status == 303
    queued = dtiger.enqueue(dashboard_tasks.noop.spec(1))
    assert client.act("cancel", id=queued.id, queue="dash", state="queued").status == 303
    assert dtiger.get_queue_sizes("dash") == {"queued": 0, "active": 0, "scheduled": 0}
    assert client.act("pause", queue="dash", duration="15m").status == 303
    assert dtiger.get_queue_system_lock("dash") == clock.now() + 900
    assert client.act("unpause", queue="dash").status == 303
    assert dtiger.get_queue_system_lock("dash") is None
    errored(dtiger)
    clock.advance(3600)
    errored(dtiger)
    purged = client.act("purge", queue="dash", duration="30m")
    assert purged.headers["Location"] == "/?done=purge&n=1"
    assert "Purged 1 errored task(s)." in client.get("/", done="purge", n=1).body
    assert dtiger.get_queue_sizes("dash", with_errors=True)[TaskState.ERROR] == 1


def test_an_action_on_a_task_that_moved_says_so(dtiger: Tiger, client: Client) -> None:
    task = errored(dtiger)
    page = client.get("/confirm", action="retry", id=task.id, queue="dash")
    task.retry()
    reply = client.post({"action": "retry", "csrf": page.csrf(), "id": task.id, "queue": "dash"})
    assert reply.status == 409
    assert "moved meanwhile" in reply.body


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("/tasks", {"queue": "dash", "state": "done"}, 400),
        ("/tasks", {"queue": "dash", "state": "queued", "skip": "-1"}, 400),
        ("/tasks", {"queue": "dash", "state": "queued", "limit": "201"}, 400),
        ("/confirm", {"action": "explode", "queue": "dash"}, 400),
        ("/confirm", {"action": "pause", "queue": "a..b"}, 400),
        ("/act", {}, 404),
        ("/nothing", {}, 404),
    ],
)
def test_bad_requests_are_refused(
    client: Client, path: str, query: dict[str, str], status: int
) -> None:
    assert client.get(path, **query).status == status


def test_a_bad_duration_is_refused(client: Client) -> None:
    reply = client.act("pause", queue="dash", duration="soon")
    assert reply.status == 400
    assert "not a duration" in reply.body


def test_read_only_shows_no_action_and_refuses_them(dtiger: Tiger) -> None:
    task = errored(dtiger)
    client = Client(Dashboard(dtiger, auth=allow_all, read_only=True))
    for path, query in (("/", {}), ("/task", {"id": task.id})):
        page = client.get(path, **query)
        assert page.status == 200 and "/confirm" not in page.body and "read-only" in page.body
    assert client.get("/confirm", action="retry", id=task.id, queue="dash").status == 403
    token = Client(Dashboard(dtiger, auth=allow_all)).get("/").status  # (any token: refused)
    assert token == 200
    form = {"action": "retry", "csrf": "x", "id": task.id, "queue": "dash"}
    assert client.post(form).status == 403
    assert Task.from_id(dtiger, "dash", TaskState.ERROR, task.id)


def test_the_auth_hook_decides_each_request(dtiger: Tiger) -> None:
    seen: list[tuple[str, str, str | None]] = []

    def readers_only(request: DashboardRequest) -> bool:
        seen.append((request.method, request.path, request.action))
        return request.action is None and request.environ.get("HTTP_X_USER") == "ann"

    task = errored(dtiger)
    client = Client(Dashboard(dtiger, auth=readers_only))
    assert client.get("/").status == 403
    assert client.call("GET", "/", X_User="ann").status == 200
    confirm = client.call(
        "GET", "/confirm", urlencode({"action": "retry", "id": task.id, "queue": "dash"})
    )
    assert confirm.status == 403
    assert client.post({"action": "retry", "id": task.id, "queue": "dash"}).status == 403
    assert seen == [
        ("GET", "/", None),
        ("GET", "/", None),
        ("GET", "/confirm", "retry"),
        ("POST", "/act", "retry"),
    ]


def test_periodic_tasks_show_their_next_run(dtiger: Tiger, client: Client) -> None:
    page = client.get("/periodic")
    assert "tests.dashboard_tasks:every_ten_minutes" in page.body
    assert "every 10m" in page.body
    assert "not stored" in page.body
    run_worker(dtiger, queues=["dash.periodic"])  # (a worker schedules the first run)
    page = client.get("/periodic")
    assert "scheduled</a>, due 2026-01-01 00:10:00 UTC" in page.body
    assert "2026-01-01 00:10:00 UTC (in 10m)" in page.body


def test_locks_page_lists_the_running_tasks_locks_or_every_lock_key(
    dtiger: Tiger, backend: RedisBackend, clock: ManualClock, client: Client
) -> None:
    task = dtiger.enqueue(dashboard_tasks.noop.spec(1).evolve(lock=True))
    lock_id = lock_id_for(task.payload)
    backend.claim("dash", clock.now(), 1)
    backend.acquire_locks("dash", {task.id: lock_id}, clock.now(), 60, clock.now())
    backend.client.set(layout(backend).lock("dash", "foreign"), "a-token")
    page = client.get("/locks")
    assert lock_id in page.body and f"/task?id={task.id}" in page.body
    assert "(in 1m)" in page.body and "foreign" not in page.body
    everything = client.get("/locks", scan=1).body
    assert lock_id in everything and "a-token (a value of another form)" in everything
    # (per queue, on Redis Cluster, each queue has locks of its own: the page names the queue)
    assert ("<th>Queue</th>" in everything) == layout(backend).sharded
    clock.advance(120)
    assert "expired 1m ago" in client.get("/locks").body


def test_the_dashboard_can_be_mounted_under_a_path(dtiger: Tiger) -> None:
    errored(dtiger)
    page = Client(Dashboard(dtiger, auth=allow_all), script_name="/admin/tasks").get("/")
    assert 'href="/admin/tasks/style.css"' in page.body
    assert 'href="/admin/tasks/tasks?queue=dash&amp;state=error"' in page.body
    assert "Path=/admin/tasks;" in page.headers["Set-Cookie"]


def test_workers_page_lists_live_workers_and_their_tasks(
    dtiger: Tiger, client: Client, clock: ManualClock
) -> None:
    assert "No live worker." in client.get("/workers").body
    started = datetime.fromtimestamp(clock.now(), UTC)
    info = WorkerInfo(
        id="7f3c9a10-0000-4000-8000-000000000000",
        host=f"host-{MARKUP}",
        pid=4321,
        queues=("dash",),
        exclude_queues=("dash.bulk",),
        executor="PreforkExecutor",
        concurrency=4,
        started=started,
        last_beat=started,
    )
    record = WorkerRecord(info, clock.now, period=5.0, expires_after=20.0)
    record.job_started("job", [RunningTask(id="a" * 64, queue="dash", func="m:f", started=started)])
    clock.advance(30)
    dtiger.backend.move_due_scheduled(clock.now(), 10, beat=record.beat())
    page = client.get("/workers")
    row = cells(re.findall(r"<tbody>(.*?)</tbody>", page.body, re.S)[0])
    assert row[0] == "7f3c9a10"
    assert row[1] == f"host-{MARKUP}" and "<script>" not in page.body
    assert row[2:6] == ["4321", "dash (not dash.bulk)", "PreforkExecutor", "4"]
    assert row[6:] == ["30s ago", "0s ago", "m:f (dash, for 30s)"]
    assert f'href="/task?id={"a" * 64}"' in page.body
