"""`raypay up`'s readiness wait: on several nodes, every node's proxy must answer, so it
asks for a streak of 200s, each on a new connection; one miss starts the count again."""

from __future__ import annotations

import types

import pytest

from raypay.tools import launch

pytestmark = pytest.mark.unit


def answers(monkeypatch, codes: list[int]) -> list[int]:
    """httpx.get answers ``codes`` in turn; returns the list of codes it served."""
    served: list[int] = []

    def get(url, timeout):
        code = codes[len(served)]
        served.append(code)
        return types.SimpleNamespace(status_code=code, text="Path not found")

    monkeypatch.setattr(launch.httpx, "get", get)
    monkeypatch.setattr(launch, "app_statuses", lambda names: {})
    monkeypatch.setattr(launch.time, "sleep", lambda s: None)
    return served


def test_one_node_is_ready_at_the_first_200(monkeypatch):
    served = answers(monkeypatch, [404, 200, 404])
    launch.wait_ready("http://x/readyz", ["raypay"], timeout=5)
    assert served == [404, 200]


def test_a_proxy_without_the_routes_restarts_the_streak(monkeypatch):
    served = answers(monkeypatch, [200, 200, 404, 200, 200, 200, 404])
    launch.wait_ready("http://x/readyz", ["raypay"], timeout=5, streak=3)
    assert served == [200, 200, 404, 200, 200, 200]
