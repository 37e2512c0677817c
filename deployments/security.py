"""The ingress's trust wiring: who calls (API keys), may they (roles), how often (rate limits).

* :class:`Guard` is an ASGI middleware in front of every route: body size (413),
  authentication (401; only /healthz, /readyz and the docs are open), JSON content
  type on POST (415). The key's Principal goes into the request scope.
* :func:`require` is the route dependency that checks the role (403) and names the
  bearer scheme in the OpenAPI document.
* :class:`Keyring` finds a key's Principal: RAYPAY_API_KEYS first, then Redis, with
  what it learnt cached for ``api_key_cache_s`` and one lookup in flight per key.
* :class:`RateLimiter` is a token bucket in Redis per key and per customer, both
  checked and taken in one Lua call: one round trip per request, shared by all replicas.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's signature at run time.
import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from deployments import problems
from raypay.adapters.redis_store import translated
from raypay.domain.auth import (
    KeyCache,
    Principal,
    Role,
    bearer_token,
    hash_key,
    parse_api_keys,
    principal_from,
    redis_key,
)
from raypay.domain.cards import is_json_media_type
from raypay.domain.errors import (
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    RaypayError,
    Unauthorized,
    UnsupportedMediaType,
    to_problem,
)
from raypay.settings import Settings

PRINCIPAL = "raypay.principal"  # request scope key of the caller's Principal
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Keyring:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.configured = parse_api_keys(settings.api_keys)
        self.redis, self.prefix = redis, settings.key_prefix
        self.cache = KeyCache(settings.api_key_cache_s, time.monotonic)
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}

    async def principal(self, key: str) -> Principal | None:
        """The Principal of ``key``, or None if no valid key is like it."""
        digest = hash_key(key)
        if (configured := self.configured.get(digest)) is not None:
            return configured
        known, principal = self.cache.get(digest)
        if known:
            return principal
        if (pending := self._lookups.get(digest)) is not None:  # one Redis call per key
            return await asyncio.shield(pending)
        lookup = asyncio.ensure_future(self._fetch(digest))
        self._lookups[digest] = lookup
        try:
            return await asyncio.shield(lookup)
        finally:
            self._lookups.pop(digest, None)

    async def _fetch(self, digest: str) -> Principal | None:
        async with translated():
            fields = await self.redis.hgetall(redis_key(self.prefix, digest))
        principal = principal_from(digest, fields) if fields else None
        self.cache.put(digest, principal)
        return principal


# KEYS: buckets; ARGV: rate (tokens/s) and burst per bucket. Takes one token from every
# bucket, or from none when one is empty: then {0, ms until it has one, its index}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local levels, wait, which = {}, 0, 0
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local level, at = tonumber(state[1]), tonumber(state[2])
  if level == nil or at == nil then level, at = burst, now end
  level = math.min(burst, level + math.max(0, now - at) * rate / 1000)
  levels[i] = level
  if level < 1 then
    local ms = math.ceil((1 - level) * 1000 / rate)
    if ms > wait then wait, which = ms, i end
  end
end
if wait > 0 then return {0, wait, which} end
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst * 1000 / rate) + 1000)
end
return {1, 0, 0}
"""


class RateLimiter:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings, self.prefix = settings, settings.key_prefix
        self._take = redis.register_script(_TAKE)

    async def admit(self, principal: Principal, customer_id: str | None = None) -> None:
        """Take a token for the key (and the customer); RateLimited (429) when one is empty."""
        s = self.settings
        buckets: list[tuple[str, str, float, int]] = []
        key_rate = principal.rate if principal.rate is not None else s.rate_limit_per_key
        key_burst = principal.burst or s.rate_limit_per_key_burst
        if key_rate > 0:
            bucket = f"{self.prefix}:rl:key:{principal.key_id}"
            buckets.append(("API key", bucket, key_rate, key_burst))
        if customer_id is not None and s.rate_limit_per_customer > 0:
            buckets.append(
                (
                    "customer",
                    f"{self.prefix}:rl:customer:{customer_id}",
                    s.rate_limit_per_customer,
                    s.rate_limit_per_customer_burst,
                )
            )
        if not buckets:
            return
        args = [value for _, _, rate, burst in buckets for value in (rate, burst)]
        async with translated():
            allowed, wait_ms, which = await self._take(keys=[b[1] for b in buckets], args=args)
        if not allowed:
            what = buckets[int(which) - 1][0]
            raise RateLimited(
                f"too many requests for this {what}", retry_after_s=math.ceil(int(wait_ms) / 1000)
            )


class Guard:
    """ASGI middleware: 413, 401 and 415 before a route runs (reads ``app.state.guard``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            receive = await self._admit(scope, receive)
        except RaypayError as exc:
            body = to_problem(exc)
            problems.count_refused(scope, body)
            return await problems.problem_response(body, exc.headers() or None)(
                scope, receive, send
            )
        await self.app(scope, receive, send)

    async def _admit(self, scope: dict[str, Any], receive: Callable) -> Callable:
        config: GuardConfig = scope["app"].state.guard
        headers = {name: value for name, value in scope["headers"]}
        has_body = scope["method"] in BODY_METHODS
        length = headers.get(b"content-length", b"").decode("latin-1")
        if has_body and length and (not length.isdigit() or int(length) > config.max_body_bytes):
            raise PayloadTooLarge(f"body is larger than {config.max_body_bytes} bytes")

        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        principal = await config.keyring.principal(token) if token else None
        if principal is None and problems.route_path(scope) not in OPEN_PATHS:
            raise Unauthorized(
                "send Authorization: Bearer <API key>"
                if token is None
                else "the API key is unknown or revoked"
            )
        scope[PRINCIPAL] = principal

        if not has_body:
            return receive
        if not is_json_media_type(headers.get(b"content-type", b"").decode("latin-1")):
            raise UnsupportedMediaType("send the body as application/json")
        return await _buffered(receive, config.max_body_bytes)


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


class GuardConfig:
    def __init__(self, keyring: Keyring, max_body_bytes: int) -> None:
        self.keyring, self.max_body_bytes = keyring, max_body_bytes


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rpk_…`")


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's Principal, which must hold ``role`` (403 otherwise)."""

    async def principal(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Principal:
        found = request.scope.get(PRINCIPAL)
        if found is None:  # the Guard lets no anonymous call through; never assume it
            raise Unauthorized("send Authorization: Bearer <API key>")
        if not found.may(role):
            raise Forbidden(f"a {found.role} key may not do this; it needs the {role} role")
        return found

    return principal


Checkout = Annotated[Principal, Depends(require(Role.CHECKOUT))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
