"""Rollbar integration: report permanent task failures to Rollbar (optional extra).

Install with ``pip install typedtiger[rollbar]``. The ``rollbar`` package is imported when a
handler that reports through it is created, never when this module is imported, so importing
``typedtiger.rollbar`` (or ``typedtiger.integrations.rollbar``) works without it.

``StructlogRollbarHandler`` reports typedtiger's error-level task events (a task that failed
for good, a task whose payload was quarantined, a task that cannot be imported) with the
task's function, queue, exception name and traceback. Reports are grouped by event, function,
exception name and top-level queue (TaskTiger's grouping). It can be used two ways:

* as a ``logging.Handler``, as in TaskTiger's README, when structlog hands its events to the
  standard library (``structlog.stdlib.LoggerFactory``)::

      rollbar.init(ROLLBAR_ACCESS_TOKEN, ENVIRONMENT, allow_logging_basic_config=False)
      handler = StructlogRollbarHandler("typedtiger")
      handler.setLevel(logging.ERROR)
      logging.getLogger("typedtiger").addHandler(handler)

* as a structlog processor, placed before the renderer (it returns the event unchanged)::

      structlog.configure(processors=[..., typedtiger_processor,
                                      StructlogRollbarHandler("typedtiger"),
                                      structlog.processors.JSONRenderer()])

``send`` replaces the call to ``rollbar.report_message`` (tests pass a fake transport).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import sys
import traceback
from collections.abc import Collection, Mapping, MutableMapping
from typing import Any, Final, Protocol

__all__ = ["RollbarSender", "StructlogRollbarHandler", "report_to_rollbar"]

#: The fields a report's title is made of, in order; they decide how Rollbar groups reports.
TITLE_KEYS: Final = ("event", "func", "exception_name", "queue")

#: structlog method names -> logging levels.
_METHOD_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "err": logging.ERROR,
    "exception": logging.ERROR,
    "fatal": logging.CRITICAL,
    "critical": logging.CRITICAL,
}

#: Attributes every LogRecord has; anything else was passed as ``extra``.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime"}


class RollbarSender(Protocol):
    """Sends one report: the signature of ``rollbar.report_message`` as the handler calls it."""

    def __call__(
        self,
        message: str,
        level: str,
        extra_data: dict[str, Any],
        payload_data: dict[str, Any],
    ) -> object: ...


def _rollbar_module() -> Any:
    try:
        return importlib.import_module("rollbar")
    except ImportError as exc:
        raise ImportError(
            "typedtiger.rollbar needs the rollbar package: pip install 'typedtiger[rollbar]' "
            "(or pass send= to report elsewhere)"
        ) from exc


def report_to_rollbar(
    message: str, level: str, extra_data: dict[str, Any], payload_data: dict[str, Any]
) -> object:
    """Send a report with ``rollbar.report_message`` (rollbar must be initialised)."""
    module = _rollbar_module()
    return module.report_message(message, level, extra_data=extra_data, payload_data=payload_data)


def _rollbar_level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = json.loads(json.dumps(dict(data), default=repr))
    return safe


def _traceback_text(exc_info: object) -> str | None:
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        return "".join(traceback.format_exception(exc_info))
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[1] is not None:
        return "".join(traceback.format_exception(*exc_info))
    return None


class StructlogRollbarHandler(logging.Handler):
    """Report typedtiger's error-level task events to Rollbar.

    ``prefix`` starts every report's title (``"<prefix>: event=error func=... queue=..."``).
    Events below ``level`` (ERROR by default; ``setLevel`` changes it) are ignored, as are
    events that concern no task (no ``task_id``/``task_ids``). ``events`` keeps only the
    named events (None: every event that qualifies). ``send`` replaces
    ``rollbar.report_message``; without it the rollbar package must be installed.
    """

    def __init__(
        self,
        prefix: str,
        level: int = logging.ERROR,
        *,
        send: RollbarSender | None = None,
        events: Collection[str] | None = None,
    ) -> None:
        super().__init__(level)
        if send is None:
            _rollbar_module()  # fail now, with the install hint, rather than at the first error
        self.prefix = prefix
        self.send: RollbarSender = send if send is not None else report_to_rollbar
        self.events = None if events is None else frozenset(events)

    # --- what is reported -------------------------------------------------------------------

    def format_title(self, data: Mapping[str, Any]) -> str:
        """The report's title: the prefix and the grouping fields present in ``data``."""
        fields = []
        for key in TITLE_KEYS:
            if data.get(key) is None:
                continue
            value = str(data[key])
            if key == "queue":
                value = value.split(".", 1)[0]
            fields.append(f"{key}={value}")
        return f"{self.prefix}: {' '.join(fields)}"

    def wants(self, levelno: int, data: Mapping[str, Any]) -> bool:
        """Whether an event at ``levelno`` with ``data`` is reported."""
        if levelno < self.level:
            return False
        if "task_id" not in data and "task_ids" not in data:
            return False
        return self.events is None or data.get("event") in self.events

    def report(self, levelno: int, data: Mapping[str, Any]) -> bool:
        """Send ``data`` (a structlog event dict) if it qualifies; whether it was sent."""
        if not self.wants(levelno, data):
            return False
        extra = dict(data)
        exc_info = extra.pop("exc_info", None)
        if exc_info and not extra.get("traceback"):
            extra["traceback"] = _traceback_text(exc_info)
        title = self.format_title(extra)
        self.send(
            title,
            _rollbar_level(levelno),
            _json_safe(extra),
            {"fingerprint": hashlib.sha256(title.encode("utf8")).hexdigest()},
        )
        return True

    # --- as a logging handler ---------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Report a stdlib log record carrying a structlog event (a dict or a JSON object)."""
        try:
            data = self._record_data(record)
            if record.exc_info and "exc_info" not in data and "traceback" not in data:
                data["exc_info"] = record.exc_info
            self.report(record.levelno, data)
        except Exception:
            self.handleError(record)

    @staticmethod
    def _record_data(record: logging.LogRecord) -> dict[str, Any]:
        message = record.msg
        if isinstance(message, Mapping):
            return dict(message)
        if isinstance(message, str) and message.lstrip().startswith("{"):
            try:
                parsed = json.loads(message)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
        data = {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        data.setdefault("event", record.getMessage())
        return data

    # --- as a structlog processor -----------------------------------------------------------

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Report the event if it qualifies and pass it on unchanged."""
        levelno = _METHOD_LEVELS.get(method_name, logging.INFO)
        level_name = event_dict.get("level")
        if isinstance(level_name, str):
            levelno = max(levelno, _METHOD_LEVELS.get(level_name.lower(), logging.NOTSET))
        try:
            self.report(levelno, event_dict)
        except Exception as exc:  # a broken error reporter must not break the worker
            print(f"typedtiger.rollbar: could not report to Rollbar: {exc!r}", file=sys.stderr)
        return event_dict
