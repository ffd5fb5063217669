"""Request checks and response headers of ``forensight serve`` (one ASGI middleware).

In order, for every HTTP request:

1. **Host** (when bound to loopback): the ``Host`` header must name this machine
   (``127.0.0.1``, ``localhost``, ``::1`` or the bound address), so a web page elsewhere
   cannot reach the app through DNS rebinding. HTTP 400 ``bad_host`` otherwise.
2. **Cross-site writes**: a POST / DELETE whose ``Origin`` is not this server (or that a browser
   marks ``Sec-Fetch-Site: cross-site``) is refused with 403 ``cross_origin``, so another site
   open in the same browser cannot submit or delete jobs.
3. **Token** (when ``--token`` is set): every request must carry it, as
   ``Authorization: Bearer TOKEN``, the ``X-Forensight-Token`` header, or the cookie a browser
   gets by opening any page once with ``?token=TOKEN`` (it is then redirected to the same page
   without the token in its address). 401 ``token_required`` otherwise. Compared in constant time.

Every response gets ``Content-Security-Policy`` (scripts only from this server; no inline
script, no plug-ins, framing only by itself), ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer`` and ``X-Frame-Options: SAMEORIGIN``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "CSP", "SecurityMiddleware", "hostname_of", "is_api_path"]

COOKIE = "forensight_token"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"SAMEORIGIN")]

#: ``(path, status, reason, message) -> Response``: how the app renders an error (JSON or page).
ErrorRenderer = Callable[[str, int, str, str], Response]


def is_api_path(path: str) -> bool:
    """True for the JSON API (errors there are JSON; elsewhere HTML pages)."""
    return path.startswith("/api/") or path == "/openapi.json"


def hostname_of(host_header: str) -> str:
    """``"127.0.0.1:8000"`` → ``"127.0.0.1"``, ``"[::1]:8000"`` → ``"::1"``, lower case."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class SecurityMiddleware:
    """The checks of the module docstring around ``app``.

    Args:
        app: the ASGI app.
        token: the shared secret, or None (no token required).
        allowed_hosts: host names the ``Host`` header may name; None = any (non-loopback binds,
            where the token guards).
        render_error: builds the error response (JSON for the API, a page elsewhere).
    """

    def __init__(self, app: ASGIApp, token: str | None, allowed_hosts: set[str] | None,
                 render_error: ErrorRenderer) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.allowed_hosts = {h.lower() for h in allowed_hosts} if allowed_hosts is not None else None
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        headers = Headers(scope=scope)
        path = scope.get("path", "/")
        host = headers.get("host", "")
        if self.allowed_hosts is not None and hostname_of(host) not in self.allowed_hosts:
            await self.render_error(path, 400, "bad_host", "this server only answers requests addressed to "
                                                           "this machine (127.0.0.1 / localhost)")(scope, receive, send)
            return
        if scope["method"] not in _SAFE_METHODS and not _same_origin(headers, host):
            await self.render_error(path, 403, "cross_origin", "requests from other web sites are refused")(
                scope, receive, send)
            return
        if self.token is not None and not self._authorised(headers):
            response = self._token_from_query(scope, path)
            if response is None:
                response = self.render_error(
                    path, 401, "token_required",
                    "this server needs its access token: send 'Authorization: Bearer TOKEN' (API) or open "
                    "the page once as /?token=TOKEN (browser)")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _ok(self, given: str | None) -> bool:
        return given is not None and self.token is not None and hmac.compare_digest(given.encode(), self.token)

    def _authorised(self, headers: Headers) -> bool:
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        cookie = _cookie(headers.get("cookie", ""), COOKIE)
        return any(self._ok(v) for v in (bearer, headers.get("x-forensight-token"), cookie))

    def _token_from_query(self, scope: Scope, path: str) -> Response | None:
        """A page opened with a valid ``?token=``: redirect to it without the token, set the cookie."""
        if scope["method"] != "GET" or is_api_path(path):
            return None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = next((v for k, v in query if k == "token"), None)
        if not self._ok(given):
            return None
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        response = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
        response.set_cookie(COOKIE, given or "", httponly=True, samesite="strict", path="/")
        return response


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def _same_origin(headers: Headers, host: str) -> bool:
    if headers.get("sec-fetch-site", "") == "cross-site":
        return False
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-origin request (curl, scripts, same-origin navigation)
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.strip().lower()


def _with_headers(send: Send) -> Callable[[Message], Awaitable[None]]:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra: list[Any] = [(k, v) for k, v in _HEADERS if k not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped
