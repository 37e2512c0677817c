"""API keys and roles (raypay.domain.auth), keys in Redis (raypay.adapters.key_store)
and the trust errors, without Ray or a network."""

from __future__ import annotations

import pickle

import fakeredis
import pytest
from pydantic import ValidationError

from raypay.adapters import key_store
from raypay.domain import auth
from raypay.domain.auth import KeyCache, Principal, Role
from raypay.domain.errors import (
    Forbidden,
    OrderNotFound,
    RateLimited,
    RawCardNumber,
    Unauthorized,
    UnsupportedMediaType,
    problem_code,
)
from raypay.settings import Settings

pytestmark = pytest.mark.unit

CHECKOUT = Principal("abc", Role.CHECKOUT)
REFUNDS = Principal("ghi", Role.REFUNDS)
ADMIN = Principal("def", Role.ADMIN)


@pytest.fixture
def store() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


class TestKeys:
    def test_a_new_key_is_long_random_and_only_its_sha256_names_it(self):
        key = auth.new_key()
        assert key.startswith("rpk_") and len(key) == 4 + 43
        assert key != auth.new_key()
        digest = auth.hash_key(key)
        assert len(digest) == 64 and key not in digest
        assert auth.key_id(digest) == digest[:12]

    @pytest.mark.parametrize(
        ("header", "token"),
        [
            ("Bearer rpk_abc", "rpk_abc"),
            ("bearer rpk_abc", "rpk_abc"),
            ("Bearer   rpk_abc  ", "rpk_abc"),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearer a b", None),
            ("Basic dXNlcg==", None),
            ("rpk_abc", None),
            ("", None),
            (None, None),
            ("Bearer " + "x" * 257, None),
        ],
    )
    def test_bearer_token_takes_exactly_one_token(self, header, token):
        assert auth.bearer_token(header) == token

    def test_configured_keys_parse_by_hash_with_their_role(self):
        a, b = auth.hash_key("rpk_a"), auth.hash_key("rpk_b")
        keys = auth.parse_api_keys(f" {a}:checkout , {b.upper()}:admin,")
        assert keys == {a: Principal(a[:12], Role.CHECKOUT), b: Principal(b[:12], Role.ADMIN)}
        assert auth.parse_api_keys("") == {}

    @pytest.mark.parametrize(
        "text",
        [
            "rpk_plaintext:admin",
            f"{'a' * 63}:admin",
            f"{'a' * 64}:root",
            f"{'a' * 64}",
            "zz:checkout",
        ],
    )
    def test_malformed_configured_keys_are_refused(self, text):
        with pytest.raises(ValueError, match="API key 1"):
            auth.parse_api_keys(text)

    def test_settings_refuse_malformed_keys_at_start(self, monkeypatch):
        monkeypatch.setenv("RAYPAY_API_KEYS", "rpk_plain:admin")
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.setenv("RAYPAY_API_KEYS", f"{auth.hash_key('k')}:checkout")
        assert Settings().api_keys.endswith(":checkout")

    def test_a_stored_record_becomes_a_principal_with_its_own_limit(self):
        digest = auth.hash_key("k")
        assert auth.principal_from(digest, {"role": "admin"}) == Principal(digest[:12], Role.ADMIN)
        limited = auth.principal_from(digest, {"role": "checkout", "rate": "2.5", "burst": "5"})
        assert (limited.rate, limited.burst) == (2.5, 5)
        assert auth.principal_from(digest, {"role": "root"}) is None
        assert auth.principal_from(digest, {}) is None


class TestRoles:
    def test_admin_may_do_what_checkout_may_and_more(self):
        assert CHECKOUT.may(Role.CHECKOUT) and not CHECKOUT.may(Role.ADMIN)
        assert ADMIN.may(Role.CHECKOUT) and ADMIN.may(Role.ADMIN)

    def test_only_refunds_and_admin_keys_may_refund(self):
        assert not CHECKOUT.may(Role.REFUNDS)
        assert REFUNDS.may(Role.REFUNDS) and ADMIN.may(Role.REFUNDS)
        assert not REFUNDS.may(Role.CHECKOUT) and not REFUNDS.may(Role.ADMIN)

    @pytest.mark.parametrize("owner", ["cus_1", None])
    def test_admin_lists_any_orders_payments(self, owner):
        # Allowed means: returns None and raises nothing (an exception fails the test).
        assert auth.check_order_access(ADMIN, None, owner) is None

    @pytest.mark.parametrize("owner", ["cus_1", None])
    def test_checkout_must_name_the_customer(self, owner):
        # The same call as the admin's above, with a checkout key: refused.
        with pytest.raises(Forbidden, match=r"\?customerId="):
            auth.check_order_access(CHECKOUT, None, owner)

    @pytest.mark.parametrize("principal", [CHECKOUT, ADMIN])
    def test_a_named_customer_must_own_the_order_or_it_is_not_found(self, principal):
        auth.check_order_access(principal, "cus_1", "cus_1")
        for owner in ("cus_2", None):
            with pytest.raises(OrderNotFound):
                auth.check_order_access(principal, "cus_1", owner)


