"""A stand-in for eSIM Go: the sandbox runs the bot against it in the same process, and the
tests' fake eSIM Go is built on it."""

from services.esimgo.standin.account import SANDBOX_SMDP_ADDRESS, StandInAccount, StandInError
from services.esimgo.standin.api import PREFIX, EsimGoStandIn

__all__ = ["PREFIX", "SANDBOX_SMDP_ADDRESS", "EsimGoStandIn", "StandInAccount", "StandInError"]
