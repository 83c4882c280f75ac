"""The fork floor of a bare interpreter: ``python -m bench.forkfloor N`` prints JSON.

Only the standard library is imported, so this is what fork + exit + wait costs for the
smallest Python process (compare with the same in a process that has a worker loaded).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status", encoding="utf8") as f:
        rss = next(float(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    cpu = (own_after.ru_utime + own_after.ru_stime) - (own.ru_utime + own.ru_stime)
    child = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(
        json.dumps(
            {
                "per_second": n / seconds,
                "parent_cpu_ms": 1000 * cpu / n,
                "child_cpu_ms": 1000 * child / n,
                "parent_faults": (own_after.ru_minflt - own.ru_minflt) / n,
                "child_faults": (after.ru_minflt - before.ru_minflt) / n,
                "rss_kib": rss,
            }
        )
    )


if __name__ == "__main__":
    main()
