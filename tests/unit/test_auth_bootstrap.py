"""`raypay up`'s first-start API key: created once, kept private, replaced when revoked."""

from __future__ import annotations

import fakeredis
import pytest

from raypay.adapters import key_store
from raypay.domain import auth
from raypay.tools.up import ensure_api_key, read_api_key

pytestmark = pytest.mark.unit


@pytest.fixture
def store() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


class TestFirstStartKey:
    def test_created_once_kept_private_and_replaced_when_revoked(self, store, tmp_path):
        path, key = ensure_api_key(store, "rp", tmp_path)
        assert key and path == tmp_path / "api-key" and read_api_key(tmp_path) == key
        assert path.stat().st_mode & 0o777 == 0o600
        assert key_store.key_exists(store, "rp", key)
        assert store.hget(f"rp:apikey:{auth.hash_key(key)}", "role") == "admin"
        assert ensure_api_key(store, "rp", tmp_path) == (path, None)  # not shown again
        key_store.revoke_key(store, "rp", key)
        _, again = ensure_api_key(store, "rp", tmp_path)
        assert again and again != key and read_api_key(tmp_path) == again
        assert path.stat().st_mode & 0o777 == 0o600
