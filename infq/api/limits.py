"""Request bodies are bounded before they are read, and refused unread without a key.

FastAPI parses a route's body before it resolves the route's dependencies, so the
API-key check (a dependency) used to run only after the whole body was in memory: a
64 MiB body without a key grew the API's memory by 718 MiB before its 401. This
middleware sits in front of every route:

* each request gets a byte limit by path (Starlette's ``RequestBodyLimitResponder``):
  a declared ``Content-Length`` over it is refused before a byte is read, a chunked
  body the moment its count passes it; both answer 413 through the API's error
  handlers, so in the one error body (or OpenAI's shape under ``/openai/v1``);
* a body sent to ``/v1`` or ``/openai/v1`` without an API key, or with a key that names
  no tenant, is refused with 401 at the first read, before a byte of it is buffered:
  the key is looked up (``tenant_of``, the context's cached lookup that the route's own
  check then reuses) from the headers alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import RequestBodyLimitResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Also the answer of the key check itself (infq.api.context.current_tenant).
MISSING_KEY = "missing API key: send 'Authorization: Bearer <key>'"
UNKNOWN_KEY = "unknown API key"
KEYED_PREFIXES = ("/v1/", "/openai/v1/")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyLimits:
    """ASGI middleware: a body limit per path prefix (the longest match wins, else
    ``default_bytes``), and no body read for a keyed route called without a known key.

    ``tenant_of(scope, key)`` names the key's tenant or ``None``; it is blocking (a
    database lookup on a cache miss) and so runs in the thread pool.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_bytes: int,
        by_prefix: Sequence[tuple[str, int]] = (),
        tenant_of: Callable[[Scope, str], str | None] | None = None,
    ) -> None:
        self.app = app
        self.tenant_of = tenant_of
        self.default_bytes = default_bytes
        self.by_prefix = sorted(by_prefix, key=lambda p: len(p[0]), reverse=True)

    def limit_of(self, path: str) -> int:
        """The body limit of a request to ``path``, in bytes."""
        return next((n for p, n in self.by_prefix if path.startswith(p)), self.default_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        keyed = path.startswith(KEYED_PREFIXES) and scope["method"] in BODY_METHODS
        if keyed:
            key = _key_of(headers)
            if not key:
                receive = _refusing(MISSING_KEY)
            elif await self._unknown(scope, key):
                receive = _refusing(UNKNOWN_KEY)
        limit = self.limit_of(path)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            # Refused at the first read, in the app's own error body (Starlette's
            # responder would replace any answer to such a request with plain text).
            await self.app(scope, _too_large(int(declared), limit), send)
            return
        await RequestBodyLimitResponder(self.app, limit)(scope, receive, send)

    async def _unknown(self, scope: Scope, key: str) -> bool:
        """Whether ``key`` is known to name no tenant. A lookup that fails (the database
        away) decides nothing here: the route's own check then fails the same way, and
        answers through the API's error handlers, which this middleware sits outside."""
        if self.tenant_of is None:
            return False
        try:
            return await run_in_threadpool(self.tenant_of, scope, key) is None
        except Exception:
            return False


def _key_of(headers: Headers) -> str:
    """The API key the request names, as the route's check reads it (the bearer token
    wins over ``X-API-Key``), or ``""``."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "").strip()


def _refusing(why: str) -> Receive:
    """A ``receive`` that refuses to deliver a body: the caller has no (known) key."""

    async def refuse() -> Message:
        raise HTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})

    return refuse


def _too_large(declared: int, limit: int) -> Receive:
    """A ``receive`` that refuses a body declared over the limit, before reading it."""

    async def refuse() -> Message:
        raise HTTPException(413, f"the request body is {declared} bytes; the limit is {limit}")

    return refuse
