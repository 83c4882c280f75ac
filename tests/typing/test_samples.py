"""Typing tests: mypy checks every file in samples/ and must report exactly the expected lines.

A sample line ending in ``# E: text`` must get a mypy error containing ``text`` on that line;
``# N: text`` a note (e.g. ``Revealed type is "..."``). Any other error fails the test;
notes nobody asked for ("defined here") are ignored.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from mypy import api

SAMPLES = Path(__file__).parent / "samples"
_EXPECTATION = re.compile(r"#\s*(?P<kind>[EN]):\s*(?P<text>.+?)\s*$")
_REPORT = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*)$")


def _expected(path: Path) -> dict[int, list[tuple[str, str]]]:
    expected: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECTATION.search(line)
        if match:
            kind = "error" if match["kind"] == "E" else "note"
            expected[number].append((kind, match["text"]))
    return expected


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[int, str, str]]]:
    cache = tmp_path_factory.mktemp("mypy-cache")
    stdout, stderr, _status = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--show-absolute-path",
            "--hide-error-context",
            "--no-pretty",
            "--cache-dir",
            str(cache),
            "--config-file",
            "",
            str(SAMPLES),
        ]
    )
    assert not stderr, stderr
    report: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for line in stdout.splitlines():
        match = _REPORT.match(line)
        assert match, f"unexpected mypy output: {line}"
        report[Path(match["file"]).name].append((int(match["line"]), match["kind"], match["text"]))
    return report


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.py")))
def test_sample(sample: str, mypy_report: dict[str, list[tuple[int, str, str]]]) -> None:
    expected = _expected(SAMPLES / sample)
    reported = mypy_report.get(sample, [])
    unexpected = [
        entry
        for entry in reported
        if entry[1] == "error"
        and not any(
            kind == "error" and text in entry[2] for kind, text in expected.get(entry[0], [])
        )
    ]
    missing = [
        (line, kind, text)
        for line, wanted in expected.items()
        for kind, text in wanted
        if not any(r[0] == line and r[1] == kind and text in r[2] for r in reported)
    ]
    assert not unexpected and not missing, f"unexpected: {unexpected}\nmissing: {missing}"
