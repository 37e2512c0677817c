"""A duplicate storm: 1,000 requests over 200 orders, five concurrent duplicates per
order, a fifth of the orders declining their first charge."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

pytestmark = pytest.mark.integration

ORDERS, DUPLICATES, DECLINING = 200, 5, 40


async def test_storm_charges_each_order_once_and_announces_each_outcome_once(service, events):
    orders = [service.seed() for _ in range(ORDERS)]
    declining = {o["orderId"] for o in random.Random(3).sample(orders, DECLINING)}

    def method(order):
        return "pm_card_chargeDeclinedOnce" if order["orderId"] in declining else "pm_card_visa"

    requests = [(o, method(o)) for o in orders for _ in range(DUPLICATES)]
    random.Random(4).shuffle(requests)
    responses = await asyncio.gather(*(service.pay(o, paymentMethod=m) for o, m in requests))

    mix = Counter(r.status_code for r in responses)
    assert set(mix) <= {200, 201, 402}, mix
    assert mix[201] == ORDERS and mix[402] == DECLINING, mix

    outcomes: dict[str, int] = {}
    for order in orders:
        order_id = order["orderId"]
        listed = (await service.http.get(f"/v1/orders/{order_id}/payments")).json()
        states = Counter(p["status"] for p in listed["payments"])
        assert states["succeeded"] == 1 and states["pending"] == 0, (order_id, states)
        assert states["failed"] == (1 if order_id in declining else 0), (order_id, states)
        assert service.charges(order_id) == states["succeeded"] + states["failed"]
        for payment in listed["payments"]:
            outcomes[payment["paymentId"]] = 0

    await events.wait_for_payments(outcomes.keys())
    for message in events.messages:
        if message["value"]["paymentId"] in outcomes:
            outcomes[message["value"]["paymentId"]] += 1
    assert set(outcomes.values()) == {1}, Counter(outcomes.values())
