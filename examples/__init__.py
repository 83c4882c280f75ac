"""Example projects using typedtiger (tested by the repository's test run)."""
