"""The console script tunes the garbage collector; importing typedtiger never does."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_importing_the_cli_leaves_the_applications_gc_alone() -> None:
    code = "import gc, typedtiger.cli, typedtiger; print(gc.get_freeze_count(), gc.isenabled())"
    assert _python(code) == "0 True"


def test_the_console_script_freezes_what_it_loaded_and_re_enables_the_gc() -> None:
    code = (
        "import gc, sys\n"
        "from typedtiger._console import main\n"
        "sys.argv = ['typedtiger', '--version']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(gc.get_freeze_count() > 1000, gc.isenabled())\n"
    )
    assert _python(code) == "True True"
