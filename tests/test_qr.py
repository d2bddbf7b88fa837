"""The activation code, its QR photo and the install links/caption delivered with it."""

from __future__ import annotations

import io
import random
import string
from urllib.parse import parse_qs, urlsplit

import pytest
import qrcode
import zxingcpp
from PIL import Image, ImageChops

from services.i18n import Translator
from services.install import (
    android_install_url,
    delivery_caption,
    delivery_keyboard,
    install_instructions,
    ios_install_url,
)
from services.qr import (
    ERROR_CORRECTION,
    MIN_BOX_SIZE,
    QUIET_ZONE_MODULES,
    TARGET_PIXELS,
    lpa_string,
    parse_lpa,
    render_qr_png,
)
from tests.fakes.telegram import parse_html

LPA = "LPA:1$rsp.truphone.com$QR-G-5C-1LS-1W1Z9P7"


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("rsp.truphone.com", "rsp.truphone.com"),
        ("http://smdp.example.com", "smdp.example.com"),
        ("https://smdp.example.com/", "smdp.example.com"),
        ("HTTPS://SMDP.Example.COM//", "SMDP.Example.COM"),
        ("  smdp.io:8443/  ", "smdp.io:8443"),
    ],
)
def test_lpa_string_strips_scheme_and_slash_and_keeps_case(address: str, host: str) -> None:
    assert lpa_string(address, " K2-1ABC-XyZ ") == f"LPA:1${host}$K2-1ABC-XyZ"


def test_an_lpa_string_reads_back_into_its_parts() -> None:
    assert parse_lpa(LPA) == ("rsp.truphone.com", "QR-G-5C-1LS-1W1Z9P7")
    assert parse_lpa(lpa_string("http://smdp.example.com/", "AB-1")) == (
        "smdp.example.com",
        "AB-1",
    )
    assert parse_lpa("LPA:1$smdp.example.com") == ("smdp.example.com", "")


@pytest.mark.parametrize(
    ("address", "matching_id"),
    [("", "ABC"), ("https://", "ABC"), ("/", "ABC"), ("smdp.io", ""), ("smdp.io", "  ")],
)
def test_lpa_string_refuses_empty_parts(address: str, matching_id: str) -> None:
    with pytest.raises(ValueError):
        lpa_string(address, matching_id)


def _decode(png: bytes) -> list[zxingcpp.Result]:
    return list(zxingcpp.read_barcodes(Image.open(io.BytesIO(png))))


@pytest.mark.parametrize(
    "lpa",
    [
        LPA,
        "LPA:1$smdp.io$K2-1ABC",
        "LPA:1$consumer.rsp.world.example.com$" + "A1B2C3D4E5-" * 6,
    ],
)
def test_qr_png_decodes_to_the_exact_lpa(lpa: str) -> None:
    png = render_qr_png(lpa)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.mode in {"1", "L"}
    assert 600 <= image.width <= 800
    assert image.width == image.height
    results = _decode(png)
    assert [r.text for r in results] == [lpa]
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode
    # M (15 %) or better, so a photographed screen with glare still scans.
    assert results[0].ec_level in {"M", "Q", "H"}


