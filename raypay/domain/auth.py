"""API keys and roles: who is calling, and what each caller may do.

A key is ``rpk_`` and 43 URL-safe characters (256 random bits). raypay never keeps a
key in plain text, only its SHA-256 (hex); the first 12 hex digits are the key's *id*,
safe to print and to log. Plain SHA-256 is the right hash for keys this long: a stolen
hash cannot be searched back to its key (nothing like a password's small space), so a
slow hash or a pepper would cost latency and operations and buy nothing.

Where keys are configured (both are read; a key found in either is valid):

    RAYPAY_API_KEYS              "sha256hex:role,...", fixed for the deployment's life
    Redis (adapters/key_store.py) created and revoked while running (``raypay keys``); a
                                 replica caches what it learnt for ``api_key_cache_s``
                                 (1 s by default), which bounds how long a revoked key
                                 keeps working

Roles and what they may read:

    checkout   create payments; read a payment by its id (ids are unguessable; with
               ``?customerId=`` only that customer's); list an order's payments only
               with ``?customerId=`` naming the order's customer (404 otherwise)
    refunds    refund payments and read refunds (``/v1/payments/{id}/refunds``,
               ``/v1/refunds/{id}``, ``/v1/refund-batches``), and read a payment by its
               id (a refund starts from one); a back office's key, never the checkout's
    admin      everything checkout and refunds may, plus any order's payments without a
               customer, and seeding orders (``POST /v1/admin/orders``)
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from raypay.domain.errors import Forbidden, OrderNotFound

KEY_PREFIX = "rpk_"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_BEARER = re.compile(r"^Bearer[ \t]+([\x21-\x7e]{1,256})[ \t]*$", re.IGNORECASE)


class Role(StrEnum):
    CHECKOUT = "checkout"
    REFUNDS = "refunds"
    ADMIN = "admin"


# Money goes out only with the refunds role: a checkout key (in the shop's front end's
# reach) can pay, never pay back.
_GRANTS: dict[Role, frozenset[Role]] = {
    Role.CHECKOUT: frozenset({Role.CHECKOUT}),
    Role.REFUNDS: frozenset({Role.REFUNDS}),
    Role.ADMIN: frozenset({Role.CHECKOUT, Role.REFUNDS, Role.ADMIN}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a valid key: its id (never the key), role and own rate limit."""

    key_id: str
    role: Role
    rate: float | None = None  # requests/s for this key; None: the deployment's default
    burst: int | None = None

    def may(self, needed: Role) -> bool:
        return needed in _GRANTS[self.role]


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(digest: str) -> str:
    return digest[:12]


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    match = _BEARER.match(header)
    return match.group(1) if match else None


def parse_api_keys(text: str) -> dict[str, Principal]:
    """``"sha256hex:role,..."`` (the RAYPAY_API_KEYS setting) by hash; ValueError if malformed."""
    keys: dict[str, Principal] = {}
    for number, item in enumerate(filter(None, (part.strip() for part in text.split(","))), 1):
        digest, _, role = item.partition(":")
        digest = digest.strip().lower()
        if not _HASH.match(digest):
            raise ValueError(f"API key {number}: expected 64 hex digits of SHA-256 before ':'")
        if role.strip() not in set(Role):
            raise ValueError(f"API key {number}: role must be one of {', '.join(Role)}")
        keys[digest] = Principal(key_id(digest), Role(role.strip()))
    return keys


def principal_from(digest: str, fields: dict[str, str]) -> Principal | None:
    """The Principal a stored key record describes; None for a record without a known role."""
    try:
        role = Role(fields.get("role", ""))
    except ValueError:
        return None
    rate, burst = fields.get("rate"), fields.get("burst")
    return Principal(
        key_id(digest), role, float(rate) if rate else None, int(burst) if burst else None
    )


def check_order_access(principal: Principal, customer_id: str | None, owner: str | None) -> None:
    """May ``principal`` list the payments of an order that ``owner`` owns (None: unknown)?

    Admin keys read any order. A checkout key must name the customer, who must own the
    order; otherwise 404, as for paying someone else's order: existence is not revealed.
    """
    if customer_id is None:
        if principal.may(Role.ADMIN):
            return
        raise Forbidden("a checkout key lists an order's payments for its customer: ?customerId=")
    if owner != customer_id:
        raise OrderNotFound("order not found")


class KeyCache:
    """What a replica learnt about key hashes (a Principal, or None for unknown), for ``ttl_s``.

    Bounded, so a flood of random keys cannot grow it without end.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float], max_entries: int = 10_000):
        self.ttl_s, self.clock, self.max_entries = ttl_s, clock, max_entries
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, digest: str) -> tuple[bool, Principal | None]:
        """(known, principal): known is False when the hash was never seen or has expired."""
        entry = self._entries.get(digest)
        if entry is None or entry[0] <= self.clock():
            return False, None
        return True, entry[1]

    def put(self, digest: str, principal: Principal | None) -> None:
        if len(self._entries) >= self.max_entries:
            now = self.clock()
            self._entries = {d: e for d, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[digest] = (self.clock() + self.ttl_s, principal)
