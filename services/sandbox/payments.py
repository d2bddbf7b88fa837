"""Payments in the sandbox: Telegram takes no money, so "Simulate payment" brings what a paid
invoice would — the pre-checkout check, then the recorded payment — through the same services,
and fulfilment runs exactly as in production."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.checkout import Checkout
from services.orders import OrderService, PaymentOutcome, PreCheckoutRefusal, ReceivedPayment

# Charge ids of simulated payments: the sandbox's Bot "refunds" these without Telegram.
CHARGE_PREFIX = "sandbox-"


def is_simulated_charge(charge_id: str) -> bool:
    return charge_id.startswith(CHARGE_PREFIX)


@dataclass(frozen=True, slots=True)
class SimulatedPayment:
    """Refused at the pre-checkout (`refusal`), or recorded with the `outcome` a real one has."""

    refusal: PreCheckoutRefusal | None = None
    outcome: PaymentOutcome | None = None
    topup: bool = False


class SimulatedPayments:
    """Pays a user's order as if Telegram had charged the invoice's amount."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        orders: OrderService,
        checkout: Checkout,
    ) -> None:
        self._session_factory = session_factory
        self._orders = orders
        self._checkout = checkout

    async def pay(self, public_id: str, user_id: int) -> SimulatedPayment:
        """One charge per order (its id is the order's): a second press is refused or ignored."""
        async with self._session_factory() as session:
            order = await self._orders.owned(session, public_id, user_id)
            if order is None:
                return SimulatedPayment(PreCheckoutRefusal.UNKNOWN_ORDER)
            amount, currency = order.price, order.price_currency
            refusal = await self._orders.check_pre_checkout(
                session, public_id=public_id, user_id=user_id, amount=amount, currency=currency
            )
        if refusal is not None:
            return SimulatedPayment(refusal)
        charge_id = f"{CHARGE_PREFIX}{public_id}"
        payment = ReceivedPayment(public_id, user_id, amount, currency, charge_id)
        receipt = await self._checkout.record_payment(payment)
        return SimulatedPayment(outcome=receipt.outcome, topup=receipt.topup)
