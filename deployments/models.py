"""Request and response models of the HTTP contract (camelCase JSON).

The OpenAPI document is generated from these models, and it states every rule they
enforce that JSON Schema can state: patterns, lengths, enums, ``exclusiveMinimum``, types
without coercion (a JSON ``false`` is no number, ``"5"`` no integer). What it cannot state
is said in the field's description and written down, with the reason, as an exception
in schemathesis.toml: the decimal places and the cap that depend on the currency, card
numbers (a checksum), and the refusals that depend on stored state.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Header
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from raypay.domain.cards import looks_like_card_number
from raypay.domain.model import (
    AMOUNT_TOO_LARGE,
    OrderStatus,
    Payment,
    PaymentRequest,
    ReservationStatus,
    iso,
)
from raypay.domain.money import Money, MoneyError, TooManyDecimals, currencies, is_currency
from raypay.domain.refunds import Refund, RefundReason, RefundRequest

# Ids: 1-64 characters, letters, digits and _ . : - (no spaces, slashes or unicode).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
# Tokens start with a letter: a number is never a payment method.
TOKEN_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
# X-Request-ID and Idempotency-Key: visible ASCII, to travel into logs and Kafka headers as is.
VISIBLE_ASCII = r"^[\x21-\x7e]+$"
REQUEST_ID_MAX_LENGTH = 128
# A decimal written out: no exponent, no spaces, no "_" separators, no "+".
_DECIMAL_TEXT = re.compile(r"-?[0-9]{1,24}(\.[0-9]{1,24})?")
# What the text allows, for numbers too: an order seeded from a number is paid with text.
AMOUNT_LIMIT = 10**24
# What the amount's rules leave of that, as a JSON Schema pattern: greater than zero.
POSITIVE_DECIMAL_PATTERN = r"^(?!0*(\.0*)?$)[0-9]{1,24}(\.[0-9]{1,24})?$"
RAW_CARD_NUMBER = "raw_card_number"
# The stable `type` of the amount's errors that depend on its currency (the cap's, with
# the cap: AMOUNT_TOO_LARGE, raypay/domain/model.py).
AMOUNT_DECIMALS = "amount_decimals"

# JSON Schema of an amount: a number or a plain decimal string, > 0. Written here rather
# than derived from ``Decimal``, which would document any number and any string.
Amount = Annotated[
    Decimal,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": AMOUNT_LIMIT},
                {"type": "string", "pattern": POSITIVE_DECIMAL_PATTERN},
            ]
        }
    ),
]
AMOUNT_RULES = (
    "A JSON number or a plain decimal string (no exponent, sign, spaces or `_`), "
    "greater than zero, below 10^24. Also, which JSON Schema cannot state: at most the currency's "
    "decimal places (USD 2, JPY 0, KWD 3; `amount_decimals`)"
)
Currency = Annotated[str, Field(json_schema_extra={"enum": currencies()})]


def _plain_decimal(value: Any) -> Any:
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise ValueError("amount must be a plain decimal such as 25.00")
    return value


def _money(amount: Decimal, info: ValidationInfo) -> Decimal:
    """The amount's bound, and its rules that depend on its currency (validated first)."""
    if amount >= AMOUNT_LIMIT:
        raise ValueError("amount must be less than 10^24")
    currency = info.data.get("currency")
    if currency is None:  # refused already, with its own error
        return amount
    try:
        Money.parse(amount, currency)
    except TooManyDecimals as exc:
        raise PydanticCustomError(AMOUNT_DECIMALS, str(exc)) from None
    except MoneyError as exc:
        raise ValueError(str(exc)) from None
    return amount


def _known_currency(value: str) -> str:
    if not is_currency(value):
        raise ValueError(f"{value} is not an ISO 4217 currency code")
    return value


def _json_number(value: Any) -> Any:
    """A JSON number only: no ``true`` for 1, no ``"5"`` for 5 (the schema says number)."""
    if isinstance(value, bool | str):
        raise PydanticCustomError("number_type", "Input should be a JSON number")
    return value


# The payment route's headers (the FastAPI route and deployments/lean_route.py).
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=255, pattern=VISIBLE_ASCII)]
# Serve takes the client's X-Request-ID (or makes one), returns it and logs it; the
# payment carries it through the shard, the gateway call and into the event's headers.
RequestId = Annotated[
    str | None,
    Header(
        alias="X-Request-ID",
        min_length=1,
        max_length=REQUEST_ID_MAX_LENGTH,
        pattern=VISIBLE_ASCII,
        description="Your id for this request (visible ASCII); one is made if absent",
    ),
]


