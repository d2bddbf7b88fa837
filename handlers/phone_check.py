"""The check "Will it work on my phone?": eSIM support, carrier lock, the right country.

Started from the main menu or from a plan's card (then step 3 lists that plan's countries and
Back returns to its card).
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery

from handlers.action_render import Place, plan_place, render_screen
from handlers.callbacks import PhoneCheckCallback
from handlers.common import show
from services.catalogue import Catalogue, CatalogueService
from services.esimgo.models import Bundle
from services.i18n import Translator
from services.phone_check import PhoneCheckStep, phone_check


def _plan(catalogue: Catalogue, pressed: PhoneCheckCallback) -> tuple[Bundle | None, Place]:
    """The plan the check started from (None: from the menu, or no longer sold) and where
    Back leads; a country the plan does not cover is dropped."""
    bundle = catalogue.by_name(pressed.bundle) if pressed.bundle else None
    if bundle is None:
        return None, plan_place("", "")
    iso = pressed.iso if pressed.iso in {c.iso for c in bundle.coverage} else ""
    return bundle, plan_place(bundle.name, iso)


async def on_phone_check(
    query: CallbackQuery,
    callback_data: PhoneCheckCallback,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
) -> None:
    """One step of the check; a stale or forged step starts it over."""
    known = {step.value for step in PhoneCheckStep}
    step = PhoneCheckStep(callback_data.step) if callback_data.step in known else None
    bundle, place = _plan(catalogue.catalogue, callback_data)
    screen = phone_check(step or PhoneCheckStep.ESIM, translator, language, bundle)
    await show(query, render_screen(screen, place))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="phone_check")
    router.callback_query.register(on_phone_check, PhoneCheckCallback.filter())
    return router
