"""Sandbox mode (ESIMGO_API_KEY=sandbox): the bot sells against the eSIM Go stand-in, payments
are simulated, and admins move the eSIMs' usage with /sandbox."""

from __future__ import annotations

from dataclasses import dataclass

from services.esimgo.standin import EsimGoStandIn
from services.esimgo.standin.callbacks import CallbackSender
from services.sandbox.operator import SandboxOperator
from services.sandbox.payments import SimulatedPayments, is_simulated_charge

__all__ = [
    "Sandbox",
    "SandboxOperator",
    "SimulatedPayments",
    "is_simulated_charge",
    "start_standin",
]


async def start_standin(api_key: str) -> EsimGoStandIn:
    """The stand-in serving eSIM Go's API on a loopback port of this process."""
    standin = EsimGoStandIn(api_key)
    await standin.start()
    return standin


@dataclass(frozen=True, slots=True)
class Sandbox:
    """What sandbox mode adds to the bot; closed with it."""

    standin: EsimGoStandIn
    callbacks: CallbackSender
    payments: SimulatedPayments
    operator: SandboxOperator

    def post_callbacks_to(self, url: str) -> None:
        """The bot's own callback route, once its HTTP server listens."""
        self.callbacks.url = url

    async def close(self) -> None:
        await self.callbacks.close()
        await self.standin.close()