def _qrcode_own_drawing(lpa: str) -> Image.Image:
    """The symbol as qrcode itself masks and draws it: the standard our fast path must equal."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=QUIET_ZONE_MODULES)
    code.add_data(lpa)
    code.make(fit=True)
    modules = code.modules_count + 2 * QUIET_ZONE_MODULES
    code.box_size = max(MIN_BOX_SIZE, round(TARGET_PIXELS / modules))
    image: Image.Image = code.make_image(fill_color="black", back_color="white").get_image()
    return image.convert("L")


@pytest.mark.parametrize("length", [1, 20, 45, 80, 130, 190, 260, 330, 420, 520])
def test_qr_png_is_the_symbol_qrcode_draws_with_the_same_mask(length: int) -> None:
    # Lengths that span symbol versions 1 to 17 (7 and up carry version information); the mask
    # is chosen by our own scoring, so every pixel, mask included, must match qrcode's drawing.
    rng = random.Random(length)
    alphabet = string.ascii_letters + string.digits + "-."
    lpa = "LPA:1$" + "".join(rng.choice(alphabet) for _ in range(length))
    ours = Image.open(io.BytesIO(render_qr_png(lpa))).convert("L")
    theirs = _qrcode_own_drawing(lpa)
    assert ours.size == theirs.size
    assert ImageChops.difference(ours, theirs).getbbox() is None


def test_qr_png_is_black_on_white_with_a_four_module_quiet_zone() -> None:
    image = Image.open(io.BytesIO(render_qr_png(LPA))).convert("L")
    assert image.getextrema() == (0, 255)
    assert image.histogram()[1:255] == [0] * 254  # nothing but black and white
    left, top, right, bottom = image.point(lambda v: 255 - v).getbbox() or (0, 0, 0, 0)
    assert (left, top) == (image.width - right, image.height - bottom)  # centred
    box = top // QUIET_ZONE_MODULES
    assert box >= 4 and top == QUIET_ZONE_MODULES * box
    modules, rest = divmod(right - left, box)
    assert rest == 0 and (modules - 17) % 4 == 0  # a whole QR symbol, version (modules-17)/4


def test_install_links_percent_encode_the_whole_lpa() -> None:
    ios = ios_install_url(LPA)
    android = android_install_url(LPA)
    assert ios.startswith("https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=")
    assert android.startswith("https://esimsetup.android.com/esim_qrcode_provisioning?carddata=")
    for url in (ios, android):
        carddata = url.split("carddata=", 1)[1]
        assert carddata == "LPA%3A1%24rsp.truphone.com%24QR-G-5C-1LS-1W1Z9P7"
        assert "$" not in carddata and ":" not in carddata
        assert parse_qs(urlsplit(url).query)["carddata"] == [LPA]


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_delivery_caption_has_copyable_codes_and_fits_a_caption(lang: str) -> None:
    translator = Translator()
    caption = delivery_caption(
        translator,
        lang,
        plan_title="🇹🇭 Thailand · 1 GB · 7 days <promo>",
        iccid="8944500102198304826",
        smdp_address="https://rsp.truphone.com/",
        matching_id="QR-G-5C-1LS-1W1Z9P7",
        lpa=LPA,
    )
    assert "<code>8944500102198304826</code>" in caption
    assert "<code>rsp.truphone.com</code>" in caption
    assert "<code>QR-G-5C-1LS-1W1Z9P7</code>" in caption
    assert "&lt;promo&gt;" in caption
    plain = parse_html(caption)  # raises like Telegram on malformed HTML
    assert len(plain) <= 1024
    if lang == "en":
        assert "Install before you fly — the plan starts on first use" in plain
    else:
        assert "Установите до вылета" in plain


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_delivery_caption_stays_under_the_limit_with_long_values(lang: str) -> None:
    long_code = "X" * 255  # the column's width; real codes are ~20–40 characters
    caption = delivery_caption(
        Translator(),
        lang,
        plan_title="🌍 " + "Global 120+ countries " * 4,
        iccid="8" * 22,
        smdp_address="https://" + "smdp" * 20 + ".example.com",
        matching_id=long_code,
        lpa=f"LPA:1${'smdp' * 20}.example.com${long_code}",
    )
    assert len(parse_html(caption)) <= 1024


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_delivery_keyboard_and_instructions(lang: str) -> None:
    translator = Translator()
    rows = delivery_keyboard(translator, lang, lpa=LPA, install_help_callback="ih")
    buttons = [b for row in rows for b in row]
    urls = [ios_install_url(LPA), android_install_url(LPA), None, None, None]
    assert [b.url for b in buttons] == urls
    # The manual codes copy with one tap (nobody retypes them from the caption).
    assert [b.copy_text for b in buttons[2:4]] == ["rsp.truphone.com", "QR-G-5C-1LS-1W1Z9P7"]
    assert buttons[4].callback_data == "ih"
    if lang == "en":
        assert [b.text for b in buttons] == [
            "🍏 Install on iPhone",
            "🤖 Install on Android",
            "📋 Copy SM-DP+ address",
            "📋 Copy activation code",
            "📖 Step-by-step instructions",
        ]
    else:
        assert "iPhone" in buttons[0].text and buttons[0].text.startswith("🍏 Установить")
    text = parse_html(install_instructions(translator, lang))
    assert "iPhone" in text and "Android" in text and "SM-DP+" in text
    assert len(text) <= 4096