class PaymentBody(BaseModel):
    """POST /v1/payments body."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "orderId": "ord_123",
                    "customerId": "cus_42",
                    "amount": "25.00",
                    "currency": "USD",
                    "paymentMethod": "pm_card_visa",
                    "reservationId": "res_123",
                }
            ]
        },
    )

    order_id: str = Field(pattern=ID_PATTERN)
    customer_id: str = Field(pattern=ID_PATTERN)
    # Before the amount: the amount's decimal places are checked against it.
    currency: Currency = Field(description="ISO 4217 code")
    amount: Amount = Field(
        description=f"{AMOUNT_RULES}, and at most RAYPAY_MAX_AMOUNT major units of the "
        f"currency, a setting of the deployment (`{AMOUNT_TOO_LARGE}`). Must equal the "
        "order's amount (`amount_mismatch`)."
    )
    payment_method: str = Field(
        pattern=TOKEN_PATTERN,
        description="Token, e.g. pm_card_visa; a token whose digits pass as a card number "
        "(13-19 digits passing the Luhn check) is refused (`raw_card_number`)",
    )
    reservation_id: str | None = Field(default=None, pattern=ID_PATTERN)

    @field_validator("payment_method", mode="before")
    @classmethod
    def not_a_card_number(cls, value: Any) -> Any:
        # Before any other check: the number must not travel on in an error or a record.
        if isinstance(value, str | int) and looks_like_card_number(str(value)):
            raise PydanticCustomError(
                RAW_CARD_NUMBER, "looks like a raw card number: send a payment token"
            )
        return value

    _plain_decimal = field_validator("amount", mode="before")(_plain_decimal)
    _money = field_validator("amount")(_money)
    _known_currency = field_validator("currency")(_known_currency)

    def to_domain(self, request_id: str | None = None) -> PaymentRequest:
        return PaymentRequest(
            order_id=self.order_id,
            customer_id=self.customer_id,
            amount=Money.parse(self.amount, self.currency),
            payment_method=self.payment_method,
            reservation_id=self.reservation_id,
            request_id=request_id,
        )


class AdminOrdersBody(BaseModel):
    """POST /v1/admin/orders body: what ``raypay seed`` takes, for admin keys."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    count: int = Field(1, ge=1, le=1000)
    currency: Currency = "USD"
    amount: Amount = Field(Decimal("25.00"), description=AMOUNT_RULES, validate_default=True)
    status: OrderStatus = OrderStatus.PENDING_PAYMENT
    customer_id: str | None = Field(None, pattern=ID_PATTERN)
    reservation: bool = Field(False, strict=True)
    reservation_status: ReservationStatus = ReservationStatus.ACTIVE
    reservation_ttl_seconds: float = Field(900.0, ge=-86_400, le=86_400 * 30, strict=True)
    # Starts the ids it prefixes, so it starts as an id does (ID_PATTERN).
    id_prefix: str = Field("", pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9_.:-]{0,15})?$")

    _count_is_a_number = field_validator("count", mode="before")(_json_number)
    _plain_decimal = field_validator("amount", mode="before")(_plain_decimal)
    _money = field_validator("amount")(_money)
    _known_currency = field_validator("currency")(_known_currency)


