"""Every Redis key raypay reads or writes, in one place (prefix ``raypay`` by default).

Keys a Redis Cluster can hold: every key of one order carries its virtual shard as a hash
tag, ``{vsN}`` with N = vshard_of(orderId) (raypay/domain/sharding.py), so each atomic step
touches one hash slot, and what is global on one Redis (the outbox, the pending sets, the
simulator's counters) is one key per vshard. A paymentId or refundId carries its vshard
(``pay_vs17_…``), so a key found from an id alone lands in the same slot.

    {p}:{vsN}:order:{orderId}              HASH   customerId, amountMinor, currency, status
                                                  (upstream, README "Orders and reservations")
    {p}:{vsN}:reservation:{id}             HASH   orderId, customerId, status, expiresAt
                                                  (upstream; N = the vshard of its orderId)
    {p}:{vsN}:order:{orderId}:payments     LIST   paymentIds, oldest first
    {p}:{vsN}:order:{orderId}:succeeded    STRING the succeeded paymentId
    {p}:{vsN}:order:{orderId}:pending      STRING the pending paymentId
    {p}:{vsN}:order:{orderId}:seq          STRING the sequence number of the order's last event
    {p}:{vsN}:payment:{paymentId}          HASH   the payment's storage record (records.py), and
                                                  amountRefundingMinor: set aside by pending refunds
    {p}:{vsN}:payment:{paymentId}:refunds  LIST   refundIds, oldest first
    {p}:{vsN}:refund:{refundId}            HASH   the refund's storage record (records.py)
    {p}:{vsN}:pending                      ZSET   this vshard's pending paymentIds by createdAt
                                                  (ms), for the sweep of the shard owning it
    {p}:{vsN}:refunds:pending              ZSET   pending refundIds by createdAt (ms)
    {p}:{vsN}:outbox                       STREAM events waiting for Kafka (eventId, kind, key,
                                                  value, requestId); consumer group ``relay``
    {p}:{vsN}:outbox:delivered             STREAM events the broker acknowledged, whole (eventId,
                                                  kind, key, value, requestId), kept for the
                                                  retention window (RAYPAY_EVENT_RETENTION_S,
                                                  trimmed by entry id): replayed to a broker
                                                  that lost them
        On one Redis (``Keys(prefix, cluster=False)``) these two are ``{p}:outbox`` and
        ``{p}:outbox:delivered``: one stream for every vshard, which the relay reads with
        one blocking XREADGROUP (naming 256 streams costs Redis ~1 ms a read). On a
        cluster they must sit in their vshard's slot, beside the keys settling writes.
    {p}:{vsN}:gw:charge:{key}              STRING the simulator's result for a gateway
                                                  idempotency key (N: the vshard the key carries)
    {p}:{vsN}:gw:charges                   HASH   charge attempts per orderId (simulator)
    {p}:{vsN}:gw:charges:total             STRING charge attempts in this vshard (simulator)
    {p}:{vsN}:gw:refund:{key}              STRING the simulator's result for a refund key
    {p}:{vsN}:gw:refunds                   HASH   refunds made per orderId (simulator)
    {p}:{vsN}:gw:refunds:total             STRING refunds made in this vshard (simulator)
    {p}:{vsN}:ticket:{paymentId}           HASH   `raypay fulfill`'s ticket: ticketId, orderId,
                                                  paymentId, status (issued|void), issuedAt,
                                                  voidedAt
    {p}:{vsN}:fulfil:event:{eventId}       STRING an event `raypay fulfill` handled (7 days;
                                                  N: the vshard of the event's payment)
    {p}:{vsN}:fulfil:stats                 HASH   issued, voided, voidedFirst, duplicates
    {p}:{rb}:refund-batch:{batchId}        HASH   the batch's record (records.py): reason,
                                                  total, status, cursor, counts by outcome
    {p}:{rb}:refund-batch:{batchId}:orders LIST   its orderIds, in the order given
    {p}:{rb}:refund-batch:{batchId}:items  HASH   orderId -> its outcome (JSON), written once
    {p}:{rb}:refund-batches:open           SET    ids of the batches still running
    {p}:{rl:{keyId}}:key                   HASH   token bucket of an API key (tokens, at)
    {p}:{rl:{keyId}}:customer:{customerId} HASH   token bucket of a customer through that key
    {p}:idem:{key}                         STRING the outcome stored for an Idempotency-Key
                                                  (expires; one key, its own slot)
    {p}:apikey:{sha256}                    HASH   role, label, createdAt [, rate, burst]

Refund batches are few and slow (50 orders/s): one tag, ``{rb}``, holds them all, so the
open set sits beside each batch. A customer's bucket shares its API key's tag, so both
buckets are taken in one script: the per-customer limit is counted per API key.

The Lua scripts and the steps that touch more than one key (all in ``raypay/adapters``),
each in one slot:

    redis_store.py  _BEGIN    order:succeeded, order:pending, payment, order:payments, pending
    redis_store.py  _SETTLE   payment, order:pending, order:succeeded, pending, outbox,
                              order:seq
    refund_store.py _BEGIN    payment (amounts), refund, payment:refunds, refunds:pending,
                              order:succeeded (released when the seat hold was lost)
    refund_store.py _SETTLE   refund, payment (amounts), refunds:pending, outbox, order:seq
    batch_store.py  _CREATE   refund-batch, refund-batch:orders, refund-batches:open  ({rb})
    batch_store.py  _RECORD   refund-batch:items, refund-batch (counts, status),
                              refund-batches:open  ({rb})
    ticket_store.py _ISSUE, _VOID   fulfil:event, ticket, fulfil:stats
    gateway_sim.py  _RECORD   gw:charge, gw:charges, gw:charges:total (charges), or
                              gw:refund, gw:refunds, gw:refunds:total (refunds)
    rate_limiter.py _TAKE     rl:key and rl:customer, in one call ({rl:keyId})
    outbox.py       _ACK      XACK + XDEL outbox, XADD + XTRIM MINID outbox:delivered (one
                              stream's slot)

_BEGIN, _SETTLE and _RECORD run batched (script_batch.py): one EVALSHA carries the calls
of one event-loop turn that share a hash slot (on one Redis: all of them).

Data stored under the names before vshards (``{p}:order:{orderId}``, ``{p}:pending``, …):
``raypay migrate-keys`` (raypay/tools/migrate.py) renames it on one Redis.
"""

