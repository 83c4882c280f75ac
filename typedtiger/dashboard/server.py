"""Serving the dashboard on its own: the standard library's WSGI server, a thread per request
(a page waits on Redis, not on the CPU)."""

from __future__ import annotations

from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import WSGIApplication

__all__ = ["DashboardServer", "dashboard_server"]


class DashboardServer(ThreadingMixIn, WSGIServer):
    """A WSGI server answering each request in a thread of its own."""

    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def address_string(self) -> str:
        return str(self.client_address[0])  # (no reverse DNS lookup per request)


def dashboard_server(app: WSGIApplication, host: str, port: int) -> DashboardServer:
    """A server for ``app`` listening on ``host:port`` (port 0: any free one); call its
    ``serve_forever()``, and ``shutdown()`` from another thread to stop it."""
    server = make_server(host, port, app, server_class=DashboardServer, handler_class=_Handler)
    assert isinstance(server, DashboardServer)
    return server
