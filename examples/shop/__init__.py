"""A tiny shop: the example project docs/testing.md walks through."""
