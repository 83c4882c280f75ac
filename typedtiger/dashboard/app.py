"""The dashboard as a WSGI application: ``Dashboard(tiger, auth=...)``.

Pages are rendered on the server by jinja2 with autoescaping on (task arguments and exception
texts are whatever a producer or a task put there), served without any script under a strict
Content-Security-Policy. Reading is GET only; every change is a POST from a confirmation page,
carrying a CSRF token (``csrf``). ``auth`` decides each request; ``read_only`` drops the
actions altogether.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import Final
from urllib.parse import parse_qs, urlencode
from wsgiref.types import StartResponse, WSGIEnvironment

import attrs
import jinja2

from typedtiger.backends.base import TaskState
from typedtiger.commands._admin_common import format_seconds, human_time
from typedtiger.dashboard import pages
from typedtiger.dashboard.actions import ACTIONS, ActionError, Params
from typedtiger.dashboard.csrf import Csrf, same_origin
from typedtiger.exceptions import BackendUnavailable, TaskNotFound, TypedTigerError
from typedtiger.tiger import Tiger

__all__ = ["Auth", "Dashboard", "DashboardRequest", "allow_all"]

_SECURITY_HEADERS: Final = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]
_MAX_FORM: Final = 64 * 1024
#: The most tasks a page lists (and locks the locks page reads).
_MAX_PAGE: Final = 200
_STATUS: Final = {
    200: "200 OK",
    303: "303 See Other",
    400: "400 Bad Request",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    413: "413 Content Too Large",
    503: "503 Service Unavailable",
}


@attrs.frozen
class DashboardRequest:
    """What the ``auth`` hook decides on."""

    #: GET, HEAD or POST.
    method: str
    #: The path inside the dashboard ("/", "/tasks", "/confirm", "/act", ...).
    path: str
    #: The action asked for (``retry``, ``delete``, ``cancel``, ``purge``, ``pause``,
    #: ``unpause``) on a confirmation page or its POST; None for a page that only reads.
    action: str | None
    #: The WSGI environ (headers as ``HTTP_*``, ``REMOTE_ADDR``, what a middleware put there).
    environ: WSGIEnvironment


#: Decides whether a request may be served; a request it refuses gets 403.
Auth = Callable[[DashboardRequest], bool]


def allow_all(request: DashboardRequest) -> bool:
    """An ``auth`` hook letting everyone in: for a dashboard only trusted people can reach."""
    return True


class _HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@attrs.frozen
class _Response:
    code: int
    body: bytes
    headers: list[tuple[str, str]]


@attrs.frozen
class _Call:
    """One request as the handlers see it."""

    method: str
    path: str
    query: Mapping[str, str]
    environ: WSGIEnvironment
    #: The browser's CSRF nonce, or a fresh one sent back in a cookie.
    nonce: str
    new_nonce: bool

    def url(self, path: str, **query: object) -> str:
        root = str(self.environ.get("SCRIPT_NAME", "")).rstrip("/")
        args = {key: str(value) for key, value in query.items() if value not in (None, "")}
        return root + path + (f"?{urlencode(args)}" if args else "")


class Dashboard:
    """The dashboard of ``tiger``'s queues, as a WSGI application.

    ``auth`` is called for every request (pass ``allow_all`` knowingly); ``read_only`` shows no
    action and refuses them all. ``secret`` signs the CSRF tokens: give the same one to every
    process serving the dashboard behind one address (by default each makes its own).
    """

    def __init__(
        self,
        tiger: Tiger,
        *,
        auth: Auth,
        read_only: bool = False,
        secret: bytes | None = None,
        page_size: int = 50,
        executions: int = 20,
    ) -> None:
        if not 1 <= page_size <= _MAX_PAGE:
            raise ValueError(f"page_size must be between 1 and {_MAX_PAGE}, got {page_size!r}")
        self._tiger = tiger
        self._auth = auth
        self._read_only = read_only
        self._csrf = Csrf(secret) if secret is not None else Csrf()
        self._page_size = page_size
        self._executions = executions
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("typedtiger.dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._style = resources.files("typedtiger.dashboard").joinpath("style.css").read_bytes()
        self._routes: dict[str, Callable[[_Call], _Response]] = {
            "/": self._queues,
            "/tasks": self._tasks,
            "/task": self._task,
            "/workers": self._workers,
            "/periodic": self._periodic,
            "/locks": self._locks,
            "/confirm": self._confirm,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        call = self._call(environ)
        try:
            response = self._respond(call)
        except _HttpError as exc:
            response = self._error(call, exc.code, str(exc))
        except TaskNotFound as exc:
            response = self._error(call, 409, f"The task has moved meanwhile: {exc}")
        except BackendUnavailable as exc:
            response = self._error(call, 503, f"Redis cannot be reached: {exc}")
        except TypedTigerError as exc:
            response = self._error(call, 503, f"Storage error: {exc}")
        headers = [*response.headers, *_SECURITY_HEADERS]
        if call.new_nonce:
            secure = environ.get("wsgi.url_scheme") == "https"
            path = str(environ.get("SCRIPT_NAME", "")) or "/"
            headers.append(("Set-Cookie", Csrf.cookie(call.nonce, path, secure)))
        start_response(_STATUS[response.code], headers)
        return [b"" if call.method == "HEAD" else response.body]

    def _call(self, environ: WSGIEnvironment) -> _Call:
        query = {
            key: values[0]
            for key, values in parse_qs(
                str(environ.get("QUERY_STRING", "")), keep_blank_values=True
            ).items()
        }
        nonce = Csrf.nonce_of(str(environ.get("HTTP_COOKIE", "")))
        return _Call(
            method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
            path=str(environ.get("PATH_INFO", "")) or "/",
            query=query,
            environ=environ,
            nonce=nonce or Csrf.new_nonce(),
            new_nonce=nonce is None,
        )

    def _respond(self, call: _Call) -> _Response:
        if call.method == "POST" and call.path == "/act":
            form = self._form(call)
            self._authorize(call, form.get("action", ""))
            return self._act(call, form)
        if call.method not in ("GET", "HEAD"):
            raise _HttpError(405, "Only GET, HEAD and POST (to /act) are served.")
        if call.path == "/style.css":
            self._authorize(call, None)
            return _Response(200, self._style, [("Content-Type", "text/css; charset=utf-8")])
        handler = self._routes.get(call.path)
        if handler is None:
            raise _HttpError(404, "No such page.")
        self._authorize(call, call.query.get("action", "") if call.path == "/confirm" else None)
        return handler(call)

    def _authorize(self, call: _Call, action: str | None) -> None:
        if action is not None:
            if self._read_only:
                raise _HttpError(403, "This dashboard is read-only.")
            if action not in ACTIONS:
                raise _HttpError(400, "No such action.")
        request = DashboardRequest(call.method, call.path, action, call.environ)
        if not self._auth(request):
            raise _HttpError(403, "Not allowed.")

    # --- rendering -----------------------------------------------------------------------

    def _render(
        self, call: _Call, template: str, status: int = 200, **context: object
    ) -> _Response:
        now = self._tiger.clock.now()
        done = ACTIONS.get(call.query.get("done", ""))
        count = call.query.get("n", "")
        body = self._templates.get_template(template).render(
            url=call.url,
            path=call.path,
            csrf=self._csrf.token(call.nonce),
            read_only=self._read_only,
            message=None
            if done is None
            else done.done.format(n=int(count) if count.isdigit() else 0),
            when=human_time,
            seconds=format_seconds,
            ago=lambda then: format_seconds(max(0.0, now - then)),
            until=lambda then: format_seconds(max(0.0, then - now)),
            now=now,
            states=list(TaskState),
            **context,
        )
        # (lone surrogates, kept from bytes that were not UTF-8, are shown escaped)
        encoded = body.encode("utf-8", "backslashreplace")
        return _Response(status, encoded, [("Content-Type", "text/html; charset=utf-8")])

    def _error(self, call: _Call, code: int, message: str) -> _Response:
        return self._render(call, "error.html", code, code=code, error=message)

    # --- pages ---------------------------------------------------------------------------

    def _queues(self, call: _Call) -> _Response:
        return self._render(call, "queues.html", overview=pages.overview(self._tiger))

    def _tasks(self, call: _Call) -> _Response:
        queue = call.query.get("queue", "")
        state = call.query.get("state", "")
        if not queue or state not in TaskState.__members__.values():
            raise _HttpError(400, "A queue and a state (queued, active, scheduled, error).")
        skip = _number(call.query, "skip", 0, 0, math.inf)
        limit = _number(call.query, "limit", self._page_size, 1, _MAX_PAGE)
        filters = pages.Filters(call.query.get("func", ""), call.query.get("error", ""))
        listed = pages.task_list(self._tiger, queue, TaskState(state), skip, limit, filters)
        return self._render(call, "tasks.html", listed=listed, scan_budget=pages.SCAN_BUDGET)

    def _task(self, call: _Call) -> _Response:
        task_id = call.query.get("id", "").strip()
        if not task_id:
            raise _HttpError(400, "Which task? (?id=...)")
        found = pages.task_locations(self._tiger, task_id, self._executions)
        code = 200 if found else 404
        wait = self._tiger.backend.dependencies(task_id)
        return self._render(
            call, "task.html", code, task_id=task_id, locations=found, dependencies=wait
        )

    def _workers(self, call: _Call) -> _Response:
        return self._render(call, "workers.html", workers=self._tiger.get_workers())

    def _periodic(self, call: _Call) -> _Response:
        return self._render(call, "periodic.html", rows=pages.periodic_tasks(self._tiger))

    def _locks(self, call: _Call) -> _Response:
        scan = call.query.get("scan") == "1"
        rows, more = pages.held_locks(self._tiger, scan=scan, limit=_MAX_PAGE)
        # (per-queue layout of Redis Cluster: each queue has locks of its own)
        per_queue = any(row.lock.queue is not None for row in rows)
        return self._render(
            call, "locks.html", rows=rows, more=more, scan=scan, per_queue=per_queue
        )

    # --- actions -------------------------------------------------------------------------

    def _confirm(self, call: _Call) -> _Response:
        action = ACTIONS[call.query["action"]]
        try:
            params = Params.read(call.query)
        except ActionError as exc:
            raise _HttpError(400, str(exc)) from exc
        return self._render(
            call,
            "confirm.html",
            action=action,
            params=params,
            question=action.question(params),
            back=call.query.get("back", ""),
        )

    def _form(self, call: _Call) -> dict[str, str]:
        kind = str(call.environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise _HttpError(400, "Actions are sent as forms.")
        try:
            length = int(call.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise _HttpError(400, "A bad Content-Length.") from None
        if length > _MAX_FORM:
            raise _HttpError(413, "The form is too large.")
        body = call.environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _HttpError(400, "The form is not UTF-8.") from None
        return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}

    def _act(self, call: _Call, form: Mapping[str, str]) -> _Response:
        environ = call.environ
        if not self._csrf.check(
            None if call.new_nonce else call.nonce, form.get("csrf", "")
        ) or not same_origin(
            environ.get("HTTP_ORIGIN"),
            environ.get("HTTP_SEC_FETCH_SITE"),
            str(environ.get("HTTP_HOST", "")),
        ):
            raise _HttpError(
                403, "The form's security token does not match: reload the page and try again."
            )
        action = ACTIONS[form["action"]]
        try:
            done = action.perform(self._tiger, Params.read(form))
        except ActionError as exc:
            raise _HttpError(400, str(exc)) from exc
        query = {**done.query, "done": action.name}
        if done.count is not None:
            query["n"] = str(done.count)
        return _Response(303, b"", [("Location", call.url(done.path, **query))])


def _number(query: Mapping[str, str], name: str, default: int, low: float, high: float) -> int:
    text = query.get(name, "")
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise _HttpError(400, f"{name} must be a whole number from {low:.0f}.")
    return int(text)