from __future__ import annotations

from raypay.domain.sharding import VSHARDS, vshard_in, vshard_of


def tag(vshard: int) -> str:
    """The hash tag of a vshard: ``{vs17}``."""
    return f"{{vs{vshard}}}"


class Keys:
    """The key names of one raypay deployment (its ``key_prefix``)."""

    def __init__(self, prefix: str, cluster: bool = False) -> None:
        self.prefix, self.cluster = prefix, cluster
        self.open_batches = f"{prefix}:{{rb}}:refund-batches:open"
        # Per vshard, made once: these are asked for on every payment.
        self._vs = [f"{prefix}:{tag(v)}:" for v in range(VSHARDS)]

    # --- by vshard ---

    def in_vshard(self, vshard: int, name: str) -> str:
        return self._vs[vshard] + name

    def of_order(self, order_id: str, name: str) -> str:
        return self._vs[vshard_of(order_id)] + name

    def of_id(self, entity_id: str, name: str) -> str:
        return self._vs[vshard_in(entity_id)] + name

    def pending_index(self, vshard: int) -> str:
        return self._vs[vshard] + "pending"

    def refunds_pending(self, vshard: int) -> str:
        return self._vs[vshard] + "refunds:pending"

    def outbox(self, vshard: int) -> str:
        """The outbox stream of a vshard's events (on one Redis: the one outbox)."""
        return self._vs[vshard] + "outbox" if self.cluster else f"{self.prefix}:outbox"

    def delivered_log(self, vshard: int) -> str:
        if self.cluster:
            return self._vs[vshard] + "outbox:delivered"
        return f"{self.prefix}:outbox:delivered"

    def outboxes(self) -> list[str]:
        """Every outbox stream: one per vshard on a cluster, else one."""
        return [self.outbox(v) for v in range(VSHARDS if self.cluster else 1)]

    def delivered_logs(self) -> list[str]:
        return [self.delivered_log(v) for v in range(VSHARDS if self.cluster else 1)]

    def charge_counts(self, vshard: int) -> str:
        return self._vs[vshard] + "gw:charges"

    def charge_total(self, vshard: int) -> str:
        return self._vs[vshard] + "gw:charges:total"

    def refund_counts(self, vshard: int) -> str:
        return self._vs[vshard] + "gw:refunds"

    def refund_total(self, vshard: int) -> str:
        return self._vs[vshard] + "gw:refunds:total"

    def fulfil_stats(self, vshard: int) -> str:
        return self._vs[vshard] + "fulfil:stats"

    # --- an order's keys: the vshard of its orderId ---

    def order(self, order_id: str) -> str:
        return self.of_order(order_id, f"order:{order_id}")

    def reservation(self, reservation_id: str, order_id: str) -> str:
        """A reservation sits in its order's vshard: it is looked up with the orderId of
        the request (a reservation of another order is then not found: the same 404)."""
        return self.of_order(order_id, f"reservation:{reservation_id}")

    def order_payments(self, order_id: str) -> str:
        return self.of_order(order_id, f"order:{order_id}:payments")

    def succeeded(self, order_id: str) -> str:
        return self.of_order(order_id, f"order:{order_id}:succeeded")

    def pending(self, order_id: str) -> str:
        return self.of_order(order_id, f"order:{order_id}:pending")

    def order_sequence(self, order_id: str) -> str:
        return self.of_order(order_id, f"order:{order_id}:seq")

    # --- by an id that carries its vshard ---

    def payment(self, payment_id: str) -> str:
        return self.of_id(payment_id, f"payment:{payment_id}")

    def payment_refunds(self, payment_id: str) -> str:
        return self.of_id(payment_id, f"payment:{payment_id}:refunds")

    def refund(self, refund_id: str) -> str:
        return self.of_id(refund_id, f"refund:{refund_id}")

    def charge(self, idempotency_key: str) -> str:
        return self.of_id(idempotency_key, f"gw:charge:{idempotency_key}")

    def gateway_refund(self, idempotency_key: str) -> str:
        return self.of_id(idempotency_key, f"gw:refund:{idempotency_key}")

    def ticket(self, payment_id: str) -> str:
        return self.of_id(payment_id, f"ticket:{payment_id}")

    def fulfilled_event(self, event_id: str, payment_id: str) -> str:
        return self.of_id(payment_id, f"fulfil:event:{event_id}")

    # --- refund batches: one tag for all ---

    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}:{{rb}}:refund-batch:{batch_id}"

    def batch_orders(self, batch_id: str) -> str:
        return f"{self.prefix}:{{rb}}:refund-batch:{batch_id}:orders"

    def batch_items(self, batch_id: str) -> str:
        return f"{self.prefix}:{{rb}}:refund-batch:{batch_id}:items"

    # --- rate limits: an API key's tag ---

    def key_bucket(self, key_id: str) -> str:
        return f"{self.prefix}:{{rl:{key_id}}}:key"

    def customer_bucket(self, key_id: str, customer_id: str) -> str:
        return f"{self.prefix}:{{rl:{key_id}}}:customer:{customer_id}"

    # --- single keys, each its own slot ---

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:idem:{key}"

    def api_key(self, digest: str) -> str:
        return f"{self.prefix}:apikey:{digest}"
