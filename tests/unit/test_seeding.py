"""Seed data written exactly as the order and reservation services would store it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from raypay.adapters.keys import Keys
from raypay.adapters.seeding import iso_utc, order_fields, reservation_fields, seed
from raypay.domain.money import Money, MoneyError

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 3, 45, 0, 123456, tzinfo=UTC)


@pytest.fixture
def store() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


def test_order_fields_store_integer_minor_units() -> None:
    assert order_fields("cus_1", Money.parse("25.00", "USD")) == {
        "customerId": "cus_1",
        "amountMinor": "2500",
        "currency": "USD",
        "status": "pending_payment",
    }


def test_reservation_fields_store_expiry_as_iso_utc_with_milliseconds() -> None:
    fields = reservation_fields("ord_1", "cus_1", NOW + timedelta(minutes=15), "released")
    assert fields == {
        "orderId": "ord_1",
        "customerId": "cus_1",
        "status": "released",
        "expiresAt": "2026-11-26T04:00:00.123Z",
    }


def test_iso_utc_converts_other_time_zones() -> None:
    from zoneinfo import ZoneInfo

    moment = datetime(2026, 11, 26, 5, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert iso_utc(moment) == "2026-11-26T04:00:00.000Z"


def test_unknown_statuses_are_rejected() -> None:
    with pytest.raises(ValueError):
        order_fields("cus_1", Money.parse("1", "USD"), "shipped")


def test_seed_writes_orders_and_reservations_under_the_key_prefix(
    store: fakeredis.FakeRedis,
) -> None:
    created = seed(store, "rp", count=2, amount="12.5", reservation=True, id_prefix="t-", now=NOW)
    assert len(created) == 2
    for item in created:
        assert item["orderId"].startswith("t-") and item["amount"] == "12.50"
        order = store.hgetall(Keys("rp").order(item["orderId"]))
        assert order == {
            "customerId": item["customerId"],
            "amountMinor": "1250",
            "currency": "USD",
            "status": "pending_payment",
        }
        reservation = store.hgetall(Keys("rp").reservation(item["reservationId"], item["orderId"]))
        assert reservation["orderId"] == item["orderId"]
        assert reservation["expiresAt"] == "2026-11-26T04:00:00.123Z"
    assert created[0]["customerId"] != created[1]["customerId"]


def test_a_negative_ttl_makes_an_already_expired_reservation(store: fakeredis.FakeRedis) -> None:
    [item] = seed(store, "rp", reservation=True, reservation_ttl_s=-60, now=NOW)
    hold = Keys("rp").reservation(item["reservationId"], item["orderId"])
    assert store.hget(hold, "expiresAt") == "2026-11-26T03:44:00.123Z"


def test_seed_without_reservation_reports_none(store: fakeredis.FakeRedis) -> None:
    [item] = seed(store, "rp", amount="1000", currency="JPY", customer_id="c1", status="paid")
    assert item.keys() == {"orderId", "customerId", "amount", "currency", "status"}
    assert store.hget(Keys("rp").order(item["orderId"]), "amountMinor") == "1000"
    assert store.keys("rp:*:reservation:*") == []


def test_seed_rejects_amounts_the_currency_cannot_hold(store: fakeredis.FakeRedis) -> None:
    with pytest.raises(MoneyError):
        seed(store, "rp", amount="1.234", currency="USD")
    assert store.keys("*") == []


def test_seed_command_prints_one_json_object_per_order(
    store: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import redis

    from raypay.tools import cli

    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:1/0")
    monkeypatch.setattr(redis.Redis, "from_url", staticmethod(lambda url: store))
    code = cli.main(["seed", "--count", "3", "--reservation", "--customer", "c9"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 3
    for line in lines:
        item = json.loads(line)
        assert item["customerId"] == "c9" and item["status"] == "pending_payment"
        assert store.exists(Keys("raypay").reservation(item["reservationId"], item["orderId"]))