class SeededOrder(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    order_id: str
    customer_id: str
    amount: str
    currency: str
    status: str
    reservation_id: str | None = None


class SeededOrders(BaseModel):
    orders: list[SeededOrder]


class PaymentOut(BaseModel):
    """The payment object."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    payment_id: str
    order_id: str
    customer_id: str
    reservation_id: str | None
    amount: str = Field(examples=["25.00"])
    currency: str
    payment_method: str
    status: str = Field(examples=["succeeded"])
    transaction_id: str | None
    error_code: str | None
    error_message: str | None
    created_at: str
    processed_at: str | None
    is_simulated: bool
    amount_refunded: str = Field(examples=["0.00"], description="What its refunds paid back")
    refunded: bool = Field(
        description="Fully refunded. The status stays succeeded: it says how the charge ended"
    )


def payment_body(payment: Payment) -> dict[str, Any]:
    """The payment object of the HTTP contract (``PaymentOut``'s fields, by alias).

    Built by hand, not through the model: it runs for every answer, and a unit test
    keeps it and ``PaymentOut`` the same.
    """
    return {
        "paymentId": payment.payment_id,
        "orderId": payment.order_id,
        "customerId": payment.customer_id,
        "reservationId": payment.reservation_id,
        "amount": str(payment.amount),
        "currency": payment.amount.currency,
        "paymentMethod": payment.payment_method,
        "status": payment.status.value,
        "transactionId": payment.transaction_id,
        "errorCode": payment.error_code,
        "errorMessage": payment.error_message,
        "createdAt": iso(payment.created_at),
        "processedAt": iso(payment.processed_at) if payment.processed_at else None,
        "isSimulated": payment.is_simulated,
        "amountRefunded": str(payment.amount_refunded),
        "refunded": payment.refunded,
    }


class OrderPaymentsOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    order_id: str
    payments: list[PaymentOut]


# Refund metadata, as Stripe's: a few short string pairs, never a card number.
METADATA_KEY = r"^[A-Za-z0-9_.:-]{1,40}$"
MAX_METADATA = 20
# The key and value rules in the type, so the OpenAPI document states them too
# (propertyNames, maxLength); check_metadata keeps them for callers without pydantic.
Metadata = dict[
    Annotated[str, StringConstraints(pattern=METADATA_KEY)],
    Annotated[str, StringConstraints(max_length=500)],
]


def check_metadata(value: dict[str, str]) -> dict[str, str]:
    """Short string pairs, never a card number (a validator of the bodies that take it)."""
    for key, text in value.items():
        if not re.fullmatch(METADATA_KEY, key):
            raise ValueError("metadata keys: 1-40 of letters, digits and _ . : -")
        if len(text) > 500:
            raise ValueError("metadata values: at most 500 characters")
        if looks_like_card_number(text):
            raise PydanticCustomError(RAW_CARD_NUMBER, "metadata must not hold a card number")
    return value


class RefundBody(BaseModel):
    """POST /v1/payments/{paymentId}/refunds body."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={"examples": [{"amount": "10.00", "reason": "requested_by_customer"}]},
    )

    amount: Amount | None = Field(
        default=None,
        description=AMOUNT_RULES.replace("the currency's", "the payment currency's")
        + "; absent: all that is left to refund",
    )
    reason: RefundReason
    metadata: Metadata = Field(
        default_factory=dict,
        max_length=MAX_METADATA,
        json_schema_extra={"additionalProperties": False},  # keys: only the pattern's
    )

    # As a payment's amount: a JSON number or a plain decimal string, > 0, < 10^24.
    _plain_decimal = field_validator("amount", mode="before")(_plain_decimal)

    @field_validator("amount")
    @classmethod
    def positive(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not 0 < value < AMOUNT_LIMIT:
            raise ValueError("amount must be greater than zero and less than 10^24")
        return value

    @field_validator("metadata")
    @classmethod
    def short_pairs(cls, value: dict[str, str]) -> dict[str, str]:
        return check_metadata(value)

    def to_domain(self, payment_id: str, request_id: str | None = None) -> RefundRequest:
        return RefundRequest(payment_id, self.reason, self.amount, self.metadata, request_id)


class RefundOut(BaseModel):
    """The refund object."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    refund_id: str
    payment_id: str
    order_id: str
    amount: str = Field(examples=["10.00"])
    currency: str
    reason: RefundReason
    status: str = Field(examples=["succeeded"], description="pending | succeeded | failed")
    gateway_refund_id: str | None
    error_code: str | None
    error_message: str | None
    metadata: dict[str, str]
    created_at: str
    processed_at: str | None


def refund_body(refund: Refund) -> dict[str, Any]:
    """The refund object of the HTTP contract (``RefundOut``'s fields, by alias)."""
    return {
        "refundId": refund.refund_id,
        "paymentId": refund.payment_id,
        "orderId": refund.order_id,
        "amount": str(refund.amount),
        "currency": refund.amount.currency,
        "reason": refund.reason.value,
        "status": refund.status.value,
        "gatewayRefundId": refund.gateway_refund_id,
        "errorCode": refund.error_code,
        "errorMessage": refund.error_message,
        "metadata": dict(refund.metadata),
        "createdAt": iso(refund.created_at),
        "processedAt": iso(refund.processed_at) if refund.processed_at else None,
    }


class PaymentRefundsOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    payment_id: str
    refunds: list[RefundOut]


class Problem(BaseModel):
    """RFC 9457 problem details, with raypay's stable ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
