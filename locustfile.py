"""Locust users for raypay: buyers paying seeded orders, some twice at once, some with a
card that declines the first charge.

    raypay up &
    locust -f locustfile.py --headless -u 50 -r 50 -t 20s --host http://127.0.0.1:8000
    locust -f locustfile.py --tags duplicates declines ...     # only those buyers

Without ``--host`` the API of the stack `raypay up` runs is used. At test start the
orders are seeded (``--raypay-orders``, a ``--raypay-reservations`` share with a
reservation) through ``raypay.adapters.seeding`` into that stack's Redis, or ``--raypay-redis-url``
/ ``REDIS_URL``; a user that runs out seeds more. The API key is ``--raypay-api-key``,
``RAYPAY_API_KEY`` or the stack's key file.

Tasks (tags):
    pay          one request, pm_card_visa: 201                                   weight 8
    duplicates   the same order K times at once: one 201, the rest 200 replays    weight 1
    declines     pm_card_chargeDeclinedOnce: 402; then pm_card_visa: 201          weight 1

A 503 (or 429) is retried after its Retry-After, up to 5 times, and counted as a failure.
``raypay load`` checks the invariants afterwards; Locust measures.
"""

from __future__ import annotations

import collections
import os
import time
import uuid
from typing import Any

import gevent
from locust import between, events, tag, task
from locust.contrib.fasthttp import FastHttpUser
from locust.runners import MasterRunner

from raypay.adapters import seeding
from raypay.settings import Settings
from raypay.tools.up import find_stack

RETRIABLE = {0, 429, 502, 503, 504}
ORDERS: collections.deque[dict[str, str]] = collections.deque()
CONFIG: dict[str, Any] = {}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--raypay-orders", type=int, default=20_000, help="orders seeded at start")
    parser.add_argument("--raypay-reservations", type=float, default=0.3, help="share reserved")
    parser.add_argument("--raypay-duplicate-count", type=int, default=3, help="copies at once")
    parser.add_argument("--raypay-data-dir", default=None, help="data dir of `raypay up`")
    parser.add_argument("--raypay-redis-url", default=None, help="Redis to seed into")
    parser.add_argument("--raypay-api-key", default=None, help="Bearer key (RAYPAY_API_KEY)")


def _key_from(state: dict[str, Any]) -> str | None:
    try:
        return open(state["api_key_file"]).read().strip() or None
    except (KeyError, OSError):
        return None


@events.init.add_listener
def _configure(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    settings = Settings()
    state = find_stack(options.raypay_data_dir if options else None) or {}
    if not environment.host and state.get("api_url"):
        environment.host = state["api_url"]
    CONFIG.update(
        redis_url=(options and options.raypay_redis_url)
        or os.environ.get("RAYPAY_REDIS_URL")
        or os.environ.get("REDIS_URL")
        or state.get("redis_url")
        or settings.redis_url,
        prefix=settings.key_prefix,
        orders=options.raypay_orders if options else 20_000,
        reservations=options.raypay_reservations if options else 0.3,
        copies=options.raypay_duplicate_count if options else 3,
        api_key=(options and options.raypay_api_key)
        or os.environ.get("RAYPAY_API_KEY")
        or _key_from(state),
        run=f"lc{uuid.uuid4().hex[:8]}-",
    )


def seed_more(count: int) -> None:
    """Seed ``count`` orders (a share with reservations) and queue them for the users."""
    import redis

    client = redis.Redis.from_url(CONFIG["redis_url"], decode_responses=True)
    reserved = round(count * CONFIG["reservations"])
    try:
        for n, with_reservation in ((reserved, True), (count - reserved, False)):
            ORDERS.extend(
                seeding.seed(client, CONFIG["prefix"], count=n, reservation=with_reservation,
                             reservation_ttl_s=24 * 3600, id_prefix=CONFIG["run"])
            )  # fmt: skip
    finally:
        client.close()


@events.test_start.add_listener
def _seed(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # workers seed for their own users
    started = time.monotonic()
    seed_more(CONFIG["orders"])
    print(f"raypay: seeded {len(ORDERS)} orders in {time.monotonic() - started:.1f}s")


class Buyer(FastHttpUser):
    """One buyer at a time per user; ``-u`` is the number of concurrent buyers."""

    wait_time = between(0, 0.01)

    def on_start(self) -> None:
        self.headers = {"Content-Type": "application/json"}
        if CONFIG.get("api_key"):
            self.headers["Authorization"] = f"Bearer {CONFIG['api_key']}"

    def _order(self) -> dict[str, str]:
        if not ORDERS:
            seed_more(500)
        return ORDERS.popleft()

    def _pay(self, order: dict[str, str], method: str, name: str, ok: set[int]) -> int:
        body = {
            "orderId": order["orderId"], "customerId": order["customerId"],
            "amount": order["amount"], "currency": order["currency"], "paymentMethod": method,
        }  # fmt: skip
        if order.get("reservationId"):
            body["reservationId"] = order["reservationId"]
        for _ in range(5):
            with self.client.post(
                "/v1/payments", json=body, headers=self.headers, name=name, catch_response=True
            ) as response:
                status = response.status_code or 0
                if status in ok:
                    response.success()
                    return status
                response.failure(f"{status}: {(response.text or '')[:200]}")
                if status not in RETRIABLE:
                    return status
                retry_after = response.headers.get("Retry-After") if response.headers else None
            gevent.sleep(min(float(retry_after or 0.2), 5.0))
        return status

    @tag("pay")
    @task(8)
    def pay(self) -> None:
        self._pay(self._order(), "pm_card_visa", "/v1/payments [pay]", {201})

    @tag("duplicates")
    @task(1)
    def duplicates(self) -> None:
        order = self._order()
        copies = [
            gevent.spawn(self._pay, order, "pm_card_visa", "/v1/payments [duplicate]", {200, 201})
            for _ in range(CONFIG["copies"])
        ]
        gevent.joinall(copies)

    @tag("declines")
    @task(1)
    def declines(self) -> None:
        order = self._order()
        first = self._pay(order, "pm_card_chargeDeclinedOnce", "/v1/payments [decline]", {402})
        if first == 402:
            self._pay(order, "pm_card_visa", "/v1/payments [after decline]", {201})
