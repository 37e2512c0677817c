"""The gateway simulator with its Redis charge ledger (fakeredis): test-card outcomes,
a reproducible decline rate, and one charge per idempotency key."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from raypay.adapters.gateway_sim import (
    GatewaySimulator,
    RedisChargeLedger,
    RedisRefundLedger,
    SimulatorConfig,
)
from raypay.adapters.keys import Keys
from raypay.domain.errors import GatewayUnavailable
from raypay.domain.money import Money
from raypay.domain.ports import ChargeRequest, RefundCharge
from raypay.domain.sharding import VSHARDS

pytestmark = pytest.mark.unit


def a_charge(key: str = "pay_1", method: str = "pm_card_visa", order: str = "ord_1"):
    return ChargeRequest(key, Money(4000, "USD"), method, order)


def simulator(redis, **config) -> GatewaySimulator:
    keys = Keys("raypay")
    return GatewaySimulator(
        RedisChargeLedger(redis, keys), SimulatorConfig(**config), RedisRefundLedger(redis, keys)
    )


async def counters(redis, per_order, total) -> tuple[dict[str, str], str | None]:
    """A ledger's counters of every vshard: per reference (orderId), and the total."""
    keys, found, in_all = Keys("raypay"), {}, None
    for vshard in range(VSHARDS):
        found |= await redis.hgetall(per_order(keys, vshard))
        if (count := await redis.get(total(keys, vshard))) is not None:
            in_all = str(int(in_all or 0) + int(count))
    return found, in_all


async def charges(redis) -> tuple[dict[str, str], str | None]:
    """The ledger's counters: charges per reference (orderId), and the total."""
    return await counters(redis, Keys.charge_counts, Keys.charge_total)


class TestTestCards:
    @pytest.mark.parametrize("method", ["pm_card_visa", "pm_card_mastercard", "pm_card_amex"])
    async def test_good_cards_are_approved_with_a_transaction(self, redis, method):
        result = await simulator(redis).charge(a_charge(method=method))
        assert result.approved
        assert result.transaction_id and result.transaction_id.startswith("txn_")
        assert result.decline_code is None
        assert result.simulated

    @pytest.mark.parametrize(
        ("method", "code"),
        [
            ("pm_card_chargeDeclined", "card_declined"),
            ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
            ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
            ("pm_card_chargeDeclinedFraudulent", "fraudulent"),
        ],
    )
    async def test_decline_cards_are_declined_with_their_code(self, redis, method, code):
        result = await simulator(redis).charge(a_charge(method=method))
        assert (result.approved, result.decline_code) == (False, code)
        assert result.message
        assert result.transaction_id is None

    async def test_declined_once_card_declines_an_orders_first_charge_only(self, redis):
        sim = simulator(redis)
        method = "pm_card_chargeDeclinedOnce"
        first = await sim.charge(a_charge("pay_1", method))
        second = await sim.charge(a_charge("pay_2", method))
        other_order = await sim.charge(a_charge("pay_3", method, order="ord_2"))
        assert (first.approved, first.decline_code) == (False, "card_declined")
        assert second.approved
        assert not other_order.approved

    async def test_a_decline_is_a_counted_charge_attempt(self, redis):
        await simulator(redis).charge(a_charge(method="pm_card_chargeDeclined"))
        assert await charges(redis) == ({"ord_1": "1"}, "1")

    async def test_an_unknown_token_is_approved_when_the_decline_rate_is_zero(self, redis):
        assert (await simulator(redis).charge(a_charge(method="pm_anything"))).approved


