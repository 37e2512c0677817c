"""Every Redis key raypay reads or writes, in one place (prefix ``raypay`` by default).

    {p}:order:{orderId}              HASH   customerId, amountMinor, currency, status (upstream)
    {p}:reservation:{id}             HASH   orderId, customerId, status, expiresAt (upstream)
    {p}:payment:{paymentId}          HASH   the payment's storage record (records.py), and
                                            amountRefundingMinor: set aside by pending refunds
    {p}:payment:{paymentId}:refunds  LIST   refundIds, oldest first
    {p}:refund:{refundId}            HASH   the refund's storage record (records.py)
    {p}:refunds:pending              ZSET   pending refundIds by createdAt (ms), for the sweep
    {p}:refund-batch:{batchId}       HASH   the batch's record (records.py): reason, total,
                                            status, cursor, counts by outcome
    {p}:refund-batch:{batchId}:orders LIST  its orderIds, in the order given
    {p}:refund-batch:{batchId}:items HASH   orderId -> its outcome (JSON), written once
    {p}:refund-batches:open          SET    ids of the batches still running
    {p}:order:{orderId}:payments     LIST   paymentIds, oldest first
    {p}:order:{orderId}:succeeded    STRING the succeeded paymentId
    {p}:order:{orderId}:pending      STRING the pending paymentId
    {p}:order:{orderId}:seq          STRING the sequence number of the order's last event
    {p}:pending                      ZSET   pending paymentIds by createdAt (ms), for the sweep
    {p}:outbox                       STREAM events waiting for Kafka (eventId, kind, key, value,
                                            requestId); consumer group ``relay``
    {p}:outbox:delivered             STREAM events the broker acknowledged, whole (eventId, kind,
                                            key, value, requestId), kept for the retention
                                            window (RAYPAY_EVENT_RETENTION_S, trimmed by
                                            entry id): replayed to a broker that lost them
    {p}:idem:{key}                   STRING the outcome stored for an Idempotency-Key (expires)
    {p}:gw:charge:{key}              STRING the simulator's result for a gateway idempotency key
    {p}:gw:charges                   HASH   charge attempts per orderId (simulator)
    {p}:gw:charges:total             STRING charge attempts in all (simulator)
    {p}:gw:refund:{key}              STRING the simulator's result for a refund idempotency key
    {p}:gw:refunds                   HASH   refunds made per orderId (simulator)
    {p}:gw:refunds:total             STRING refunds made in all (simulator)
    {p}:apikey:{sha256}              HASH   role, label, createdAt [, rate, burst]
    {p}:ticket:{paymentId}           HASH   `raypay fulfill`'s ticket: ticketId, orderId,
                                            paymentId, status (issued|void), issuedAt, voidedAt
    {p}:fulfil:event:{eventId}       STRING an event `raypay fulfill` handled (expires in 7 days)
    {p}:fulfil:stats                 HASH   issued, voided, voidedFirst, duplicates
    {p}:rl:key:{keyId}               HASH   token bucket of an API key (tokens, at)
    {p}:rl:customer:{customerId}     HASH   token bucket of a customer (tokens, at)

The Lua scripts and the steps that touch more than one key (all in ``raypay/adapters``):

    redis_store.py  _BEGIN    order:succeeded, order:pending, payment, order:payments, pending
    redis_store.py  _SETTLE   payment, order:pending, order:succeeded, pending, outbox,
                              order:seq
    refund_store.py _BEGIN    payment (amounts), refund, payment:refunds, refunds:pending,
                              order:succeeded (released when the seat hold was lost)
    refund_store.py _SETTLE   refund, payment (amounts), refunds:pending, outbox, order:seq
    batch_store.py  _CREATE   refund-batch, refund-batch:orders, refund-batches:open
    batch_store.py  _RECORD   refund-batch:items, refund-batch (counts, status),
                              refund-batches:open
    ticket_store.py _ISSUE, _VOID   fulfil:event, ticket, fulfil:stats
    gateway_sim.py  _RECORD   gw:charge, gw:charges, gw:charges:total (charges), or
                              gw:refund, gw:refunds, gw:refunds:total (refunds)
    rate_limiter.py _TAKE     rl:key and rl:customer, in one call
    outbox.py       ack       MULTI: XACK + XDEL outbox, XADD + XTRIM MINID outbox:delivered

_BEGIN, _SETTLE and _RECORD run batched (script_batch.py): one EVALSHA carries the calls
of one event-loop turn, each still atomic on its own; such a batch touches the keys of
many orders, so on Redis Cluster it must first be grouped by hash slot.

Names are stable: stored data and the upstream services' order and reservation
records are read as they are.
"""

from __future__ import annotations


class Keys:
    """The key names of one raypay deployment (its ``key_prefix``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pending_index = f"{prefix}:pending"
        self.outbox = f"{prefix}:outbox"
        self.delivered_log = f"{prefix}:outbox:delivered"
        self.charge_counts = f"{prefix}:gw:charges"
        self.charge_total = f"{prefix}:gw:charges:total"
        self.refunds_pending = f"{prefix}:refunds:pending"
        self.refund_counts = f"{prefix}:gw:refunds"
        self.refund_total = f"{prefix}:gw:refunds:total"
        self.open_batches = f"{prefix}:refund-batches:open"
        self.fulfil_stats = f"{prefix}:fulfil:stats"

    def order(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}"

    def reservation(self, reservation_id: str) -> str:
        return f"{self.prefix}:reservation:{reservation_id}"

    def payment(self, payment_id: str) -> str:
        return f"{self.prefix}:payment:{payment_id}"

    def payment_refunds(self, payment_id: str) -> str:
        return f"{self.prefix}:payment:{payment_id}:refunds"

    def refund(self, refund_id: str) -> str:
        return f"{self.prefix}:refund:{refund_id}"

    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}:refund-batch:{batch_id}"

    def batch_orders(self, batch_id: str) -> str:
        return f"{self.prefix}:refund-batch:{batch_id}:orders"

    def batch_items(self, batch_id: str) -> str:
        return f"{self.prefix}:refund-batch:{batch_id}:items"

    def ticket(self, payment_id: str) -> str:
        return f"{self.prefix}:ticket:{payment_id}"

    def fulfilled_event(self, event_id: str) -> str:
        return f"{self.prefix}:fulfil:event:{event_id}"

    def gateway_refund(self, idempotency_key: str) -> str:
        return f"{self.prefix}:gw:refund:{idempotency_key}"

    def order_payments(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}:payments"

    def succeeded(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}:succeeded"

    def pending(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}:pending"

    def order_sequence(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}:seq"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:idem:{key}"

    def charge(self, idempotency_key: str) -> str:
        return f"{self.prefix}:gw:charge:{idempotency_key}"

    def api_key(self, digest: str) -> str:
        return f"{self.prefix}:apikey:{digest}"

    def key_bucket(self, key_id: str) -> str:
        return f"{self.prefix}:rl:key:{key_id}"

    def customer_bucket(self, customer_id: str) -> str:
        return f"{self.prefix}:rl:customer:{customer_id}"
