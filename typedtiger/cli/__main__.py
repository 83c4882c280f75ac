"""``python -m typedtiger.cli``: the ``typedtiger`` program (without the console script's GC
tuning)."""

import sys

from typedtiger.cli import main

sys.exit(main())
