"""``raypay migrate-keys``: data stored under the key names before virtual shards, renamed
to today's (raypay/adapters/keys.py), on one Redis.

Before vshards every key was ``{p}:<name>``; now an order's keys carry their vshard's hash
tag, ``{p}:{vsN}:<name>``, and what was global is per vshard. This renames, in place:

    {p}:order:{o}[:payments|:succeeded|:pending]  ->  tag of vshard_of(o)
    {p}:reservation:{r}                           ->  tag of its orderId's vshard
    {p}:payment:{id}[:refunds], {p}:refund:{id},
    {p}:gw:charge:{key}, {p}:gw:refund:{key},
    {p}:ticket:{id}                               ->  tag of the vshard the id carries; an
                                                      id made before vshards has none and
                                                      is placed by its own hash (vshard_in)
    {p}:gw:charges, {p}:gw:refunds (per orderId)  ->  split over the orders' vshards, with
                                                      each vshard's total recounted
    {p}:fulfil:stats                              ->  vshard 0's (readers add all up)
    {p}:refund-batch:…, {p}:refund-batches:open   ->  {p}:{rb}:…

and deletes what is transient: the old rate-limit buckets (``{p}:rl:*``), the empty old
outbox, pending sets and delivery log. API keys and Idempotency-Key records keep their
names. ``{p}:fulfil:event:*`` (events ``raypay fulfill`` handled) are left to expire (7
days): a redelivered old event finds its ticket and changes nothing.

It runs with the service stopped, once the old version has delivered its outbox and
settled every pending payment and refund (``{p}:outbox``, ``{p}:pending`` and
``{p}:refunds:pending`` empty); otherwise it refuses and says what waits. Payments made
before keep their ids (``pay_<hex>``): they are read, listed and refunded on one Redis;
a payment made before whose keys sit apart from its order's cannot be refunded on a
Redis Cluster (CROSSSLOT), so move to a cluster with payments made after. Moving the
migrated data onto a Redis Cluster: ``redis-cli --cluster import``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from raypay.adapters.keys import Keys
from raypay.domain.sharding import vshard_in, vshard_of

_BY_ID = ("payment:", "refund:", "gw:charge:", "gw:refund:", "ticket:")


class NotDrained(RuntimeError):
    """The old outbox or pending sets still hold entries: not safe to rename."""


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def plan(redis: Any, prefix: str) -> tuple[dict[str, str], list[str]]:
    """(old name -> new name, names to delete) for the data under ``prefix``."""
    keys, renames, drop = Keys(prefix), {}, []
    head = f"{prefix}:"
    for raw in redis.scan_iter(match=f"{prefix}:*", count=1000):
        name = _text(raw)
        rest = name[len(head) :]
        if rest.startswith("{"):  # today's names (a tag right after the prefix)
            continue
        if rest.startswith("order:"):
            order_id, kind = rest[len("order:") :], _text(redis.type(name))
            for suffix in (":payments", ":succeeded", ":pending"):
                if kind != "hash" and order_id.endswith(suffix):
                    order_id = order_id[: -len(suffix)]
                    break
            renames[name] = keys.of_order(order_id, rest)
        elif rest.startswith("reservation:"):
            order_id = _text(redis.hget(name, "orderId") or "")
            renames[name] = keys.of_order(order_id, rest)
        elif rest.startswith(_BY_ID):
            entity = rest.split(":", 1)[1] if not rest.startswith("gw:") else rest.split(":", 2)[2]
            entity = entity.removesuffix(":refunds") if rest.startswith("payment:") else entity
            renames[name] = keys.in_vshard(vshard_in(entity), rest)
        elif rest.startswith(("refund-batch:", "refund-batches:")):
            renames[name] = f"{prefix}:{{rb}}:{rest}"
        elif rest == "fulfil:stats":
            renames[name] = keys.fulfil_stats(0)
        elif rest.startswith("rl:") or rest in (
            "outbox", "outbox:delivered", "pending", "refunds:pending",
            "gw:charges:total", "gw:refunds:total",
        ):  # fmt: skip
            drop.append(name)
    return renames, drop


def check_drained(redis: Any, prefix: str) -> None:
    waiting = {
        "outbox": redis.xlen(f"{prefix}:outbox") if redis.exists(f"{prefix}:outbox") else 0,
        "pending": redis.zcard(f"{prefix}:pending"),
        "refunds:pending": redis.zcard(f"{prefix}:refunds:pending"),
    }
    waiting = {name: int(count) for name, count in waiting.items() if count}
    if waiting:
        raise NotDrained(
            "the old version has not finished: "
            + ", ".join(f"{prefix}:{name} holds {count}" for name, count in waiting.items())
            + " (let its relay deliver and its sweep settle, then run this again)"
        )


def migrate(redis: Any, prefix: str, dry_run: bool = False) -> dict[str, int]:
    """Rename the data under ``prefix`` to today's names; returns counts by what was done.
    ``redis`` is a blocking client of one Redis (RENAME across slots)."""
    check_drained(redis, prefix)
    keys = Keys(prefix)
    renames, drop = plan(redis, prefix)
    counters = [
        (f"{prefix}:gw:charges", keys.charge_counts, keys.charge_total),
        (f"{prefix}:gw:refunds", keys.refund_counts, keys.refund_total),
    ]
    split = 0
    for old, per_order, total in counters:
        counts = {_text(k): int(v) for k, v in redis.hgetall(old).items()}
        if not counts:
            continue
        by_vshard: dict[int, dict[str, int]] = defaultdict(dict)
        for order_id, count in counts.items():
            by_vshard[vshard_of(order_id)][order_id] = count
        split += len(counts)
        if dry_run:
            continue
        pipe = redis.pipeline(transaction=True)
        for vshard, found in by_vshard.items():
            for order_id, count in found.items():
                pipe.hincrby(per_order(vshard), order_id, count)
            pipe.incrby(total(vshard), sum(found.values()))
        pipe.delete(old)
        pipe.execute()
    if not dry_run:
        for old, new in renames.items():
            if redis.exists(new):  # written meanwhile under today's name: keep it
                continue
            redis.rename(old, new)
        if drop:
            redis.delete(*drop)
    return {"renamed": len(renames), "deleted": len(drop), "counts split": split}
