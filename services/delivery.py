"""What reaches the buyer for an eSIM, built in one place: the QR photo with its caption and
buttons (a new eSIM, and "Show QR again"), or the message for a plan added to an eSIM they
already have (a top-up). Callers send what these return; the callback data of the buttons
(built with aiogram) is handed in."""

from __future__ import annotations

import html
from dataclasses import dataclass

from db.models import Order
from services.catalogue import Catalogue
from services.formatting import OrderedPlan, order_title
from services.i18n import N_, Translator
from services.install import delivery_caption, delivery_keyboard
from services.messenger import Button, Keyboard
from services.qr import lpa_string, parse_lpa, render_qr_png

TOPUP_DELIVERED_TEXT = N_(
    "✅ <b>Your new plan is on your eSIM</b>\n\n"
    "{plan} is now on your eSIM ending in {tail}. Nothing to install: keep using the eSIM you "
    "already have. The plan starts when the eSIM first uses data in a covered country."
)
OPEN_ESIM = N_("📱 Open in My eSIMs")


@dataclass(frozen=True, slots=True)
class QrPhoto:
    """The QR code as a photo, its HTML caption (plan, ICCID, manual codes) and buttons."""

    png: bytes
    caption: str
    keyboard: Keyboard


@dataclass(frozen=True, slots=True)
class TextMessage:
    text: str
    keyboard: Keyboard | None


Delivery = QrPhoto | TextMessage


@dataclass(frozen=True, slots=True)
class StoredCodes:
    """An eSIM's install codes as stored: the LPA string, its two parts, or both."""

    iccid: str
    lpa: str | None
    smdp_address: str | None
    matching_id: str | None


def qr_photo(
    translator: Translator,
    catalogue: Catalogue,
    lang: str,
    codes: StoredCodes,
    order: OrderedPlan | None,
    install_help_callback: str,
) -> QrPhoto | None:
    """The eSIM's QR photo from what we stored (None while it has no code yet); `order` is
    the one whose plan the caption names (else the caption names the ICCID)."""
    lpa = codes.lpa
    if not lpa and codes.smdp_address and codes.matching_id:
        lpa = lpa_string(codes.smdp_address, codes.matching_id)
    if not lpa or not codes.iccid:
        return None
    # The LPA string is the source of truth; older rows may lack the split fields.
    host, code = parse_lpa(lpa)
    bundle = catalogue.by_name(order.bundle_name) if order is not None else None
    title = order_title(order, bundle, lang, translator) if order is not None else codes.iccid
    caption = delivery_caption(
        translator,
        lang,
        plan_title=title,
        iccid=codes.iccid,
        smdp_address=codes.smdp_address or host,
        matching_id=codes.matching_id or code,
        lpa=lpa,
    )
    keyboard = delivery_keyboard(
        translator, lang, lpa=lpa, install_help_callback=install_help_callback
    )
    # On the loop: ~2.5 ms of pure Python that holds the GIL either way; a thread only adds
    # the wait to win it back from the busy loop.
    return QrPhoto(render_qr_png(lpa), caption, keyboard)


def new_esim_photo(
    translator: Translator, catalogue: Catalogue, order: Order, install_help_callback: str
) -> QrPhoto | None:
    """The first delivery of the eSIM a new-eSIM order bought, in the order's language."""
    codes = StoredCodes(
        order.iccid or "", order.qr_code, order.smdp_address, order.activation_code
    )
    return qr_photo(translator, catalogue, order.language, codes, order, install_help_callback)


def topup_message(
    translator: Translator, catalogue: Catalogue, order: Order, open_esim_callback: str | None
) -> TextMessage:
    """No QR for a top-up: which plan went onto which eSIM, and a button that opens it."""
    lang = order.language
    title = order_title(order, catalogue.by_name(order.bundle_name), lang, translator)
    text = translator.gettext(TOPUP_DELIVERED_TEXT, lang).format(
        plan=f"<b>{html.escape(title)}</b>",
        tail=f"…{html.escape((order.iccid or '')[-4:])}",
    )
    if open_esim_callback is None:
        return TextMessage(text, None)
    label = translator.gettext(OPEN_ESIM, lang)
    return TextMessage(text, [[Button(text=label, callback_data=open_esim_callback)]])
