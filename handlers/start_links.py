"""`/start <parameter>` in the private chat: t.me links into the bot from inline cards, shared
plans and gifts. A plan opens at its confirmation, a country at its plans, a gift link claims
the gift. Anything else (or in a group) falls through to common's /start: the main menu.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import CommandObject, CommandStart, Filter
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from handlers import render
from handlers.callbacks import ORIGIN_BUY
from handlers.common import show
from handlers.filters import is_start_with_payload
from handlers.gifts import claim_screen
from handlers.purchase import TOO_MANY_UNPAID, confirmation_screen
from handlers.screen_cache import ScreenCache
from services.catalogue import CatalogueService
from services.checkout import Buyer, Checkout
from services.deeplinks import CountryStart, GiftStart, PlanStart, StartLinks, StartTarget
from services.gift_delivery import GiftDelivery
from services.gifts import ClaimOutcome, GiftService
from services.i18n import Translator
from services.pricing import PricingService


class Opens(Filter):
    """The `start` parameter names a target of this kind; the handler gets it as `target`."""

    def __init__(self, kind: type[StartTarget]) -> None:
        self._kind = kind

    async def __call__(
        self,
        message: Message,
        command: CommandObject,
        start_links: StartLinks,
        catalogue: CatalogueService,
    ) -> bool | dict[str, Any]:
        target = start_links.resolve(catalogue.catalogue, command.args)
        return {"target": target} if isinstance(target, self._kind) else False


async def on_plan_link(
    message: Message,
    target: PlanStart,
    checkout: Checkout,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
) -> None:
    """A plan's card posted from inline mode: straight to its confirmation."""
    if message.from_user is None:
        return
    user = message.from_user
    buyer = Buyer(user.id, user.username)
    quote = await checkout.start(target.bundle, buyer, target.iso or None, language)
    if quote is None:
        await message.answer(_(TOO_MANY_UNPAID))
        return
    await show(message, confirmation_screen(catalogue.catalogue, translator, language, quote))


async def on_country_link(
    message: Message,
    target: CountryStart,
    catalogue: CatalogueService,
    pricing: PricingService,
    translator: Translator,
    language: str,
    screens: ScreenCache,
) -> None:
    look = (catalogue.catalogue, pricing, translator, language)
    screen = screens.render(render.country_screen, *look, target.iso, ORIGIN_BUY, 0)
    await show(message, screen or screens.render(render.main_menu))


async def on_gift_link(
    message: Message,
    target: GiftStart,
    gifts: GiftService,
    gift_delivery: GiftDelivery,
    language: str,
) -> None:
    """Whoever opens a gift's link first owns its eSIM: the QR and install help follow."""
    if message.from_user is None:
        return
    user_id = message.from_user.id
    result = await gifts.claim(target.token, user_id, language)
    await show(message, claim_screen(result.outcome))
    if result.outcome is ClaimOutcome.CLAIMED and result.gift is not None:
        await gift_delivery.hand_over(result.gift, user_id, language)


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="start_links")
    router.message.filter(is_start_with_payload, F.chat.type == ChatType.PRIVATE)
    starting = CommandStart(deep_link=True)
    router.message.register(on_plan_link, starting, Opens(PlanStart))
    router.message.register(on_country_link, starting, Opens(CountryStart))
    router.message.register(on_gift_link, starting, Opens(GiftStart))
    return router
