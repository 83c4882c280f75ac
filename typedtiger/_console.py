"""The console script ``typedtiger``: the one place that tunes the garbage collector.

Loading the CLI with the cyclic GC paused, then freezing what was loaded (moved to the permanent
generation, never scanned again), saves a worker start the collections that loading triggers and
the ones of interpreter finalization; forked children inherit the frozen heap. Done here, not at
import of a module, so that an application importing typedtiger keeps its own GC settings.
"""

from __future__ import annotations

import gc


def main() -> None:
    """Run ``typedtiger`` with its modules loaded under a paused, then frozen, GC."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        from typedtiger.cli import main as cli_main
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
    cli_main()
