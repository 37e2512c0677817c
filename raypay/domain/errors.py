"""The one error hierarchy of raypay. Each class carries its stable problem
``code``, its HTTP ``status`` and whether a client may retry it unchanged.

    RaypayError
    ├── Rejected                      4xx: do not retry unchanged
    │   ├── InvalidRequest            400/422 invalid_json, validation_error
    │   │   └── RawCardNumber         422 raw_card_number (never echoed, stored or logged)
    │   ├── Unauthorized              401 unauthorized (no key, unknown or revoked key)
    │   ├── Forbidden                 403 forbidden (the key's role may not do this)
    │   ├── OrderNotFound             404 order_not_found
    │   ├── ReservationNotFound       404 reservation_not_found
    │   ├── PaymentNotFound           404 payment_not_found
    │   ├── RefundNotFound            404 refund_not_found
    │   ├── RefundBatchNotFound       404 refund_batch_not_found
    │   ├── ReservationInactive       409 reservation_inactive
    │   ├── OrderNotPayable           409 order_not_payable
    │   ├── PaymentNotRefundable      409 payment_not_refundable (only a succeeded payment is)
    │   ├── ReservationExpiredDuringPayment  409 reservation_expired_during_payment
    │   │                             (+ the payment and the refund that paid it back)
    │   ├── AmountMismatch            422 amount_mismatch
    │   ├── RefundExceedsPayment      422 refund_exceeds_payment (more than is left to refund)
    │   ├── IdempotencyKeyReused      422 idempotency_key_reused
    │   ├── PayloadTooLarge           413 payload_too_large
    │   └── UnsupportedMediaType      415 unsupported_media_type
    ├── RateLimited                   429 rate_limited, retriable after Retry-After
    ├── PaymentDeclined               402 card_declined, insufficient_funds, ... (+ the payment)
    ├── RefundDeclined                402 refund_declined (+ the failed refund)
    └── Unavailable                   503 unavailable, retriable, with Retry-After
        ├── StoreUnavailable          Redis unreachable or too slow
        ├── GatewayUnavailable        gateway timeout or error
        └── ShardUnavailable          a PaymentActor shard is down

Errors cross Ray process boundaries, so every class pickles from its ``args``.
``headers()`` are the HTTP headers a response to the error carries (``Retry-After``,
``WWW-Authenticate``): like ``status``, part of each error's contract. The problem+json
body is made in the serve layer (deployments/problems.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from raypay.domain.model import Payment
    from raypay.domain.refunds import Refund


class RaypayError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    retriable: ClassVar[bool] = False

    def __init__(self, detail: str = "", extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra)
        self.detail = detail or self.title
        self.extra = dict(extra or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"

    def headers(self) -> dict[str, str]:
        """HTTP headers of the problem response."""
        return {}


class Rejected(RaypayError):
    status = 400
    title = "Request rejected"


class InvalidRequest(Rejected):
    code = "validation_error"
    status = 422
    title = "Request body is invalid"


class InvalidJson(InvalidRequest):
    code = "invalid_json"
    status = 400
    title = "Request body is not valid JSON"


class RawCardNumber(InvalidRequest):
    """A payment method that is a card number, not a token. The detail never repeats it."""

    code = "raw_card_number"
    status = 422
    title = "Raw card numbers are not accepted"


class Unauthorized(Rejected):
    code = "unauthorized"
    status = 401
    title = "A valid API key is required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="raypay"'}


class Forbidden(Rejected):
    code = "forbidden"
    status = 403
    title = "This API key may not do this"


class OrderNotFound(Rejected):
    code = "order_not_found"
    status = 404
    title = "Order not found"


class ReservationNotFound(Rejected):
    code = "reservation_not_found"
    status = 404
    title = "Reservation not found"


class PaymentNotFound(Rejected):
    code = "payment_not_found"
    status = 404
    title = "Payment not found"


class RefundNotFound(Rejected):
    code = "refund_not_found"
    status = 404
    title = "Refund not found"


class RefundBatchNotFound(Rejected):
    code = "refund_batch_not_found"
    status = 404
    title = "Refund batch not found"


class ReservationInactive(Rejected):
    code = "reservation_inactive"
    status = 409
    title = "Reservation is no longer active"


class OrderNotPayable(Rejected):
    code = "order_not_payable"
    status = 409
    title = "Order cannot be paid in its current state"


class PaymentNotRefundable(Rejected):
    code = "payment_not_refundable"
    status = 409
    title = "Only a succeeded payment can be refunded"


class RefundExceedsPayment(Rejected):
    code = "refund_exceeds_payment"
    status = 422
    title = "Refunds would exceed what the payment charged"


class ReservationExpiredDuringPayment(Rejected):
    """The seat hold expired (or was released) while the card was charged: the payment
    succeeded and was refunded at once. ``payment`` and ``refund`` are both."""

    code = "reservation_expired_during_payment"
    status = 409
    title = "The reservation expired while the payment was made; it was refunded"

    def __init__(
        self, detail: str = "", payment: Payment | None = None, refund: Refund | None = None
    ) -> None:
        super().__init__(detail)
        self.args = (detail, payment, refund)
        self.payment, self.refund = payment, refund


class AmountMismatch(Rejected):
    code = "amount_mismatch"
    status = 422
    title = "Amount or currency differs from the order"


class IdempotencyKeyReused(Rejected):
    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency-Key was used with a different request"


class PayloadTooLarge(Rejected):
    code = "payload_too_large"
    status = 413
    title = "Request body is too large"


class UnsupportedMediaType(Rejected):
    code = "unsupported_media_type"
    status = 415
    title = "Content-Type must be application/json"


class RateLimited(RaypayError):
    """Too many requests for an API key or a customer; retry after ``retry_after_s``."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"
    retriable = True

    def __init__(
        self, detail: str = "", extra: dict[str, Any] | None = None, retry_after_s: int = 1
    ) -> None:
        super().__init__(detail, extra)
        self.args = (detail, extra, retry_after_s)
        self.retry_after_s = max(1, int(retry_after_s))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class PaymentDeclined(RaypayError):
    """The gateway declined; ``payment`` is the failed payment."""

    code = "card_declined"
    status = 402
    title = "Payment declined"

    def __init__(
        self, detail: str = "", payment: Payment | None = None, decline_code: str = ""
    ) -> None:
        super().__init__(detail)
        self.args = (detail, payment, decline_code)
        self.payment = payment
        self.decline_code = decline_code or type(self).code

    @property
    def problem_code(self) -> str:
        return self.decline_code


