"""The admin CLI's output is safe for a terminal whatever the task data holds (control
characters, C1 escapes, bidi overrides are shown escaped), and ``show`` takes an unambiguous
prefix of a task id."""

from __future__ import annotations

import json
import re
from typing import Final

from click.testing import CliRunner, Result

from tests import tasks
from tests.conftest import run_worker
from tests.keys import wrongtype_key
from typedtiger import TaskSpec, Tiger
from typedtiger.backends.base import NewTask
from typedtiger.cli import main
from typedtiger.clock import ManualClock
from typedtiger.commands._admin_common import printable
from typedtiger.serialization import TaskPayload, encode_payload

#: What must never reach a terminal raw (tab and newline may).
UNSAFE: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE: Final = "\x1b]0;owned\x07\x1b[2J\r\x08\x9b31m\u202eevil"


def _cli(tiger: Tiger, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=tiger)


def _assert_safe(result: Result) -> None:
    for stream in (result.stdout, result.stderr):
        assert not UNSAFE.search(stream), repr(stream)


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("\x1b[2J\r\x07\x7f\x9b") == "\\x1b[2J\\x0d\\x07\\x7f\\x9b"
    assert printable("\u202eevil\u2066") == "\\u202eevil\\u2066"
    assert printable("caf\udce9") == "caf\\udce9"


def test_no_command_prints_task_data_raw(tiger: Tiger, clock: ManualClock) -> None:
    failed = tiger.enqueue(TaskSpec.of(tasks.failing, HOSTILE))
    run_worker(tiger)
    queued = tiger.enqueue(TaskSpec.of(tasks.simple, HOSTILE).evolve(queue="q"))
    tiger.enqueue(TaskSpec.of(tasks.simple, {HOSTILE: HOSTILE}).evolve(queue="q"))
    runs = [
        ("queues",),
        ("tasks", "default", "error"),
        ("tasks", "q", "queued"),
        ("show", failed.id),
        ("show", failed.id[:12]),
        ("show", queued.id, "--json"),
        ("workers",),
        ("retry", failed.id),
        ("tasks", "q", "queued", "--json"),
        ("purge-errors", "--older-than", "0s", "--yes"),
    ]
    outputs = []
    for args in runs:
        result = _cli(tiger, *args)
        assert result.exit_code == 0, (args, result.output)
        _assert_safe(result)
        outputs.append(result.stdout)
    shown = outputs[3]
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x0d\\x08\\x9b31m\\u202eevil" in shown  # the message
    assert "builtins:ValueError" in shown and "Traceback" in shown  # lines kept
    assert "ValueError: \\x1b]0;owned" in outputs[1]
    assert json.loads(outputs[5])["locations"][0]["payload"]["args"] == [HOSTILE]


def test_a_library_error_is_printed_escaped(tiger: Tiger) -> None:
    tiger.backend.client.set(wrongtype_key(tiger), "\x1b[2J")  # type: ignore[attr-defined]
    result = _cli(tiger, "queues")
    assert result.exit_code == 1
    assert "WRONGTYPE" in result.stderr
    _assert_safe(result)


def _store(tiger: Tiger, *ids: str) -> None:
    new = [
        NewTask(
            id=task_id,
            queue="q",
            payload=encode_payload(TaskPayload(id=task_id, func="tests.tasks:simple")),
            due=tiger.clock.now(),
        )
        for task_id in ids
    ]
    tiger.backend.enqueue(new, tiger.clock.now(), False)


def test_show_takes_an_unambiguous_prefix_of_an_id(tiger: Tiger) -> None:
    _store(tiger, "abc123", "abd456", "abd789", "ab*x")
    result = _cli(tiger, "show", "abc", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == "abc123"
    assert "Task abc123" in _cli(tiger, "show", "abc1").stdout
    assert "Task abd456" in _cli(tiger, "show", "abd456").stdout  # a whole id is an id
    assert "Task ab*x" in _cli(tiger, "show", "ab*").stdout  # a glob character is a character

    ambiguous = _cli(tiger, "show", "abd")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr == (
        "Error: 'abd' is ambiguous: 2 task ids start with it (abd456, abd789); give more of it\n"
    )
    none = _cli(tiger, "show", "zz")
    assert none.exit_code == 1
    assert none.stderr == "Error: no task 'zz' in any queue\n"


def test_an_ambiguous_prefix_lists_a_few_ids(tiger: Tiger) -> None:
    _store(tiger, *(f"f{n}" for n in range(8)))
    result = _cli(tiger, "show", "f")
    assert result.exit_code == 1
    found = re.search(r"more than 5 task ids start with it \((.*)\); give more", result.stderr)
    assert found is not None, result.stderr
    listed = found.group(1).split(", ")
    assert len(listed) == 5 and set(listed) < {f"f{n}" for n in range(8)}


def test_a_prefix_of_a_task_with_an_executions_key_names_one_task(tiger: Tiger) -> None:
    task = tiger.enqueue(TaskSpec.of(tasks.failing).evolve(queue="q"))
    run_worker(tiger, queues=["q"])  # writes <prefix>:task:<id>:executions too
    result = _cli(tiger, "show", task.id[:8], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == task.id