class TestDeclineRate:
    async def outcomes(self, redis, seed: int) -> list[tuple[bool, str | None]]:
        gateway = simulator(redis, decline_rate=0.5, seed=seed)
        results = [await gateway.charge(a_charge(f"pay_{n}", "pm_other")) for n in range(40)]
        return [(r.approved, r.transaction_id or r.decline_code) for r in results]

    async def test_the_same_seed_gives_the_same_outcomes(self, redis):
        # A second, empty ledger: the outcomes come from the seed, not from stored results.
        other = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
        try:
            assert await self.outcomes(redis, seed=7) == await self.outcomes(other, seed=7)
        finally:
            await other.aclose()

    async def test_the_rate_declines_some_and_approves_others(self, redis):
        approved = [ok for ok, _ in await self.outcomes(redis, seed=7)]
        assert 5 < approved.count(False) < 35
        assert approved.count(True) + approved.count(False) == 40

    async def test_another_seed_gives_other_outcomes(self, redis):
        decide = GatewaySimulator.decide
        one = simulator(redis, decline_rate=0.5, seed=1)
        two = simulator(redis, decline_rate=0.5, seed=2)
        keys = [a_charge(f"pay_{n}", "pm_other") for n in range(40)]
        assert [decide(one, k) for k in keys] != [decide(two, k) for k in keys]

    async def test_test_cards_ignore_the_decline_rate(self, redis):
        gateway = simulator(redis, decline_rate=1.0)
        assert (await gateway.charge(a_charge("pay_1", "pm_card_visa"))).approved
        assert not (await gateway.charge(a_charge("pay_2", "pm_other"))).approved


class TestIdempotency:
    async def test_the_same_key_returns_the_same_result_and_charges_once(self, redis):
        gateway = simulator(redis)

        first = await gateway.charge(a_charge("pay_1"))
        again = await gateway.charge(a_charge("pay_1"))

        assert again == first
        assert await charges(redis) == ({"ord_1": "1"}, "1")

    async def test_the_first_result_wins_even_if_the_card_changes(self, redis):
        gateway = simulator(redis)
        first = await gateway.charge(a_charge("pay_1", "pm_card_chargeDeclined"))

        again = await gateway.charge(a_charge("pay_1", "pm_card_visa"))

        assert again == first
        assert not again.approved

    async def test_the_ledger_survives_a_new_simulator(self, redis):
        first = await simulator(redis).charge(a_charge("pay_1"))
        assert await simulator(redis, seed=99).charge(a_charge("pay_1")) == first
        assert await charges(redis) == ({"ord_1": "1"}, "1")

    async def test_charges_are_counted_per_order_and_in_total(self, redis):
        gateway = simulator(redis)
        await gateway.charge(a_charge("pay_1", order="ord_1"))
        await gateway.charge(a_charge("pay_2", "pm_card_chargeDeclined", order="ord_2"))
        await gateway.charge(a_charge("pay_3", order="ord_2"))

        assert await charges(redis) == ({"ord_1": "1", "ord_2": "2"}, "3")


class TestGatewayError:
    async def test_the_error_card_raises_unavailable_and_records_nothing(self, redis):
        gateway = simulator(redis)

        with pytest.raises(GatewayUnavailable):
            await gateway.charge(a_charge("pay_1", "pm_card_error"))

        assert await gateway.ledger.get("pay_1") is None
        assert await charges(redis) == ({}, None)

    async def test_the_error_is_retriable(self, redis):
        with pytest.raises(GatewayUnavailable) as raised:
            await simulator(redis).charge(a_charge("pay_1", "pm_card_error"))
        assert raised.value.retriable


class TestResolveCharge:
    async def test_an_unknown_key_is_closed_as_abandoned_and_not_counted(self, redis):
        result = await simulator(redis).resolve_charge("pay_1")

        assert (result.approved, result.decline_code) == (False, "abandoned")
        assert await charges(redis) == ({}, None)

    async def test_a_late_charge_with_an_abandoned_key_is_abandoned(self, redis):
        gateway = simulator(redis)
        await gateway.resolve_charge("pay_1")

        late = await gateway.charge(a_charge("pay_1", "pm_card_visa"))

        assert (late.approved, late.decline_code) == (False, "abandoned")
        assert await charges(redis) == ({}, None)

    async def test_a_charged_key_resolves_to_its_charge(self, redis):
        gateway = simulator(redis)
        charged = await gateway.charge(a_charge("pay_1"))

        assert await gateway.resolve_charge("pay_1") == charged
        assert await charges(redis) == ({"ord_1": "1"}, "1")


