"""A 405 names every method the path takes, also when several routes share the path."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from deployments import problems

pytestmark = pytest.mark.unit


def build() -> FastAPI:
    api = FastAPI()
    problems.install(api)
    listing, creating = APIRouter(), APIRouter()

    @listing.get("/v1/things/{thing_id}/parts")
    async def parts(thing_id: str) -> list:
        return []

    @creating.post("/v1/things/{thing_id}/parts")
    async def add(thing_id: str) -> dict:
        return {}

    api.include_router(listing)
    api.include_router(creating)
    return api


@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "DELETE", "PATCH"])
async def test_a_405_allows_the_methods_of_every_route_on_the_path(method):
    transport = httpx.ASGITransport(app=build())
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        response = await http.request(method, "/v1/things/t1/parts")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["code"] == "method_not_allowed"
