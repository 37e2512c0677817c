"""Request and response models of the HTTP contract (camelCase JSON)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from raypay.domain.cards import looks_like_card_number
from raypay.domain.model import OrderStatus, Payment, PaymentRequest, ReservationStatus, iso
from raypay.domain.money import Money, MoneyError, is_currency

# Ids: 1-64 characters, letters, digits and _ . : - (no spaces, slashes or unicode).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
# Tokens start with a letter: a number is never a payment method.
TOKEN_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
# A decimal written out: no exponent, no spaces, no "_" separators, no "+".
_DECIMAL_TEXT = re.compile(r"-?[0-9]{1,24}(\.[0-9]{1,24})?")
RAW_CARD_NUMBER = "raw_card_number"
VISIBLE_ASCII = r"^[\x21-\x7e]+$"

# The payment route's headers (the FastAPI route and deployments/lean_route.py).
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=255, pattern=VISIBLE_ASCII)]
# Serve takes the client's X-Request-ID (or makes one), returns it and logs it; the
# payment carries it through the shard, the gateway call and into the event's headers.
RequestId = Annotated[
    str | None,
    Header(
        alias="X-Request-ID",
        min_length=1,
        max_length=128,
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
    amount: Decimal = Field(
        description="Decimal string or number, > 0, at most the currency's decimals"
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    payment_method: str = Field(
        pattern=TOKEN_PATTERN,
        description="Token, e.g. pm_card_visa; a raw card number is refused (raw_card_number)",
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

    @field_validator("amount", mode="before")
    @classmethod
    def plain_decimal(cls, value: Any) -> Any:
        if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
            raise ValueError("amount must be a plain decimal such as 25.00")
        return value

    @field_validator("currency")
    @classmethod
    def known_currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError(f"{value} is not an ISO 4217 currency code")
        return value

    @model_validator(mode="after")
    def valid_money(self) -> PaymentBody:
        try:
            Money.parse(self.amount, self.currency)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None
        return self

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
    amount: Decimal = Field(Decimal("25.00"), description="Decimal, the currency's decimals")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    status: OrderStatus = OrderStatus.PENDING_PAYMENT
    customer_id: str | None = Field(None, pattern=ID_PATTERN)
    reservation: bool = False
    reservation_status: ReservationStatus = ReservationStatus.ACTIVE
    reservation_ttl_seconds: float = Field(900.0, ge=-86_400, le=86_400 * 30)
    id_prefix: str = Field("", pattern=r"^[A-Za-z0-9_.:-]{0,16}$")

    @model_validator(mode="after")
    def valid_money(self) -> AdminOrdersBody:
        try:
            Money.parse(self.amount, self.currency)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None
        return self


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
    }


class OrderPaymentsOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    order_id: str
    payments: list[PaymentOut]


class Problem(BaseModel):
    """RFC 9457 problem details, with raypay's stable ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
