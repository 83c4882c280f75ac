"""Seeing a worker run: Prometheus metrics (``prometheus``, extra ``typedtiger[metrics]``) and
OpenTelemetry traces (``otel``, extra ``typedtiger[otel]``). Each listens to the worker's events
(``typedtiger.worker.events``); neither is imported unless asked for."""
