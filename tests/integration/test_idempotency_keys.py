"""Idempotency-Key: the first final answer is kept for a configurable time and
replayed; a 503 is not final, so it is not kept."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


def stored_key(service, key: str) -> str:
    return f"{service.settings.key_prefix}:idem:{key}"


async def test_first_answer_is_kept_for_the_configured_time(service):
    order, key = service.seed(), uuid.uuid4().hex
    first = await service.pay(order, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    ttl = service.redis.ttl(stored_key(service, key))
    assert 0 < ttl <= service.settings.idempotency_ttl_s
    assert service.settings.idempotency_ttl_s == 24 * 3600  # the documented default
    again = await service.pay(order, headers={"Idempotency-Key": key})
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
    assert again.json() == first.json()
    assert service.charges(order["orderId"]) == 1


async def test_a_503_is_not_kept_so_the_retry_runs_for_real(service):
    order, key = service.seed(), uuid.uuid4().hex
    failed = await service.pay(
        order, paymentMethod="pm_card_error", headers={"Idempotency-Key": key}
    )
    assert failed.status_code == 503
    assert service.redis.exists(stored_key(service, key)) == 0
    retried = await service.pay(
        order, paymentMethod="pm_card_error", headers={"Idempotency-Key": key}
    )
    assert retried.status_code == 503
    assert "Idempotent-Replayed" not in retried.headers


async def test_an_expired_key_is_forgotten(service):
    order, key = service.seed(), uuid.uuid4().hex
    first = await service.pay(order, headers={"Idempotency-Key": key})
    service.redis.delete(stored_key(service, key))  # what expiry does, without the wait
    other = service.seed()
    reused = await service.pay(other, headers={"Idempotency-Key": key})
    assert (first.status_code, reused.status_code) == (201, 201)