class TestKeyCache:
    def test_answers_expire_after_the_ttl_known_or_unknown(self):
        now = [100.0]
        cache = KeyCache(1.0, lambda: now[0])
        assert cache.get("h") == (False, None)
        cache.put("h", CHECKOUT)
        cache.put("bad", None)
        assert cache.get("h") == (True, CHECKOUT) and cache.get("bad") == (True, None)
        now[0] += 1.0
        assert cache.get("h") == (False, None) and cache.get("bad") == (False, None)

    def test_stays_bounded_under_a_flood_of_unknown_keys(self):
        cache = KeyCache(60.0, lambda: 0.0, max_entries=100)
        for n in range(1_000):
            cache.put(f"h{n}", None)
        assert len(cache._entries) <= 100
        assert cache.get("h999") == (True, None)


class TestStoredKeys:
    def test_create_stores_only_the_hash_and_role(self, store):
        key, digest = key_store.create_key(store, "rp", "checkout", label="shop")
        assert store.keys("*") == [f"rp:apikey:{digest}"]
        record = store.hgetall(f"rp:apikey:{digest}")
        assert record["role"] == "checkout" and record["label"] == "shop"
        assert key not in str(record)
        assert key_store.key_exists(store, "rp", key) and not key_store.key_exists(
            store, "rp", "rpk_x"
        )

    def test_create_with_an_own_rate(self, store):
        _, digest = key_store.create_key(store, "rp", "admin", rate=5)
        assert store.hgetall(f"rp:apikey:{digest}") | {"createdAt": ""} == {
            "role": "admin", "label": "", "rate": "5", "burst": "5", "createdAt": "",
        }  # fmt: skip

    @pytest.mark.parametrize("by", ["id", "hash", "key"])
    def test_revoke_by_id_hash_or_key(self, store, by):
        key, digest = key_store.create_key(store, "rp", "checkout")
        other, _ = key_store.create_key(store, "rp", "checkout")
        ref = {"id": auth.key_id(digest), "hash": digest, "key": key}[by]
        assert key_store.revoke_key(store, "rp", ref) == digest
        assert not key_store.key_exists(store, "rp", key) and key_store.key_exists(
            store, "rp", other
        )

    def test_revoke_refuses_short_unknown_or_ambiguous_references(self, store):
        key_store.create_key(store, "rp", "checkout")
        with pytest.raises(ValueError, match="at least 8"):
            key_store.revoke_key(store, "rp", "abc")
        with pytest.raises(ValueError, match="no such key"):
            key_store.revoke_key(store, "rp", "0" * 64)
        with pytest.raises(ValueError, match="no such key"):
            key_store.revoke_key(store, "rp", "not-hex-at-all")
        for _ in range(40):  # some two of them share a first hex digit
            key_store.create_key(store, "rp", "checkout")
        first = max("0123456789abcdef", key=lambda d: len(key_store.find_keys(store, "rp", d)))
        with pytest.raises(ValueError, match="keys match"):
            key_store.revoke_key(store, "rp", first, min_prefix=1)

    def test_list_shows_ids_and_roles_never_keys(self, store):
        key, digest = key_store.create_key(store, "rp", "admin", label="ops")
        [row] = key_store.list_keys(store, "rp")
        assert row["id"] == digest[:12] and row["role"] == "admin" and row["label"] == "ops"
        assert key not in str(row) and digest not in str(row)


class TestTrustErrors:
    @pytest.mark.parametrize(
        ("error", "status", "code"),
        [
            (Unauthorized("x"), 401, "unauthorized"),
            (Forbidden("x"), 403, "forbidden"),
            (UnsupportedMediaType("x"), 415, "unsupported_media_type"),
            (RawCardNumber("x"), 422, "raw_card_number"),
            (RateLimited("x", retry_after_s=3), 429, "rate_limited"),
        ],
    )
    def test_each_has_its_status_and_code_and_pickles(self, error, status, code):
        assert (error.status, problem_code(error)) == (status, code)
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and again.headers() == error.headers()

    def test_headers_tell_how_to_authenticate_and_when_to_retry(self):
        assert Unauthorized().headers() == {"WWW-Authenticate": 'Bearer realm="raypay"'}
        assert RateLimited("x", retry_after_s=3).headers() == {"Retry-After": "3"}
        assert RateLimited("x", retry_after_s=0).headers() == {"Retry-After": "1"}
        assert RateLimited.retriable and not Forbidden.retriable