class RefundDeclined(RaypayError):
    """The gateway declined a refund; ``refund`` is the failed refund (its ``errorCode``
    says why; the problem's code is always ``refund_declined``)."""

    code = "refund_declined"
    status = 402
    title = "Refund declined"

    def __init__(self, detail: str = "", refund: Refund | None = None) -> None:
        super().__init__(detail)
        self.args = (detail, refund)
        self.refund = refund


class Unavailable(RaypayError):
    code = "unavailable"
    status = 503
    title = "Service temporarily unavailable"
    retriable = True
    retry_after_s: ClassVar[int] = 1
    # Which dependency was away (metrics and logs; the problem's code stays "unavailable").
    cause: ClassVar[str] = "unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class StoreUnavailable(Unavailable):
    title = "Payment store temporarily unavailable"
    cause = "redis"


class GatewayUnavailable(Unavailable):
    title = "Payment gateway temporarily unavailable"
    cause = "gateway"


class ShardUnavailable(Unavailable):
    title = "Payment shard temporarily unavailable"
    cause = "shard"


def problem_code(error: RaypayError) -> str:
    """The stable code a problem+json body carries for this error."""
    return getattr(error, "problem_code", error.code)


def error_classes() -> list[type[RaypayError]]:
    """Every error class of the hierarchy (stored outcomes name their error's class)."""
    return _subclasses(RaypayError)


def _subclasses(cls: type[RaypayError]) -> list[type[RaypayError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _subclasses(child))]
