"""Structured logs and the request id: one payment through HTTP, then its JSON lines in
this Ray session's log files, its event's headers on the broker, and no secret anywhere."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from raystack import ADMIN_KEY, SHARDS, assert_problem, eventually, json_lines_with

from raypay.domain.cards import luhn_ok
from raypay.domain.sharding import shard_of_order

pytestmark = pytest.mark.e2e


def outcome_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ingress's one line per payment outcome (deployments/recorder.py)."""
    return [line for line in lines if "outcome" in line and "latencyMs" in line]


def all_logs(logs_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(logs_dir.rglob("*")) if p.is_file())


async def test_one_payment_logs_its_ids_and_its_event_carries_the_request_id(
    service, events, ray_local
):
    order = service.seed()
    request_id = f"req-{uuid.uuid4().hex}"
    response = await service.pay(order, headers={"X-Request-ID": request_id})
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == request_id
    payment_id = response.json()["paymentId"]

    lines = await eventually(
        lambda: json_lines_with(ray_local.logs_dir, request_id),
        lambda found: outcome_lines(found) and any("request_id" in line for line in found),
        within=20,
    )
    (outcome,) = outcome_lines(lines)
    assert outcome["message"] == "payment succeeded"
    assert {
        key: outcome[key] for key in ("orderId", "paymentId", "customerId", "outcome", "requestId")
    } == {
        "orderId": order["orderId"],
        "paymentId": payment_id,
        "customerId": order["customerId"],
        "outcome": "succeeded",
        "requestId": request_id,
    }
    assert isinstance(outcome["latencyMs"], float) and outcome["latencyMs"] >= 0
    # Written by the ingress replica, which knows the shard that owns the order.
    assert "PaymentIngress" in outcome["actor_name"]
    assert outcome["shard"] == shard_of_order(order["orderId"], SHARDS)
    assert "paymentMethod" not in outcome  # nothing of the card, not even its token
    # Serve's access line of the same request, from the ingress replica.
    assert any(line.get("request_id") == request_id for line in lines if "route" in line)

    [message] = await events.wait_for(order["orderId"], 1)
    assert message["headers"]["requestId"] == request_id.encode()

    assert ADMIN_KEY.encode() not in all_logs(ray_local.logs_dir)  # no API key in any log


async def test_without_x_request_id_one_is_made_returned_and_sent_with_the_event(service, events):
    order = service.seed()
    response = await service.pay(order)
    assert response.status_code == 201, response.text
    request_id = response.headers["x-request-id"]
    assert request_id

    [message] = await events.wait_for(order["orderId"], 1)
    assert message["headers"]["requestId"] == request_id.encode()


async def test_a_declined_payment_logs_its_decline_code(service, ray_local):
    order = service.seed()
    request_id = f"req-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id}
    response = await service.pay(
        order, paymentMethod="pm_card_chargeDeclinedFraudulent", headers=headers
    )
    assert response.status_code == 402
    [line] = await eventually(
        lambda: outcome_lines(json_lines_with(ray_local.logs_dir, request_id)), bool, within=20
    )
    assert (line["outcome"], line["code"]) == ("declined", "fraudulent")
    assert line["paymentId"] == response.json()["payment"]["paymentId"]


async def test_an_x_request_id_that_is_not_visible_ascii_is_refused(service):
    order = service.seed()
    response = await service.pay(order, headers={"X-Request-ID": "x" * 129})
    assert_problem(response, 422, "validation_error")
    assert service.charges(order["orderId"]) == 0


async def test_a_card_number_sent_by_mistake_is_in_no_log(service, ray_local):
    order = service.seed()
    digits = f"5555{uuid.uuid4().int % 10**11:011d}"  # 15 digits; the 16th makes it valid
    number = next(digits + check for check in "0123456789" if luhn_ok(digits + check))
    request_id = f"req-{uuid.uuid4().hex}"
    response = await service.pay(order, paymentMethod=number, headers={"X-Request-ID": request_id})
    assert_problem(response, 422, "raw_card_number")
    # Serve's access line of this request is written, and nothing of the number anywhere.
    await eventually(lambda: json_lines_with(ray_local.logs_dir, request_id), bool, within=20)
    assert number.encode() not in all_logs(ray_local.logs_dir)
