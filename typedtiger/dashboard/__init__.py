"""The web dashboard: queues, tasks, executions, periodic tasks and locks, with actions.

``typedtiger dashboard`` serves it; ``Dashboard(tiger, auth=...)`` is the WSGI application to
mount in an existing one (the ``typedtiger[dashboard]`` extra installs jinja2). See
docs/observability.md for its security notes.
"""

from typedtiger.dashboard.app import Auth, Dashboard, DashboardRequest, allow_all

__all__ = ["Auth", "Dashboard", "DashboardRequest", "allow_all"]
