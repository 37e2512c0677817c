"""Money: Decimal at the edge, integer minor units in storage, never float (DESIGN.md, Money)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from raypay.domain.money import Money, MoneyError, exponent, is_currency

pytestmark = pytest.mark.unit


class TestParsingAmounts:
    @pytest.mark.parametrize(
        ("amount", "currency", "minor"),
        [
            (Decimal("25.00"), "USD", 2500),
            (Decimal("25"), "USD", 2500),
            ("19.99", "USD", 1999),
            ("0.01", "USD", 1),
            (7, "USD", 700),
            ("1E+2", "USD", 10000),
            ("1500", "JPY", 1500),
            (1500, "JPY", 1500),
            ("1.234", "KWD", 1234),
            ("0.001", "KWD", 1),
        ],
    )
    def test_decimals_ints_and_strings_become_minor_units(self, amount, currency, minor):
        assert Money.parse(amount, currency) == Money(minor, currency)

    def test_trailing_zeros_beyond_the_exponent_are_not_extra_decimals(self):
        assert Money.parse("1.500", "USD") == Money(150, "USD")
        assert Money.parse("100.0", "JPY") == Money(100, "JPY")

    @pytest.mark.parametrize("amount", [1.5, 10.0, 0.1])
    def test_floats_are_rejected(self, amount):
        with pytest.raises(MoneyError, match="float"):
            Money.parse(amount, "USD")

    @pytest.mark.parametrize("amount", [True, False])
    def test_booleans_are_rejected(self, amount):
        with pytest.raises(MoneyError):
            Money.parse(amount, "USD")

    @pytest.mark.parametrize("amount", ["0", "0.00", "-0", "-1", "-0.01", 0, -5, Decimal("-3")])
    def test_zero_and_negative_amounts_are_rejected(self, amount):
        with pytest.raises(MoneyError, match="greater than zero"):
            Money.parse(amount, "USD")

    @pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-Infinity", Decimal("NaN")])
    def test_nan_and_infinity_are_rejected(self, amount):
        with pytest.raises(MoneyError, match="finite"):
            Money.parse(amount, "USD")

    @pytest.mark.parametrize("amount", ["", "abc", "1,00", "1.2.3", "$5"])
    def test_text_that_is_no_number_is_rejected(self, amount):
        with pytest.raises(MoneyError, match="not a decimal number"):
            Money.parse(amount, "USD")

    def test_a_money_error_is_a_value_error(self):
        # pydantic validators turn ValueError into a 422 field error.
        assert issubclass(MoneyError, ValueError)


class TestCurrencyExponents:
    @pytest.mark.parametrize(("currency", "places"), [("USD", 2), ("EUR", 2), ("JPY", 0)])
    def test_known_exponents(self, currency, places):
        assert exponent(currency) == places

    def test_kwd_has_three_decimals(self):
        assert exponent("KWD") == 3

    @pytest.mark.parametrize(
        ("amount", "currency"),
        [("1.5", "JPY"), ("0.1", "JPY"), ("1.234", "USD"), ("0.001", "USD"), ("1.2345", "KWD")],
    )
    def test_more_decimals_than_the_currency_has_are_rejected(self, amount, currency):
        with pytest.raises(MoneyError, match=f"{currency} allows at most"):
            Money.parse(amount, currency)

    @pytest.mark.parametrize("currency", ["XXX", "usd", "US", "", "BTC"])
    def test_unknown_currencies_are_rejected(self, currency):
        assert not is_currency(currency)
        with pytest.raises(MoneyError, match="unknown currency"):
            Money.parse("1", currency)
        with pytest.raises(MoneyError):
            exponent(currency)

    def test_known_currencies_are_recognised(self):
        assert all(is_currency(code) for code in ("USD", "JPY", "KWD", "EUR", "GBP"))


class TestPrecision:
    """Amounts wider than the default 28-digit Decimal context must not be rounded."""

    def test_an_excess_decimal_far_behind_the_point_is_still_rejected(self):
        with pytest.raises(MoneyError, match="USD allows at most 2"):
            Money.parse("12345678901234567890123456.789", "USD")
        with pytest.raises(MoneyError, match="USD allows at most 2"):
            Money.parse("1.00000000000000000000000000001", "USD")

    def test_a_wide_amount_keeps_every_digit(self):
        wide = "1" * 30
        money = Money.parse(wide, "USD")
        assert money.minor == int(wide) * 100
        assert str(money) == f"{wide}.00"

    @pytest.mark.parametrize("amount", ["1e999999", "1e-99999999"])
    def test_absurd_exponents_are_a_money_error_not_an_arithmetic_crash(self, amount):
        with pytest.raises(MoneyError):
            Money.parse(amount, "USD")


class TestFormatting:
    @pytest.mark.parametrize(
        ("money", "text"),
        [
            (Money(2500, "USD"), "25.00"),
            (Money(1, "USD"), "0.01"),
            (Money(1050, "EUR"), "10.50"),
            (Money(1500, "JPY"), "1500"),
            (Money(1234, "KWD"), "1.234"),
            (Money(1000, "KWD"), "1.000"),
        ],
    )
    def test_str_has_exactly_the_currency_decimals(self, money, text):
        assert str(money) == text

    def test_amount_is_a_decimal_with_the_currency_decimals(self):
        amount = Money(1050, "USD").amount
        assert isinstance(amount, Decimal)
        assert amount == Decimal("10.50")
        assert amount.as_tuple().exponent == -2

    @pytest.mark.parametrize(
        ("minor", "currency"), [(1, "USD"), (99999, "USD"), (7, "JPY"), (1001, "KWD")]
    )
    def test_minor_units_round_trip_through_the_decimal_string(self, minor, currency):
        money = Money(minor, currency)
        assert Money.parse(str(money), currency) == money
        assert Money.parse(money.amount, currency) == money

    def test_money_is_a_value(self):
        assert Money(100, "USD") == Money.parse("1", "USD")
        assert Money(100, "USD") != Money(100, "EUR")
        assert len({Money(100, "USD"), Money.parse("1.00", "USD")}) == 1
