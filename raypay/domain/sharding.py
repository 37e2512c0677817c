"""Where an order lives: its virtual shard (vshard), and the PaymentActor shard owning it.

Every order belongs to one of ``VSHARDS`` virtual shards, by a stable hash of its orderId
(the same in every process, not Python's salted ``hash()``). The vshard is the unit of
placement everywhere:

- Redis: every key of an order carries its vshard as a hash tag (``{vs17}``), so each
  atomic step touches one hash slot and Redis Cluster spreads vshards over its masters;
- ids: a paymentId or refundId carries its order's vshard (``pay_vs17_…``), so a
  lookup by id alone (``GET /v1/payments/{paymentId}``) finds the slot;
- Ray: PaymentActor shard ``i`` of ``n`` owns a contiguous range of vshards.

The count is fixed for the life of the data: changing it moves every order.
"""

from __future__ import annotations

import hashlib
import re

VSHARDS = 256

_IN_ID = re.compile(r"^[a-z]+_vs(\d{1,4})_")


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def shard_for(key: str, shards: int) -> int:
    """A stable hash of ``key`` into ``range(shards)`` (e.g. a gateway idempotency key
    onto the simulator pool). Orders go through :func:`shard_of_order`."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    return _hash(key) % shards


def vshard_of(order_id: str) -> int:
    """The order's virtual shard, in ``range(VSHARDS)``."""
    return _hash(order_id) % VSHARDS


def vshard_in(entity_id: str) -> int:
    """The vshard an id carries (``pay_vs17_…`` -> 17); an id made before vshards
    (``pay_<hex>``) has none and is placed by its own hash."""
    found = _IN_ID.match(entity_id)
    if found is not None and int(found.group(1)) < VSHARDS:
        return int(found.group(1))
    return vshard_of(entity_id)


def scoped_id(prefix: str, vshard: int, unique: str) -> str:
    """``pay_vs17_<unique>``: an id that carries its vshard."""
    return f"{prefix}_vs{vshard}_{unique}"


def owner_of(vshard: int, shards: int) -> int:
    """The PaymentActor shard (of ``shards``) that owns ``vshard``: contiguous ranges,
    whose sizes differ by one at most."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    return vshard * shards // VSHARDS


def shard_of_order(order_id: str, shards: int) -> int:
    """The PaymentActor shard that owns ``order_id``."""
    return owner_of(vshard_of(order_id), shards)


def vshards_of(shard: int, shards: int) -> range:
    """The vshards PaymentActor shard ``shard`` of ``shards`` owns."""
    start = -(-shard * VSHARDS // shards)  # ceil: the first v with owner_of(v) == shard
    end = -(-(shard + 1) * VSHARDS // shards)
    return range(start, end)
