"""Interoperability with the real TaskTiger: one Redis, one prefix, both workers and clients."""
