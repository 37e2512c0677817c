"""Scenario planning: which orders get duplicates, a decline or a reservation, and when
each order's buyer presses "pay".

Deterministic for a seed: ``raypay bench`` fires the very same traffic at raypay and at
the peer, and a unit test can say exactly how many requests of each kind a ratio makes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

ARRIVALS = ("burst", "ramp", "rate")
VISA = "pm_card_visa"
DECLINED_ONCE = "pm_card_chargeDeclinedOnce"


@dataclass(frozen=True, slots=True)
class Scenario:
    """What to fire. ``payments`` is the number of orders; each is paid once, with
    extra concurrent copies for a ``duplicates`` share, and with a card that declines
    the first charge for a ``declines`` share (the buyer then pays again with a good one).

    ``arrival``: ``burst`` starts every order at once (``concurrency`` buyers at a time),
    ``rate`` starts ``rate`` orders per second, ``ramp`` lets the rate grow linearly from
    0 so the last order starts at ``ramp_seconds``.
    """

    payments: int = 1000
    concurrency: int = 50
    arrival: str = "burst"
    rate: float = 0.0
    ramp_seconds: float = 10.0
    duplicates: float = 0.0
    duplicate_count: int = 2
    declines: float = 0.0
    reservations: float = 0.3
    seed: int = 42

    def __post_init__(self) -> None:
        if self.payments < 1:
            raise ValueError("payments must be >= 1")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}")
        if self.arrival == "rate" and self.rate <= 0:
            raise ValueError("arrival 'rate' needs a rate > 0 (orders per second)")
        if self.arrival == "ramp" and self.ramp_seconds <= 0:
            raise ValueError("arrival 'ramp' needs ramp_seconds > 0")
        for name in ("duplicates", "declines", "reservations"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a share: 0..1")
        if self.duplicate_count < 1:
            raise ValueError("duplicate_count must be >= 1")


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """One order's traffic: ``1 + duplicates`` concurrent first requests at ``start_s``;
    with ``decline_once`` they carry a card that declines the order's first charge."""

    index: int
    start_s: float
    duplicates: int = 0
    decline_once: bool = False
    reservation: bool = False

    @property
    def payment_method(self) -> str:
        return DECLINED_ONCE if self.decline_once else VISA


def share(count: int, ratio: float, rng: random.Random) -> frozenset[int]:
    """Exactly ``round(count * ratio)`` distinct indices out of ``range(count)``."""
    chosen = min(count, round(count * ratio))
    return frozenset(rng.sample(range(count), chosen))


def arrival_offsets(
    count: int, arrival: str, rate: float = 0.0, ramp_seconds: float = 0.0
) -> list[float]:
    """When each order starts, in seconds from the run's start, non-decreasing."""
    if arrival == "burst":
        return [0.0] * count
    if arrival == "rate":
        return [index / rate for index in range(count)]
    if arrival == "ramp":
        # Arrivals so far grow as (t/T)^2: the rate rises linearly from 0 to 2N/T.
        return [ramp_seconds * math.sqrt(index / count) for index in range(count)]
    raise ValueError(f"unknown arrival {arrival!r}")


def plan(scenario: Scenario) -> list[OrderPlan]:
    """Every order's plan, in start order. The same scenario gives the same plan."""
    rng = random.Random(scenario.seed)
    count = scenario.payments
    duplicated = share(count, scenario.duplicates, rng)
    declined = share(count, scenario.declines, rng)
    reserved = share(count, scenario.reservations, rng)
    offsets = arrival_offsets(count, scenario.arrival, scenario.rate, scenario.ramp_seconds)
    return [
        OrderPlan(
            index=index,
            start_s=offsets[index],
            duplicates=scenario.duplicate_count if index in duplicated else 0,
            decline_once=index in declined,
            reservation=index in reserved,
        )
        for index in range(count)
    ]


@dataclass(frozen=True, slots=True)
class PlannedTraffic:
    """Requests a plan sends for sure, and the most ``after_decline`` payments it can add
    (a declined order whose duplicates all failed to pay is paid once more)."""

    orders: int
    first: int
    duplicate: int
    decline_once_orders: int
    reservation_orders: int
    after_decline_max: int

    @property
    def requests_min(self) -> int:
        return self.first + self.duplicate

    def as_dict(self) -> dict[str, int]:
        return {
            "orders": self.orders, "first": self.first, "duplicate": self.duplicate,
            "decline_once_orders": self.decline_once_orders,
            "reservation_orders": self.reservation_orders,
            "after_decline_max": self.after_decline_max, "requests_min": self.requests_min,
        }  # fmt: skip


def traffic(plans: list[OrderPlan]) -> PlannedTraffic:
    declined = sum(1 for p in plans if p.decline_once)
    return PlannedTraffic(
        orders=len(plans),
        first=len(plans),
        duplicate=sum(p.duplicates for p in plans),
        decline_once_orders=declined,
        reservation_orders=sum(1 for p in plans if p.reservation),
        after_decline_max=declined,
    )
