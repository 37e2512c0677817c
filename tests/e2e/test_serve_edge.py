"""Headers Serve reads itself, and methods a path does not take, through the real
ingress (HAProxy, Serve's replica server, deployments/edge.py in front): a problem
with a stable code, never a plain-text 500 or 408."""

from __future__ import annotations

import pytest
from raystack import assert_problem

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("value", [b"caf\xe9", "café".encode(), b"\xd7\xf8\xc2\x9b"])
@pytest.mark.parametrize("path", ["/v1/payments", "/healthz"])
async def test_a_request_id_serve_cannot_read_is_a_422_problem(service, path, value):
    order = service.seed()
    headers = [(b"X-Request-ID", value)]
    if path == "/v1/payments":
        response = await service.pay(order, headers=headers)
    else:
        response = await service.http.get(path, headers=headers)
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "header.X-Request-ID"
    assert service.charges(order["orderId"]) == 0


async def test_a_client_does_not_set_serves_timeout(service):
    order = service.seed()
    response = await service.pay(order, headers={"x-request-timeout-seconds": "0.000001"})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("content_type", [None, "application/json"])
async def test_an_undeclared_method_is_405_with_allow(service, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = await service.http.put("/v1/payments/pay_1", content=b"{}", headers=headers)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"
