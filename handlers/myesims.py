"""/myesims: the user's eSIMs and orders, live usage on opening one, "Show QR again", install help.

Every id in a callback is looked up with the presser as owner (handlers.ownership); anything
else is refused.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import InstallHelpCallback, MenuCallback, MyEsimsCallback
from handlers.common import show
from handlers.doctor import card_rows
from handlers.filters import is_command
from handlers.gifts import GIFT_QR_HIDDEN
from handlers.guards import OwnedOnly, PrivateChatOnly, alert, refuse
from handlers.myesims_render import (
    ENTRIES_PER_PAGE,
    Wording,
    empty_screen,
    esim_screen,
    install_help_screen,
    list_screen,
    order_screen,
)
from handlers.screen_cache import ScreenCache
from services.catalogue import CatalogueService
from services.gifts import GiftService
from services.i18n import Translator
from services.install import install_instructions
from services.messenger import Messenger
from services.myesims import EsimView, MyEsimsService, OrderView
from services.self_refund import SelfRefunds


async def on_list(
    event: Message | CallbackQuery,
    myesims: MyEsimsService,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    screens: ScreenCache,
    gifts: GiftService,
    callback_data: MyEsimsCallback | MenuCallback | None = None,
) -> None:
    """/myesims, the main menu's "My eSIMs" and the list's pages."""
    if event.from_user is None:
        return
    page = callback_data.page if isinstance(callback_data, MyEsimsCallback) else 0
    listed = await myesims.overview(event.from_user.id, page, ENTRIES_PER_PAGE)
    if not listed.entries:
        await show(event, screens.render(empty_screen))
        return
    words = Wording(catalogue.catalogue, translator, language)
    pending = await gifts.pending_of(event.from_user.id)
    unclaimed = {gift.esim.esim_id for gift in pending if gift.esim is not None}
    await show(event, list_screen(listed, words, unclaimed))


async def on_open_esim(
    query: CallbackQuery,
    callback_data: MyEsimsCallback,
    owned: EsimView,
    myesims: MyEsimsService,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
    refunds: SelfRefunds,
    gifts: GiftService,
) -> None:
    """Read eSIM Go first (cached for a minute; its trouble leaves the stored state), then show
    the eSIM; news the read found follows below it."""
    detail = await myesims.open_esim(owned)
    if detail is None:
        refuse(callback_answer)
        return
    words = Wording(catalogue.catalogue, translator, language)
    gift = await gifts.pending_gift(owned.telegram_user_id, owned.iccid)
    more = await card_rows(refunds, owned, translator, language)
    gift_id = gift.id if gift is not None else None
    await show(query, esim_screen(detail, words, callback_data.page, more, gift_id))
    await myesims.tell_news(detail)


async def on_open_order(
    query: CallbackQuery,
    callback_data: MyEsimsCallback,
    owned: OrderView,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
) -> None:
    words = Wording(catalogue.catalogue, translator, language)
    await show(query, order_screen(owned, words, callback_data.page))


async def on_show_qr(
    query: CallbackQuery,
    owned: EsimView | OrderView,
    myesims: MyEsimsService,
    messenger: Messenger,
    language: str,
    callback_answer: CallbackAnswer,
    gifts: GiftService,
) -> None:
    """Re-send the QR photo from what we stored: no eSIM Go call, no new purchase. A gift
    nobody has claimed yet keeps its QR for whoever claims it."""
    if await gifts.pending_gift(query.from_user.id, owned.iccid):
        alert(callback_answer, _(GIFT_QR_HIDDEN))
        return
    photo = await myesims.qr_photo(owned, language)
    if photo is None:
        alert(callback_answer, _("The QR code is not ready yet. It will arrive in this chat."))
        return
    # The QR is a bearer credential: to the owner's private chat only (PrivateChatOnly).
    await messenger.send_photo(query.from_user.id, photo.png, photo.caption, photo.keyboard)


async def on_install_help(
    query: CallbackQuery, callback_data: InstallHelpCallback, translator: Translator, language: str
) -> None:
    # Under a QR photo `show` sends a new message: the photo (and its codes) stays in the chat.
    text = install_instructions(translator, language)
    await show(query, install_help_screen(text, callback_data.esim_id))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="myesims")
    router.message.filter(is_command)
    # Someone's eSIMs, and their QR codes above all, are shown in their private chat only.
    router.message.middleware(PrivateChatOnly())
    router.callback_query.middleware(PrivateChatOnly())
    router.callback_query.middleware(OwnedOnly())
    router.message.register(on_list, Command("myesims"))
    router.callback_query.register(on_list, MenuCallback.filter(F.action == "myesims"))
    router.callback_query.register(on_list, MyEsimsCallback.filter(F.action == "list"))
    router.callback_query.register(on_open_esim, MyEsimsCallback.filter(F.action == "esim"))
    router.callback_query.register(on_open_order, MyEsimsCallback.filter(F.action == "order"))
    router.callback_query.register(on_show_qr, MyEsimsCallback.filter(F.action.in_({"qr", "oqr"})))
    router.callback_query.register(on_install_help, InstallHelpCallback.filter())
    return router
