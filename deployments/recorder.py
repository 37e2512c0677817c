"""The one recorder of payment outcomes: every POST /v1/payments ends here.

``record`` is called once by the payment route, whatever the outcome (a payment, a
refusal, a dependency away, a bug); ``refused`` by the refusals before the route
(deployments/problems.py). It counts the outcome (actors/metrics.py, handed to Ray
once a second), observes the route's latency and writes the payment's one log line
(actors/logs.py): ids, outcome, code, latency; never the payment method or anything
else that could be card data.
"""

from __future__ import annotations

import asyncio
import logging

from actors.logs import outcome_log
from actors.metrics import IngressMetrics, tick_forever
from raypay.domain.model import PaymentRequest
from raypay.domain.outcomes import Outcome, OutcomeKind, classify


class OutcomeRecorder:
    def __init__(self, app: str, metrics: IngressMetrics, log: logging.Logger | None = None):
        self.metrics = metrics
        self.log = log or outcome_log(f"{app}-ingress")
        self._flusher: asyncio.Task[None] | None = None

    def record(
        self,
        request: PaymentRequest,
        result: Outcome | BaseException,
        seconds: float,
        shard: int | None = None,
    ) -> None:
        """One payment request's outcome: counted, timed and logged."""
        kind, code = classify(result)
        self._count(kind, code)
        self.metrics.answered(kind, seconds)
        payment = result.payment if isinstance(result, Outcome) else None
        self.log.info(
            "payment %s",
            kind.value,
            extra={
                "orderId": request.order_id,
                "paymentId": payment.payment_id if payment else None,
                "customerId": request.customer_id,
                "outcome": kind.value,
                "code": code or None,
                "latencyMs": round(seconds * 1000, 1),
                "requestId": request.request_id,
                "shard": shard,
            },
        )

    def refused(self, code: str) -> None:
        """A payment request refused before the route ran (401, 413, 415, 422, ...)."""
        self._count(OutcomeKind.REJECTED, code)

    def _count(self, kind: OutcomeKind, code: str) -> None:
        self.metrics.count(kind, code)
        if self._flusher is None:  # the replica's loop runs by now; __init__ may not have one
            self._flusher = asyncio.get_running_loop().create_task(tick_forever(self.metrics.flush))
