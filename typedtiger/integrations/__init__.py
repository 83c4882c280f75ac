"""Integrations with other libraries: Flask, Rollbar (the structlog processor is
``typedtiger.logging``). Each is imported on its own; none is imported by the package."""
