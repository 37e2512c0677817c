"""The reference consumer's handling (raypay.tools.fulfill.Fulfiller) over its ticket store
on fakeredis: a ticket per succeeded payment, void on full refund, every event once, and
a refund event that comes before its payment's event."""

from __future__ import annotations

import pytest

from raypay.adapters.ticket_store import RedisTickets
from raypay.tools.fulfill import Fulfiller

pytestmark = pytest.mark.unit


@pytest.fixture
def fulfiller(redis, keys) -> Fulfiller:
    return Fulfiller(RedisTickets(redis, keys))


def paid(event_id: str = "evt_p", payment_id: str = "pay_1") -> dict:
    return {
        "eventType": "payment-succeeded",
        "eventId": event_id,
        "orderId": "ord_1",
        "paymentId": payment_id,
    }


def refunded(event_id: str = "evt_r", full: bool = True, payment_id: str = "pay_1") -> dict:
    return {
        "eventType": "refund-succeeded",
        "eventId": event_id,
        "orderId": "ord_1",
        "paymentId": payment_id,
        "refundId": f"re_{event_id}",
        "paymentRefunded": full,
    }


async def status(fulfiller: Fulfiller, payment_id: str = "pay_1") -> str | None:
    ticket = await fulfiller.tickets.get(payment_id)
    return ticket.status if ticket else None


async def test_a_succeeded_payment_issues_one_ticket_once(fulfiller):
    assert await fulfiller.handle(paid()) == "issued"
    assert await fulfiller.handle(paid()) == "duplicate"
    ticket = await fulfiller.tickets.get("pay_1")
    assert (ticket.ticket_id, ticket.order_id, ticket.status) == ("tkt_1", "ord_1", "issued")
    assert await fulfiller.tickets.stats() == {"issued": 1, "duplicates": 1}


async def test_a_partial_refund_keeps_the_ticket_and_the_full_one_voids_it(fulfiller):
    await fulfiller.handle(paid())
    assert await fulfiller.handle(refunded("evt_r1", full=False)) == "ignored"
    assert await status(fulfiller) == "issued"
    assert await fulfiller.handle(refunded("evt_r2")) == "voided"
    assert await fulfiller.handle(refunded("evt_r2")) == "duplicate"
    assert await status(fulfiller) == "void"


async def test_a_refund_before_its_payment_means_no_ticket_is_ever_issued(fulfiller):
    assert await fulfiller.handle(refunded()) == "voided_first"
    assert await fulfiller.handle(paid()) == "void"  # the late payment event issues nothing
    assert await status(fulfiller) == "void"
    assert await fulfiller.tickets.stats() == {"voidedFirst": 1}


@pytest.mark.parametrize("kind", ["payment-failed", "refund-failed"])
async def test_failures_change_no_ticket(fulfiller, kind):
    assert await fulfiller.handle({**paid(), "eventType": kind}) == "ignored"
    assert await status(fulfiller) is None
