"""One typed settings object, read from environment variables (prefix ``RAYPAY_``).

``REDIS_URL`` and ``KAFKA_BOOTSTRAP_SERVERS`` are also read without the prefix,
because that is how platforms hand out service URLs. Read in bootstrap code
(``Settings()``), never at import time.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # On for real Kafka; the embedded Tansu broker has no InitProducerId, so the
    # embedded stack turns it off explicitly.
    kafka_idempotence: bool = True
    topic_succeeded: str = "payment-succeeded"
    topic_failed: str = "payment-failed"
    key_prefix: str = "raypay"
    # Bounded waits: a dead dependency answers 503 quickly instead of hanging.
    redis_timeout_s: float = 1.0
    gateway_timeout_s: float = 5.0
    shard_timeout_s: float = 15.0
    # Where the embedded stack keeps Redis's append-only files and its state file.
    data_dir: str = ".raypay"
    max_body_bytes: int = 16_384
    idempotency_ttl_s: int = 24 * 3600
