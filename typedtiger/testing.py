"""Helpers for testing code that uses typedtiger, and the pytest plugin (fixtures)."""

from __future__ import annotations
