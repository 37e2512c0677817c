"""Request and response models of the HTTP contract (camelCase JSON)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from raypay.model import PaymentRequest
from raypay.money import Money, MoneyError, is_currency

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


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
        pattern=r"^[A-Za-z0-9_]{1,64}$", description="Token, e.g. pm_card_visa"
    )
    reservation_id: str | None = Field(default=None, pattern=ID_PATTERN)

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

    def to_domain(self) -> PaymentRequest:
        return PaymentRequest(
            order_id=self.order_id,
            customer_id=self.customer_id,
            amount=Money.parse(self.amount, self.currency),
            payment_method=self.payment_method,
            reservation_id=self.reservation_id,
        )


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
