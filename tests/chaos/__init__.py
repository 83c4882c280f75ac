"""The chaos suite: workers killed, Redis restarted, signals mid-task, lock/unique invariants."""
