"""What the user gets to install an eSIM: one-tap links, the QR photo's caption, the steps.

Used by services.delivery (the first delivery and "Show QR again"). No aiogram here: the
instructions button's callback data is built by the caller and passed in.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from services.i18n import Translator
from services.messenger import Button, Keyboard
from services.qr import parse_lpa, smdp_host

CAPTION_LIMIT = 1024
COPY_TEXT_LIMIT = 256
_TAG = re.compile(r"<[^>]+>")
IOS_INSTALL_BASE = "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata="
ANDROID_INSTALL_BASE = "https://esimsetup.android.com/esim_qrcode_provisioning?carddata="


def ios_install_url(lpa: str) -> str:
    """Apple's universal link: iOS 17.4+ opens the eSIM installer with the code filled in."""
    return IOS_INSTALL_BASE + quote(lpa, safe="")


def android_install_url(lpa: str) -> str:
    """Google's counterpart of the Apple link, for Android phones that support it."""
    return ANDROID_INSTALL_BASE + quote(lpa, safe="")


def delivery_caption(
    translator: Translator,
    lang: str,
    *,
    plan_title: str,
    iccid: str,
    smdp_address: str,
    matching_id: str,
    lpa: str,
) -> str:
    """The QR photo's HTML caption: plan, ICCID and the manual codes in tap-to-copy monospace."""

    def gettext(message: str) -> str:
        return translator.gettext(message, lang)

    e = html.escape
    full_code = gettext("Full code (some Android phones): <code>{lpa}</code>").format(lpa=e(lpa))
    lines = [
        gettext("✅ <b>Your eSIM is ready</b>"),
        gettext("Plan: <b>{plan}</b>").format(plan=e(plan_title)),
        gettext("ICCID: <code>{iccid}</code>").format(iccid=e(iccid)),
        "",
        gettext(
            "Scan the QR code in your phone's settings, or tap the button for your phone below."
        ),
        "",
        gettext("<b>Manual entry</b>"),
        gettext("SM-DP+ address: <code>{address}</code>").format(
            address=e(smdp_host(smdp_address))
        ),
        gettext("Activation code: <code>{code}</code>").format(code=e(matching_id)),
        full_code,
        "",
        gettext("✈️ Install before you fly — the plan starts on first use."),
    ]
    caption = "\n".join(lines)
    if _shown_length(caption) > CAPTION_LIMIT:
        # Only absurdly long codes get here; the full code is a convenience, the rest is needed.
        caption = "\n".join(line for line in lines if line is not full_code)
    return caption


def _shown_length(text: str) -> int:
    """Length as Telegram counts a caption: tags removed, entities decoded, UTF-16 units."""
    plain = html.unescape(_TAG.sub("", text))
    return len(plain.encode("utf-16-le")) // 2


def copy_buttons(translator: Translator, lang: str, lpa: str) -> Keyboard:
    """Buttons that copy the SM-DP+ address and the activation code, for typing them in by
    hand on the phone that shows them (Telegram copies 1–256 characters)."""
    codes = tuple(part.strip() for part in parse_lpa(lpa))
    if not all(codes) or any(len(code) > COPY_TEXT_LIMIT for code in codes):
        return []
    address, code = codes
    return [
        [
            Button(translator.gettext("📋 Copy SM-DP+ address", lang), copy_text=address),
            Button(translator.gettext("📋 Copy activation code", lang), copy_text=code),
        ]
    ]


def delivery_keyboard(
    translator: Translator, lang: str, *, lpa: str, install_help_callback: str
) -> Keyboard:
    """One-tap install links for iPhone and Android, copy buttons for the manual codes, and
    the step-by-step instructions."""
    return [
        [Button(translator.gettext("🍏 Install on iPhone", lang), url=ios_install_url(lpa))],
        [Button(translator.gettext("🤖 Install on Android", lang), url=android_install_url(lpa))],
        *copy_buttons(translator, lang, lpa),
        [
            Button(
                translator.gettext("📖 Step-by-step instructions", lang),
                callback_data=install_help_callback,
            )
        ],
    ]


def install_instructions(translator: Translator, lang: str) -> str:
    """How to install on iPhone and Android, with the manual-entry fallback (HTML)."""

    def gettext(message: str) -> str:
        return translator.gettext(message, lang)

    sections = [
        gettext("📖 <b>How to install your eSIM</b>"),
        gettext(
            "Install it <b>before you travel</b>, on Wi-Fi. The plan only starts when the eSIM "
            "first connects to a network in a covered country."
        ),
        gettext(
            "<b>iPhone</b>\n"
            "1. Tap “Install on iPhone” under the QR code (iOS 17.4 or later), or open "
            "Settings → Mobile Service → Add eSIM → Use QR Code and scan the code.\n"
            "2. Follow the prompts and give the line a name, e.g. “Travel”.\n"
            "3. On arrival, choose the travel line for mobile data and turn on Data Roaming "
            "for it."
        ),
        gettext(
            "<b>Android</b>\n"
            "1. Tap “Install on Android” under the QR code, or open Settings → Network &amp; "
            "internet → SIMs → Add eSIM (Samsung: Settings → Connections → SIM manager → "
            "Add eSIM) and scan the code.\n"
            "2. Follow the prompts.\n"
            "3. On arrival, choose the eSIM for mobile data and turn on Roaming for it."
        ),
        gettext(
            "<b>No camera at hand?</b> A phone cannot scan a QR code shown on its own screen: "
            "choose “Enter details manually” and copy the SM-DP+ address and the activation "
            "code from the message with the QR code."
        ),
        gettext(
            "Do not delete the eSIM from your phone: it usually cannot be installed a second "
            "time. Questions? Send /paysupport."
        ),
    ]
    return "\n\n".join(sections)
