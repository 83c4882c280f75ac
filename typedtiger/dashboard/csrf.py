"""Cross-site request forgery protection for the dashboard's forms (no sessions needed).

A browser gets a random nonce in a cookie (HttpOnly, SameSite=Strict); each form carries
``HMAC(secret, nonce)``. A POST is accepted only if its form token matches its own cookie's
nonce under the secret: another site can neither read the cookie nor compute the token (a
cookie it managed to plant, from a sibling subdomain say, has no token that matches without
the secret). Requests a browser marks as cross-site (``Sec-Fetch-Site``) or whose ``Origin``
is another host are refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from http.cookies import CookieError, SimpleCookie
from typing import Final
from urllib.parse import urlsplit

import attrs

__all__ = ["COOKIE", "Csrf", "same_origin"]

COOKIE: Final = "typedtiger_csrf"
_NONCE: Final = re.compile(r"[0-9a-f]{32}")


@attrs.frozen
class Csrf:
    """Tokens under ``secret`` (random per process unless given: several processes serving one
    dashboard need the same one)."""

    secret: bytes = attrs.field(factory=lambda: secrets.token_bytes(32), repr=False)

    def token(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_hex(16)

    @staticmethod
    def nonce_of(cookie_header: str) -> str | None:
        """The nonce in a ``Cookie`` header, if it holds a well-formed one."""
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header)
        except CookieError:
            return None
        morsel = cookies.get(COOKIE)
        if morsel is None or not _NONCE.fullmatch(morsel.value):
            return None
        return morsel.value

    @staticmethod
    def cookie(nonce: str, path: str, secure: bool) -> str:
        """The ``Set-Cookie`` value carrying ``nonce``."""
        flags = "; Secure" if secure else ""
        return f"{COOKIE}={nonce}; Path={path or '/'}; HttpOnly; SameSite=Strict{flags}"

    def check(self, nonce: str | None, token: str) -> bool:
        return nonce is not None and hmac.compare_digest(self.token(nonce), token)


def same_origin(origin: str | None, fetch_site: str | None, host: str) -> bool:
    """Whether a state-changing request may come from where the browser says it does: not
    marked cross-site, and an ``Origin`` (when sent) on the host the request was sent to. Ports
    and schemes are not compared: a proxy terminating TLS changes them; the token decides."""
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    if origin is None:
        return True  # (a browser that sends neither header; the token still decides)
    hostname = urlsplit(origin).hostname
    return hostname is not None and hostname == urlsplit(f"//{host}").hostname
