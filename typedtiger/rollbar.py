"""Rollbar integration (public path): see ``typedtiger.integrations.rollbar``."""

from typedtiger.integrations.rollbar import (
    TITLE_KEYS,
    RollbarSender,
    StructlogRollbarHandler,
    report_to_rollbar,
)

__all__ = ["TITLE_KEYS", "RollbarSender", "StructlogRollbarHandler", "report_to_rollbar"]
