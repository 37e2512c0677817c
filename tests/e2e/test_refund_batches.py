"""Refund batches for a cancelled event, through HTTP and the broker: each order's outcome,
one refund (and one event) per paid order, at the configured rate."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime

import pytest
from raystack import after_a_later_event, assert_problem, eventually

pytestmark = pytest.mark.e2e


async def paid_orders(service, count: int, method: str = "pm_card_visa") -> list[dict]:
    orders = [service.seed(amount="12.50") for _ in range(count)]
    answers = await asyncio.gather(*(service.pay(o, paymentMethod=method) for o in orders))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    return [a.json() for a in answers]


async def until_done(service, batch_id: str, within: float = 60) -> dict:
    return (
        await eventually(
            lambda: service.http.get(f"/v1/refund-batches/{batch_id}"),
            lambda r: r.status_code == 200 and r.json()["status"] == "done",
            within,
        )
    ).json()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_batch_refunds_every_paid_order_once_and_shows_each_outcome(service, events):
    paid = await paid_orders(service, 25)
    declined = (await paid_orders(service, 1, "pm_card_refundDeclined"))[0]
    unpaid = service.seed()
    order_ids = [p["orderId"] for p in paid] + [declined["orderId"], unpaid["orderId"], "ord_nope"]

    created = await service.http.post(
        "/v1/refund-batches",
        json={"orderIds": [*order_ids, order_ids[0]], "reason": "event_cancelled"},
    )

    assert created.status_code == 202, created.text
    batch = created.json()
    assert created.headers["Location"] == f"/v1/refund-batches/{batch['batchId']}"
    assert (batch["status"], batch["total"], batch["reason"]) == ("running", 28, "event_cancelled")
    done = await until_done(service, batch["batchId"])
    assert (done["done"], done["succeeded"], done["failed"], done["skipped"]) == (28, 25, 1, 2)
    items = {item["orderId"]: item for item in done["items"]}
    assert [item["orderId"] for item in done["items"]] == order_ids
    assert {items[p["orderId"]]["status"] for p in paid} == {"succeeded"}
    assert (items[declined["orderId"]]["status"], items[declined["orderId"]]["code"]) == (
        "failed", "expired_or_canceled_card",
    )  # fmt: skip
    assert items[unpaid["orderId"]]["code"] == items["ord_nope"]["code"] == "payment_not_found"
    for payment in paid:
        now = (await service.http.get(f"/v1/payments/{payment['paymentId']}")).json()
        assert (now["refunded"], now["amountRefunded"]) == (True, "12.50")
        assert service.refunds_made(payment["orderId"]) == 1
        refund = await service.http.get(f"/v1/refunds/{items[payment['orderId']]['refundId']}")
        assert refund.json()["reason"] == "event_cancelled"

    # At most RAYPAY_REFUND_BATCH_RATE (50) refunds a second: 26 refunds span >= 0.5 s.
    refunds = [items[o]["refundId"] for o in order_ids[:26]]
    created_at = [
        moment((await service.http.get(f"/v1/refunds/{r}")).json()["createdAt"]) for r in refunds
    ]
    span = (max(created_at) - min(created_at)).total_seconds()
    assert span >= 0.9 * (len(refunds) - 1) / service.settings.refund_batch_rate, span

    # One event per refund on the broker.
    await events.wait_for_refunds(refunds)
    await after_a_later_event(service, events)
    seen = Counter(m["value"]["refundId"] for m in events.messages if "refundId" in m["value"])
    assert {refund_id: seen[refund_id] for refund_id in refunds} == dict.fromkeys(refunds, 1)


async def test_the_outcomes_page_by_offset_and_limit(service):
    paid = await paid_orders(service, 3)
    created = await service.http.post(
        "/v1/refund-batches",
        json={"orderIds": [p["orderId"] for p in paid], "reason": "duplicate"},
    )
    batch_id = created.json()["batchId"]
    await until_done(service, batch_id)
    page = (await service.http.get(f"/v1/refund-batches/{batch_id}?offset=1&limit=1")).json()
    assert (page["offset"], [i["orderId"] for i in page["items"]]) == (1, [paid[1]["orderId"]])


async def test_the_same_idempotency_key_answers_the_same_batch(service):
    paid = await paid_orders(service, 2)
    body = {"orderIds": [p["orderId"] for p in paid], "reason": "event_cancelled"}
    key = {"Idempotency-Key": uuid.uuid4().hex}

    first = await service.http.post("/v1/refund-batches", json=body, headers=key)
    again = await service.http.post("/v1/refund-batches", json=body, headers=key)
    other = await service.http.post(
        "/v1/refund-batches", json={**body, "reason": "duplicate"}, headers=key
    )

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["batchId"] == first.json()["batchId"]
    assert_problem(other, 422, "idempotency_key_reused")
    await until_done(service, first.json()["batchId"])
    assert [service.refunds_made(p["orderId"]) for p in paid] == [1, 1]


@pytest.mark.parametrize(
    "order_ids",
    [[], [f"ord_{n}" for n in range(10_001)], ["not an id"]],
    ids=["empty", "over-10000", "bad-id"],
)
async def test_a_batch_outside_the_contract_is_422(service, order_ids):
    response = await service.http.post(
        "/v1/refund-batches", json={"orderIds": order_ids, "reason": "event_cancelled"}
    )
    assert_problem(response, 422, "validation_error")


async def test_batches_need_the_refunds_role_and_an_unknown_one_is_404(service):
    async with service.caller(service.create_key("checkout")) as shop:
        refused = await shop.post(
            "/v1/refund-batches", json={"orderIds": ["ord_1"], "reason": "event_cancelled"}
        )
        assert_problem(refused, 403, "forbidden")
        assert_problem(await shop.get("/v1/refund-batches/rb_nope"), 403, "forbidden")
    missing = await service.http.get("/v1/refund-batches/rb_nope")
    assert_problem(missing, 404, "refund_batch_not_found")
