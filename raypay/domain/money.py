"""Money: ``Decimal`` at the edge, integer minor units in storage, never float.

The currency's ISO 4217 exponent decides which amounts are valid: USD has 2
decimal places, JPY 0, KWD 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, Underflow

from raypay.domain.pickling import by_fields

# ISO 4217 active codes with their minor-unit exponent. Codes not listed are rejected.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN "
        "BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
        "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR "
        "KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN "
        "MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB RWF SAR "
        "SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD "
        "TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWL".split(),
        2,
    ),
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG UGX VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}


class MoneyError(ValueError):
    """An amount or currency that cannot be money."""


class TooManyDecimals(MoneyError):
    """More decimal places than the currency has: the rule that ties an amount to its
    currency, which a JSON Schema of the amount alone cannot state."""


def _shift(value: Decimal, places: int) -> Decimal:
    """``value * 10**places`` exactly: the default context (28 digits) would round."""
    exact = Context(
        prec=max(1, len(value.as_tuple().digits)),
        traps=[InvalidOperation, Overflow, Underflow, Inexact],
    )
    return value.scaleb(places, exact)


def exponent(currency: str) -> int:
    """Minor-unit exponent of an ISO 4217 currency code; MoneyError if unknown."""
    try:
        return _EXPONENTS[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}") from None


def is_currency(code: str) -> bool:
    return code in _EXPONENTS


def currencies() -> list[str]:
    """Every ISO 4217 code raypay takes, sorted (the HTTP contract lists them)."""
    return sorted(_EXPONENTS)


@by_fields
@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of one currency."""

    minor: int
    currency: str

    @classmethod
    def parse(cls, amount: Decimal | str | int, currency: str) -> Money:
        """Parse a decimal amount; rejects floats, non-finite, <= 0 and excess decimals."""
        if isinstance(amount, float) or isinstance(amount, bool):
            raise MoneyError("amount must be a decimal string or an integer, not a float")
        try:
            value = Decimal(amount)
        except (InvalidOperation, TypeError, ValueError):
            raise MoneyError(f"amount {amount!r} is not a decimal number") from None
        if not value.is_finite():
            raise MoneyError("amount must be a finite number")
        if value <= 0:
            raise MoneyError("amount must be greater than zero")
        exp = exponent(currency)
        try:
            scaled = _shift(value, exp)
        except ArithmeticError:
            raise MoneyError(f"amount {amount!r} is out of range") from None
        if scaled != scaled.to_integral_value():
            raise TooManyDecimals(f"{currency} allows at most {exp} decimal places")
        return cls(int(scaled), currency)

    @property
    def amount(self) -> Decimal:
        """The amount as a Decimal with exactly the currency's decimal places."""
        return _shift(Decimal(self.minor), -exponent(self.currency))

    def __str__(self) -> str:
        exp = exponent(self.currency)
        return f"{self.amount:.{exp}f}"
