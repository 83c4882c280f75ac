"""Flask integration (public path): see ``typedtiger.integrations.flask``."""

from typedtiger.integrations.flask import (
    EXTENSION_NAME,
    CommandRegistrar,
    app_context_config,
    get_tiger,
    init_app,
    worker_tiger,
)

__all__ = [
    "EXTENSION_NAME",
    "CommandRegistrar",
    "app_context_config",
    "get_tiger",
    "init_app",
    "worker_tiger",
]
