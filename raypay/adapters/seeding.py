"""Seed data: orders and reservations written straight into Redis.

Orders and reservations belong to other services of the checkout; raypay only
reads them. Locally (and in tests and load runs) this module stands in for those
services by writing the same hashes they would (formats: records.py, keys: keys.py): an
order under its vshard's hash tag, ``{p}:{vsN}:order:{orderId}``, and a reservation beside
its order, ``{p}:{vsN}:reservation:{reservationId}``, N = vshard_of(orderId).
``redis`` may be a ``redis.RedisCluster``: its pipeline sends each master its keys.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from raypay.adapters.keys import Keys
from raypay.adapters.records import iso_utc, order_record, reservation_record
from raypay.domain.model import OrderStatus, ReservationStatus
from raypay.domain.money import Money

__all__ = ["iso_utc", "order_fields", "reservation_fields", "seed"]


def order_fields(
    customer_id: str,
    money: Money,
    status: str = OrderStatus.PENDING_PAYMENT,
) -> dict[str, str]:
    """The hash fields of one order (ValueError for a status orders do not have)."""
    return order_record(customer_id, money, str(OrderStatus(status)))


def reservation_fields(
    order_id: str, customer_id: str, expires_at: datetime, status: str = ReservationStatus.ACTIVE
) -> dict[str, str]:
    """The hash fields of one reservation (ValueError for an unknown status)."""
    return reservation_record(order_id, customer_id, str(ReservationStatus(status)), expires_at)


def _new_id(kind: str, id_prefix: str) -> str:
    return f"{id_prefix}{kind}-{uuid.uuid4().hex[:16]}"


def seed(
    redis: Any,
    prefix: str = "raypay",
    *,
    count: int = 1,
    amount: Decimal | str = "25.00",
    currency: str = "USD",
    status: str = OrderStatus.PENDING_PAYMENT,
    reservation: bool = False,
    reservation_status: str = ReservationStatus.ACTIVE,
    reservation_ttl_s: float = 900,
    customer_id: str | None = None,
    id_prefix: str = "",
    now: datetime | None = None,
) -> list[dict[str, str]]:
    """Write ``count`` orders (each with a reservation if asked) with a sync redis client.

    A negative ``reservation_ttl_s`` makes reservations that have already expired.
    Returns one dict per order: orderId, customerId, amount (decimal string),
    currency, status, and reservationId when one was made.
    """
    money = Money.parse(amount, currency)
    expires_at = (now or datetime.now(UTC)) + timedelta(seconds=reservation_ttl_s)
    created: list[dict[str, str]] = []
    keys = Keys(prefix)
    pipe = redis.pipeline(transaction=False)
    for n in range(count):
        if n and n % 1000 == 0:  # bounded pipelines for large load-test seeds
            pipe.execute()
        order_id = _new_id("order", id_prefix)
        customer = customer_id or _new_id("cust", id_prefix)
        pipe.hset(keys.order(order_id), mapping=order_fields(customer, money, status))
        item = {
            "orderId": order_id,
            "customerId": customer,
            "amount": str(money),
            "currency": money.currency,
            "status": str(OrderStatus(status)),
        }
        if reservation:
            reservation_id = _new_id("res", id_prefix)
            fields = reservation_fields(order_id, customer, expires_at, reservation_status)
            pipe.hset(keys.reservation(reservation_id, order_id), mapping=fields)
            item["reservationId"] = reservation_id
        created.append(item)
    pipe.execute()
    return created
