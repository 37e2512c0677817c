"""One typed settings object, read from environment variables (prefix ``RAYPAY_``).

``REDIS_URL`` and ``KAFKA_BOOTSTRAP_SERVERS`` are also read without the prefix,
because that is how platforms hand out service URLs. Read in bootstrap code
(``Settings()``), never at import time.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from raypay.domain.auth import parse_api_keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAYPAY_", extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6380/0",
        validation_alias=AliasChoices("RAYPAY_REDIS_URL", "REDIS_URL"),
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("RAYPAY_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    # REDIS_URL names one node of a Redis Cluster (redis-py's cluster client; it has no URL
    # scheme of its own). Keys carry hash tags either way (raypay/adapters/keys.py).
    redis_cluster: bool = False
    # Durable steps (a payment or refund begun or settled, a simulated charge, a refund
    # batch made) are answered only once this many replicas have them (WAIT); a shortfall
    # is a 503 to retry. Unset: 1 on a cluster, 0 (no wait) on one Redis.
    redis_wait_replicas: int | None = Field(None, ge=0)
    redis_wait_timeout_ms: int = Field(500, ge=1)
    # On for real Kafka; the embedded Tansu broker has no InitProducerId, so the
    # embedded stack turns it off explicitly.
    kafka_idempotence: bool = True
    topic_succeeded: str = "payment-succeeded"
    topic_failed: str = "payment-failed"
    topic_refund_succeeded: str = "refund-succeeded"
    topic_refund_failed: str = "refund-failed"
    key_prefix: str = "raypay"
    # Bounded waits: a dead dependency answers 503 quickly instead of hanging.
    # Redis: a healthy Redis with `appendfsync always` answers a shard's batch only after
    # its script runs and the AOF is fsynced, behind the batch before it; on a busy host
    # that adds up to over a second now and then (README "Durability and Redis stalls"),
    # and 1.0 turned those moments into bursts of 503s. A refused connection still fails
    # at once; a Redis that hangs answers with a 503 within about twice this (the wait
    # for a free connection, then for the answer: redis_client.connect).
    redis_timeout_s: float = 3.0
    gateway_timeout_s: float = 5.0
    shard_timeout_s: float = 15.0
    # Where the embedded stack keeps Redis's append-only files and its state file.
    data_dir: str = ".raypay"
    max_body_bytes: int = 16_384
    # POST /v1/refund-batches carries up to 10,000 orderIds: its own, larger limit.
    max_batch_body_bytes: int = 1_048_576
    # Refund batches refund at most this many orders a second, all batches together, so
    # a cancelled event's refunds never crowd out live payments.
    refund_batch_rate: float = Field(50, gt=0)
    idempotency_ttl_s: int = 24 * 3600
    # Delivered events stay in Redis this long (the outbox's delivery log), so a broker
    # that lost them (the embedded one keeps everything in memory) gets them again. A
    # day of a flash sale by default; against real Kafka, which keeps its own log, it
    # only costs memory and can be short.
    event_retention_s: float = Field(24 * 3600, ge=0)
    # `raypay up`: Serve's HAProxy ingress + throughput-optimized mode (see launch.py).
    fast_ingress: bool = True
    # POST /v1/payments answered by deployments/lean_route.py, not FastAPI's routing
    # (same validation and answers, less CPU); off: the FastAPI route serves it.
    lean_payment_route: bool = True

    # --- trust: API keys, rate limits, amount cap (README: "Keys, roles and limits") ---
    # Keys configured by hash, "sha256hex:role,..." (role checkout or admin); keys can
    # also live in Redis as {key_prefix}:apikey:{sha256}, which `raypay keys` manages.
    api_keys: str = ""
    # How long a replica trusts its cached answer about a key: the bound on how long a
    # revoked key keeps working, and on how often a replica asks Redis about a key.
    api_key_cache_s: float = Field(1.0, ge=0, le=60)
    # Token buckets, requests per second with a burst; 0 turns a limit off.
    rate_limit_per_key: float = Field(10_000, ge=0)
    rate_limit_per_key_burst: int = Field(20_000, ge=1)
    rate_limit_per_customer: float = Field(20, ge=0)
    rate_limit_per_customer_burst: int = Field(100, ge=1)
    # Largest amount of one payment, in major units of the request's currency;
    # per-currency overrides as JSON, e.g. RAYPAY_MAX_AMOUNT_BY_CURRENCY='{"JPY": 15000000}'.
    max_amount: Decimal = Field(Decimal(100_000), gt=0)
    max_amount_by_currency: dict[str, Decimal] = Field(default_factory=dict)

    def wait_replicas(self) -> int:
        """The replicas a durable step waits for (``redis_wait_replicas``, by mode)."""
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if self.redis_cluster else 0

    def topics(self) -> list[str]:
        """Every topic raypay publishes to: the broker must have each (the relay waits)."""
        return [
            self.topic_succeeded,
            self.topic_failed,
            self.topic_refund_succeeded,
            self.topic_refund_failed,
        ]

    @field_validator("api_keys")
    @classmethod
    def _valid_api_keys(cls, value: str) -> str:
        parse_api_keys(value)
        return value
