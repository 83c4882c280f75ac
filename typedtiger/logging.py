"""Structured logging (public path): ``typedtiger_processor``, the structlog processor adding the
running task to log events, and ``setup_structlog``. They live in ``typedtiger._logging``, below
the commands and ``Tiger(setup_structlog=True)`` that use them."""

from typedtiger._logging import setup_structlog, typedtiger_processor

__all__ = ["setup_structlog", "typedtiger_processor"]
