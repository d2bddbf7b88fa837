"""/myesims: the user's eSIMs and orders, live usage on opening one, "Show QR again", install help.

Every id in a callback is looked up with the presser as owner; anything else is refused.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messenger import AiogramMessenger, to_markup
from db.base import utcnow
from db.repositories.esims import MyEsimsRepository
from handlers.callbacks import MenuCallback
from handlers.common import show
from handlers.filters import is_command
from handlers.myesims_render import (
    Freshness,
    InstallHelpCallback,
    MyEsimsCallback,
    build_entries,
    empty_screen,
    esim_screen,
    install_help_screen,
    list_screen,
    order_screen,
)
from handlers.render import Screen
from handlers.screen_cache import ScreenCache
from services.catalogue import CatalogueService
from services.delivery import StoredCodes, qr_photo
from services.i18n import Translator
from services.install import install_instructions
from services.notifications import Notifier
from services.tracking import TrackingService

logger = logging.getLogger(__name__)

# A slow eSIM Go must not keep the button spinning: past this, the stored state is shown.
REFRESH_WAIT_SECONDS = 5.0


def install_help_callback_data() -> str:
    """The packed callback of the "Step-by-step instructions" button under a delivered QR."""
    return InstallHelpCallback().pack()


def _refuse(callback_answer: CallbackAnswer) -> None:
    callback_answer.text = _("This eSIM or order is not available. Open /myesims for yours.")
    callback_answer.show_alert = True


async def _list_screen(
    session: AsyncSession,
    user_id: int,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    screens: ScreenCache,
    page: int = 0,
) -> Screen:
    repo = MyEsimsRepository(session)
    orders = await repo.orders(user_id)
    if not orders:
        # Every eSIM comes from one of its owner's orders: nothing more to read or to build.
        return screens.render(empty_screen)
    esims = await repo.esims(user_id)
    bundles = await repo.bundles_by_iccid(user_id) if esims else {}
    entries = build_entries(esims, orders, bundles, catalogue.catalogue, translator, language)
    return list_screen(entries, language, page)


async def on_myesims_command(
    message: Message,
    session: AsyncSession,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    screens: ScreenCache,
) -> None:
    if message.from_user is None:
        return
    screen = await _list_screen(
        session, message.from_user.id, catalogue, translator, language, screens
    )
    await show(message, screen)


async def on_myesims_button(
    query: CallbackQuery,
    session: AsyncSession,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    screens: ScreenCache,
) -> None:
    screen = await _list_screen(
        session, query.from_user.id, catalogue, translator, language, screens
    )
    await show(query, screen)


async def on_list_page(
    query: CallbackQuery,
    callback_data: MyEsimsCallback,
    session: AsyncSession,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    screens: ScreenCache,
) -> None:
    screen = await _list_screen(
        session, query.from_user.id, catalogue, translator, language, screens, callback_data.page
    )
    await show(query, screen)


async def on_open_esim(
    query: CallbackQuery,
    callback_data: MyEsimsCallback,
    session: AsyncSession,
    catalogue: CatalogueService,
    tracking: TrackingService,
    notifier: Notifier,
    bot: Bot,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    """Read eSIM Go first (cached for a minute; its trouble leaves the stored state), then show."""
    me = query.from_user.id
    repo = MyEsimsRepository(session)
    esim = await repo.esim(callback_data.id, me)
    if esim is None:
        _refuse(callback_answer)
        return
    # News found by this read ("plan started", "used up") goes out after the screen, below it;
    # the poller may never see it again once the eSIM's last plan has finished.
    try:
        refreshed = await asyncio.wait_for(tracking.refresh(esim.iccid), REFRESH_WAIT_SECONDS)
    except TimeoutError:
        # The poll goes on (refresh shields it) and the next open shows what it finds.
        refreshed = False
    esim = await repo.esim(callback_data.id, me)
    if esim is None:
        _refuse(callback_answer)
        return
    orders = await repo.esim_orders(esim.iccid, me)
    bundles = await repo.esim_bundles(esim.iccid, me)
    freshness = Freshness(refreshed, esim.last_polled_at, utcnow())
    screen = esim_screen(
        esim,
        orders,
        bundles,
        catalogue.catalogue,
        translator,
        language,
        freshness,
        callback_data.page,
    )
    await show(query, screen)
    if refreshed:
        await notifier.evaluate(AiogramMessenger(bot), esim, bundles)


async def on_open_order(
    query: CallbackQuery,
    callback_data: MyEsimsCallback,
    session: AsyncSession,
    catalogue: CatalogueService,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    order = await MyEsimsRepository(session).order(callback_data.id, query.from_user.id)
    if order is None:
        _refuse(callback_answer)
        return
    await show(query, order_screen(order, catalogue.catalogue, language, callback_data.page))


async def on_show_qr(
    query: CallbackQuery,
    callback_data: MyEsimsCallback,
    bot: Bot,
    session: AsyncSession,
    catalogue: CatalogueService,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    """Re-send the QR photo from what we stored: no eSIM Go call, no new purchase."""
    me = query.from_user.id
    repo = MyEsimsRepository(session)
    iccid: str | None
    if callback_data.action == "qr":
        esim = await repo.esim(callback_data.id, me)
        if esim is None:
            _refuse(callback_answer)
            return
        orders = await repo.esim_orders(esim.iccid, me)
        iccid, smdp, matching_id, lpa = esim.iccid, esim.smdp_address, esim.matching_id, esim.lpa
        latest = orders[0] if orders else None
    else:
        latest = await repo.order(callback_data.id, me)
        if latest is None:
            _refuse(callback_answer)
            return
        iccid, smdp, matching_id = latest.iccid, latest.smdp_address, latest.activation_code
        lpa = latest.qr_code
    codes = StoredCodes(iccid or "", lpa, smdp, matching_id)
    photo = qr_photo(
        translator, catalogue.catalogue, language, codes, latest, install_help_callback_data()
    )
    if photo is None:
        callback_answer.text = _("The QR code is not ready yet. It will arrive in this chat.")
        callback_answer.show_alert = True
        return
    chat_id = query.message.chat.id if query.message is not None else me
    await bot.send_photo(
        chat_id,
        BufferedInputFile(photo.png, filename="esim-qr.png"),
        caption=photo.caption,
        reply_markup=to_markup(photo.keyboard),
    )


async def on_install_help(
    query: CallbackQuery,
    callback_data: InstallHelpCallback,
    session: AsyncSession,
    translator: Translator,
    language: str,
    callback_answer: CallbackAnswer,
) -> None:
    esim_id = callback_data.esim_id
    if esim_id and await MyEsimsRepository(session).esim(esim_id, query.from_user.id) is None:
        _refuse(callback_answer)
        return
    # Under a QR photo `show` sends a new message: the photo (and its codes) stays in the chat.
    await show(query, install_help_screen(install_instructions(translator, language), esim_id))


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="myesims")
    router.message.filter(is_command)
    router.message.register(on_myesims_command, Command("myesims"))
    router.callback_query.register(on_myesims_button, MenuCallback.filter(F.action == "myesims"))
    router.callback_query.register(on_list_page, MyEsimsCallback.filter(F.action == "list"))
    router.callback_query.register(on_open_esim, MyEsimsCallback.filter(F.action == "esim"))
    router.callback_query.register(on_open_order, MyEsimsCallback.filter(F.action == "order"))
    router.callback_query.register(on_show_qr, MyEsimsCallback.filter(F.action.in_({"qr", "oqr"})))
    router.callback_query.register(on_install_help, InstallHelpCallback.filter())
    return router
