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


def test_without_the_testing_extra_fake_backend_and_demo_say_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['fakeredis'] = None  # as if the testing extra were not installed\n"
        "import typedtiger, typedtiger.cli, typedtiger.testing  # none needs it at import\n"
        "try:\n"
        "    import typedtiger.backends.fake\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert _python(code) == "FakeBackend needs the testing extra: pip install 'typedtiger[testing]'"
    demo = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['fakeredis'] = None\n"
            "from typedtiger.cli import main; main(['demo'])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert demo.returncode == 1
    assert demo.stderr.strip() == (
        "Error: FakeBackend needs the testing extra: pip install 'typedtiger[testing]'"
    )