class TestTimeoutCard:
    async def test_the_timeout_card_charges_before_holding_the_answer(self, redis):
        gateway = simulator(redis, timeout_hold_s=0)

        result = await gateway.charge(a_charge("pay_1", "pm_card_timeout"))

        assert result.approved
        assert await gateway.ledger.get("pay_1") == result
        assert await charges(redis) == ({"ord_1": "1"}, "1")

    async def test_a_retry_after_the_timeout_returns_the_charge(self, redis):
        gateway = simulator(redis, timeout_hold_s=0)
        first = await gateway.charge(a_charge("pay_1", "pm_card_timeout"))

        assert await gateway.charge(a_charge("pay_1", "pm_card_timeout")) == first
        assert await charges(redis) == ({"ord_1": "1"}, "1")


def a_refund_of(key: str, method: str = "pm_card_visa", charge: str = "pay_1") -> RefundCharge:
    return RefundCharge(key, charge, "txn_1", Money(1500, "USD"), method, "ord_1")


async def refunds(redis) -> tuple[dict[str, str], str | None]:
    return await counters(redis, Keys.refund_counts, Keys.refund_total)


class TestRefunds:
    async def test_a_charged_payment_is_refunded_once_per_key(self, redis):
        gateway = simulator(redis)
        await gateway.charge(a_charge("pay_1"))

        first = await gateway.refund(a_refund_of("re_1"))
        again = await gateway.refund(a_refund_of("re_1"))
        other = await gateway.refund(a_refund_of("re_2"))

        assert first.succeeded and first.gateway_refund_id.startswith("gre_")
        assert again == first and other.gateway_refund_id != first.gateway_refund_id
        assert await refunds(redis) == ({"ord_1": "2"}, "2")

    async def test_the_ledger_survives_a_new_simulator(self, redis):
        await simulator(redis).charge(a_charge("pay_1"))
        first = await simulator(redis).refund(a_refund_of("re_1"))
        assert await simulator(redis, seed=99).refund(a_refund_of("re_1")) == first
        assert await refunds(redis) == ({"ord_1": "1"}, "1")

    async def test_the_refund_declined_card_is_charged_but_not_refunded(self, redis):
        gateway = simulator(redis)
        assert (await gateway.charge(a_charge("pay_1", "pm_card_refundDeclined"))).approved

        result = await gateway.refund(a_refund_of("re_1", "pm_card_refundDeclined"))

        assert (result.succeeded, result.decline_code) == (False, "expired_or_canceled_card")
        assert await gateway.refund(a_refund_of("re_1")) == result  # first result, any token
        assert await refunds(redis) == ({}, None)

    async def test_the_refund_timeout_card_refunds_before_holding_the_answer(self, redis):
        gateway = simulator(redis, timeout_hold_s=0.2)
        await gateway.charge(a_charge("pay_1", "pm_card_refundTimeout"))

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                gateway.refund(a_refund_of("re_1", "pm_card_refundTimeout")), 0.05
            )
        retried = await asyncio.wait_for(
            gateway.refund(a_refund_of("re_1", "pm_card_refundTimeout")), 0.05
        )
        assert retried.succeeded
        assert await refunds(redis) == ({"ord_1": "1"}, "1")

    @pytest.mark.parametrize("method", ["pm_card_chargeDeclined", None])
    async def test_a_charge_that_was_not_approved_is_not_refunded(self, redis, method):
        gateway = simulator(redis)
        if method:
            await gateway.charge(a_charge("pay_1", method))
        result = await gateway.refund(a_refund_of("re_1"))
        assert (result.succeeded, result.decline_code) == (False, "charge_not_found")
        assert await refunds(redis) == ({}, None)
