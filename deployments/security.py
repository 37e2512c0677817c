"""The ingress's trust wiring: who calls (API keys) and may they (roles).

* :class:`Admission` is an ASGI middleware in front of every route: body size (413),
  authentication (401; only /healthz, /readyz and the docs are open), JSON content
  type on POST (415) for a method the path takes: an undeclared method is the
  router's 405 with ``Allow``, an unknown path its 404. The key's Principal goes into
  the request scope.
* :func:`require` is the route dependency that checks the role (403) and names the
  bearer scheme in the OpenAPI document.

The Keyring (which key is whose, cached) and the rate limiter are adapters:
raypay/adapters/key_store.py and raypay/adapters/rate_limiter.py.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's signature at run time.
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import Match

from deployments import problems
from raypay.adapters.key_store import Keyring
from raypay.domain.auth import Principal, Role, bearer_token
from raypay.domain.errors import (
    Forbidden,
    PayloadTooLarge,
    RaypayError,
    Unauthorized,
    UnsupportedMediaType,
)

PRINCIPAL = "raypay.principal"  # request scope key of the caller's Principal
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json``, with or without parameters such as ``charset=utf-8``."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class Admission:
    """ASGI middleware: 413, 401 and 415 before a route runs (reads ``app.state.admission``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            receive = await self._admit(scope, receive)
        except RaypayError as exc:
            body = problems.problem_body(exc)
            response = problems.refusal(scope, body, exc.headers() or None)
            return await response(scope, receive, send)
        await self.app(scope, receive, send)

    async def _admit(self, scope: dict[str, Any], receive: Callable) -> Callable:
        config: AdmissionConfig = scope["app"].state.admission
        headers = {name: value for name, value in scope["headers"]}
        has_body = scope["method"] in BODY_METHODS
        path = problems.route_path(scope)
        limit = config.limit_for(path)
        length = headers.get(b"content-length", b"").decode("latin-1")
        if has_body and length and (not length.isdigit() or int(length) > limit):
            raise PayloadTooLarge(f"body is larger than {limit} bytes")

        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        principal = await config.keyring.principal(token) if token else None
        if principal is None and path not in OPEN_PATHS:
            raise Unauthorized(
                "send Authorization: Bearer <API key>"
                if token is None
                else "the API key is unknown or revoked"
            )
        scope[PRINCIPAL] = principal

        if not has_body or not routed(scope):
            return receive  # nothing to read: the router answers 404 or 405 (with Allow)
        if not is_json_media_type(headers.get(b"content-type", b"").decode("latin-1")):
            raise UnsupportedMediaType("send the body as application/json")
        return await _buffered(receive, limit)


def routed(scope: dict[str, Any]) -> bool:
    """Whether a route of the app takes this method on this path."""
    if problems.is_payment_request(scope):
        return True  # every payment: skip matching the app's ~20 routes (~3 % of the replica)
    return any(route.matches(scope)[0] is Match.FULL for route in scope["app"].router.routes)


async def _buffered(receive: Callable, limit: int) -> Callable[[], Awaitable[dict]]:
    """Read the whole body, at most ``limit`` bytes (a chunked body declares no length)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return body
        return await receive()

    return replay


class AdmissionConfig:
    """The keyring, and the body limit: ``max_body_bytes``, or a path's own in ``larger``."""

    def __init__(
        self, keyring: Keyring, max_body_bytes: int, larger: dict[str, int] | None = None
    ) -> None:
        self.keyring, self.max_body_bytes = keyring, max_body_bytes
        self.larger = dict(larger or {})

    def limit_for(self, path: str) -> int:
        return self.larger.get(path, self.max_body_bytes)


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rpk_…`")


def check_role(found: Principal | None, *roles: Role) -> Principal:
    """The caller's Principal, which must hold one of ``roles``: 401 without one, 403 if
    it holds none of them."""
    if found is None:  # Admission lets no anonymous call through; never assume it
        raise Unauthorized("send Authorization: Bearer <API key>")
    if not any(found.may(needed) for needed in roles):
        needs = " or ".join(roles)
        raise Forbidden(f"a {found.role} key may not do this; it needs the {needs} role")
    return found


def require(role: Role, *others: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's Principal, which must hold ``role`` or one of ``others``
    (403 otherwise)."""
    roles = (role, *others)

    async def principal(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Principal:
        return check_role(request.scope.get(PRINCIPAL), *roles)

    return principal


Checkout = Annotated[Principal, Depends(require(Role.CHECKOUT))]
Refunds = Annotated[Principal, Depends(require(Role.REFUNDS))]
# A payment by its id: the checkout that made it, or the back office about to refund it.
PaymentReader = Annotated[Principal, Depends(require(Role.CHECKOUT, Role.REFUNDS))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
