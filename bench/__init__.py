"""Benchmarks: typedtiger side by side with TaskTiger 0.26.3 (see bench/README.md).

Nothing here is imported by the library or the tests. This package must stay importable from
TaskTiger's virtualenv too, so only ``ours_driver`` may import typedtiger and only
``tt_driver``/``tt_worker`` may import tasktiger.
"""
