"""The button "It doesn't work" as the user meets it in /myesims, through the real
dispatcher: each finding with what to do (in English and Russian), the network refresh and its
10-minute limit, the support ticket with the diagnosis, and an eSIM Go that cannot be read.
eSIM Go's live state is set in the fake."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiogram.types import User
from sqlalchemy import select

from db.models import EsimCheck
from handlers.callbacks import DoctorCallback
from tests.admin_chat import ADMIN, reply
from tests.doctor_world import ALICE, BOB, TH_5GB, Purchase, bought, open_card
from tests.fakes.telegram import StoredMessage
from tests.helpers import ADMIN_ID, BotEnv, answers, make_user

# The words on the buttons the user taps, in each language.
TAPS = {
    "en": {
        "doctor": "It doesn't work",
        "again": "Check again",
        "stuck": "Still not working",
        "back": "Back",
        "qr": "Show the QR code",
        "refresh": "Refresh the network connection",
        "refresh now": "Refresh now",
        "cancel": "Cancel",
        "top up": "Top up",
        "all plans": "All plans for this country",
    },
    "ru": {
        "doctor": "Не работает",
        "again": "Проверить ещё раз",
        "stuck": "Всё равно не работает",
        "back": "Назад",
        "qr": "Показать QR-код",
        "refresh": "Обновить подключение к сети",
        "refresh now": "🔄 Обновить",
        "cancel": "Отменить",
        "top up": "Пополнить",
        "all plans": "Все тарифы для этой страны",
    },
}


async def doctor(env: BotEnv, user: User, purchase: Purchase, language: str) -> StoredMessage:
    """The user opens the eSIM and taps "It doesn't work"; the screen they see then."""
    screen_id = await open_card(env, user, purchase)
    await env.tap(user, TAPS[language]["doctor"], screen_id)
    return env.message(user, screen_id)


def tap_text(language: str, what: str) -> str:
    return TAPS[language][what]


LANGUAGES = pytest.mark.parametrize("language", ["en", "ru"])


@LANGUAGES
async def test_never_installed_shows_how_to_install_with_one_tap_links(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)

    screen = await doctor(bot_env, alice, purchase, language)

    text = screen.text or ""
    expected = {
        "en": ("not installed on your phone yet", "before you fly", "Network data as of"),
        "ru": ("ещё не установлена на телефон", "до вылета", "Данные сети на"),
    }[language]
    for words in expected:
        assert words in text
    assert f"…{purchase.iccid[-4:]}" in text
    urls = [str(b.get("url")) for b in screen.buttons() if b.get("url")]
    assert len(urls) == 2
    assert urls[0].startswith("https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=LPA")
    assert urls[1].startswith("https://esimsetup.android.com/esim_qrcode_provisioning?carddata=")
    assert screen.button(tap_text(language, "stuck")) and screen.button(tap_text(language, "back"))

    calls = await bot_env.tap(alice, tap_text(language, "qr"), screen.message_id)
    assert [c.method for c in calls if c.method == "sendPhoto"] == ["sendPhoto"]
    await bot_env.tap(alice, tap_text(language, "back"), screen.message_id)
    assert purchase.iccid in (bot_env.message(alice, screen.message_id).text or "")
    assert not bot_env.error_logs


@LANGUAGES
async def test_the_button_is_answered_before_esim_go_is_asked(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    screen_id = await open_card(bot_env, alice, purchase)
    fake = bot_env.fake_esimgo
    # eSIM Go is slow to say where the eSIM is: the check waits, the user is answered already.
    fake.fail_next(f"GET /esims/{purchase.iccid}/location", status=200, delay=1.0)
    asked = len(fake.requests)
    before = len(bot_env.fake_telegram.calls)
    data = bot_env.screen(alice).button(tap_text(language, "doctor"))["callback_data"]
    pressing = asyncio.create_task(bot_env.press(alice, str(data), screen_id))

    await fake.wait_for_requests(asked + 4)  # the eSIM, its plans, its history, its location
    (answer,) = answers(bot_env.fake_telegram.calls[before:])
    checking = {"en": "Checking your eSIM with the network", "ru": "Проверяем вашу eSIM"}
    assert checking[language] in answer.params["text"]
    calls = await pressing
    assert len(answers(calls)) == 1  # answered once, not again after the check
    assert f"…{purchase.iccid[-4:]}" in (bot_env.message(alice, screen_id).text or "")


@LANGUAGES
async def test_installed_but_never_connected_gets_the_phone_settings(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    bot_env.fake_esimgo.install(purchase.iccid)

    screen = await doctor(bot_env, alice, purchase, language)

    expected = {
        "en": ("has not connected to a network yet", "Data Roaming", "Thailand"),
        "ru": ("ещё ни разу не подключалась к сети", "Роуминг данных", "Таиланд"),
    }[language]
    for words in expected:
        assert words in (screen.text or "")
    history = f"GET /esims/{purchase.iccid}/history"
    checks = len(bot_env.fake_esimgo.calls(history))
    await bot_env.tap(alice, tap_text(language, "again"), screen.message_id)
    assert len(bot_env.fake_esimgo.calls(history)) == checks + 1
    assert expected[0] in (bot_env.message(alice, screen.message_id).text or "")


@LANGUAGES
async def test_connected_where_the_plan_does_not_work_offers_plans_for_there(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    bot_env.fake_esimgo.install(purchase.iccid)
    bot_env.fake_esimgo.attach(purchase.iccid, "FR", network="Orange")

    screen = await doctor(bot_env, alice, purchase, language)

    expected = {
        "en": "Your phone is in 🇫🇷 France, but your plan works in 🇹🇭 Thailand.",
        "ru": "Ваш телефон сейчас в стране 🇫🇷 Франция, а тариф работает в странах: 🇹🇭 Таиланд.",
    }[language]
    assert expected in (screen.text or "") and "Orange" in (screen.text or "")
    offers = [b for b in screen.buttons() if str(b.get("text", "")).startswith("🇫🇷")]
    assert offers
    await bot_env.press(alice, str(offers[0]["callback_data"]), screen.message_id)
    card = bot_env.message(alice, screen.message_id)
    assert "France" in (card.text or "") or "Франция" in (card.text or "")
    assert card.button("🛒")  # the plan's card, with Buy
    await bot_env.tap(alice, tap_text(language, "back"), screen.message_id)
    assert "🇫🇷" in (bot_env.message(alice, screen.message_id).text or "")  # France's plans


async def test_all_plans_for_the_country_the_phone_is_in(bot_env: BotEnv) -> None:
    alice, purchase = await bought(bot_env)
    bot_env.fake_esimgo.install(purchase.iccid)
    bot_env.fake_esimgo.attach(purchase.iccid, "FR")
    screen = await doctor(bot_env, alice, purchase, "en")

    await bot_env.tap(alice, tap_text("en", "all plans"), screen.message_id)

    plans = bot_env.message(alice, screen.message_id)
    assert "France" in (plans.text or "") and "Choose a plan" in (plans.text or "")


@LANGUAGES
async def test_a_used_up_plan_shows_its_usage_and_offers_a_top_up(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    fake = bot_env.fake_esimgo
    fake.install(purchase.iccid)
    fake.attach(purchase.iccid, "TH")
    fake.start_bundle(purchase.iccid)
    fake.set_usage(purchase.iccid, remaining_bytes=0, state="depleted")

    screen = await doctor(bot_env, alice, purchase, language)

    expected = {
        "en": ("Your plan's data is used up.", "nothing to install again"),
        "ru": ("Трафик тарифа закончился.", "ничего переустанавливать не нужно"),
    }[language]
    for words in expected:
        assert words in (screen.text or "")
    await bot_env.tap(alice, tap_text(language, "top up"), screen.message_id)
    topup = bot_env.message(alice, screen.message_id)
    assert purchase.iccid[-4:] in (topup.text or "")  # the top-up's plans for this eSIM


@LANGUAGES
async def test_a_plan_not_started_says_when_it_will(bot_env: BotEnv, language: str) -> None:
    alice, purchase = await bought(bot_env, language)
    bot_env.fake_esimgo.install(purchase.iccid)
    bot_env.fake_esimgo.attach(purchase.iccid, "TH", network="AIS")

    screen = await doctor(bot_env, alice, purchase, language)

    expected = {
        "en": ("Your plan has not started yet.", "first time your phone uses data in 🇹🇭 Thailand"),
        "ru": ("Тариф ещё не начался.", "в одной из стран: 🇹🇭 Таиланд"),
    }[language]
    for words in expected:
        assert words in (screen.text or "")
    assert "AIS" in (screen.text or "")


@LANGUAGES
async def test_a_plan_still_being_set_up_asks_to_check_again_shortly(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    fake = bot_env.fake_esimgo
    fake.install(purchase.iccid)
    fake.attach(purchase.iccid, "TH")
    fake.set_usage(purchase.iccid, state="processing")

    screen = await doctor(bot_env, alice, purchase, language)

    expected = {"en": "still being set up", "ru": "Сеть ещё подключает ваш тариф"}[language]
    assert expected in (screen.text or "")
    assert screen.button(tap_text(language, "again"))


@LANGUAGES
async def test_an_esim_deleted_from_the_phone_leads_to_support(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    fake = bot_env.fake_esimgo
    fake.install(purchase.iccid)
    fake.set_profile_status(purchase.iccid, "Released")

    screen = await doctor(bot_env, alice, purchase, language)

    expected = {"en": "The eSIM was deleted from your phone.", "ru": "eSIM удалена с телефона."}
    assert expected[language] in (screen.text or "")
    assert screen.button(tap_text(language, "stuck"))


@LANGUAGES
async def test_everything_looks_right_then_a_network_refresh_once_per_ten_minutes(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    fake = bot_env.fake_esimgo
    fake.install(purchase.iccid)
    fake.attach(purchase.iccid, "TH")
    fake.start_bundle(purchase.iccid)
    screen = await doctor(bot_env, alice, purchase, language)
    words = {
        "en": ("Everything looks right", "disconnects your eSIM for a moment", "Done.", "after"),
        "ru": ("всё в порядке", "ненадолго отключит вашу eSIM", "Готово.", "после"),
    }[language]
    assert words[0] in (screen.text or "")
    message = screen.message_id

    await bot_env.tap(alice, tap_text(language, "refresh"), message)
    assert words[1] in (bot_env.message(alice, message).text or "")
    await bot_env.tap(alice, tap_text(language, "cancel"), message)
    assert purchase.iccid in (bot_env.message(alice, message).text or "")  # the eSIM's card
    assert fake.refreshed == []

    await refresh(bot_env, alice, purchase, message, language)
    assert words[2] in (bot_env.message(alice, message).text or "")
    assert fake.refreshed == [purchase.iccid]

    await refresh(bot_env, alice, purchase, message, language)
    too_soon = bot_env.message(alice, message).text or ""
    assert ("less than 10 minutes ago" in too_soon) or ("меньше 10 минут назад" in too_soon)
    assert words[3] in too_soon and fake.refreshed == [purchase.iccid]

    await age_refresh(bot_env, purchase.iccid, timedelta(minutes=11))
    await refresh(bot_env, alice, purchase, message, language)
    assert fake.refreshed == [purchase.iccid, purchase.iccid]


async def refresh(env: BotEnv, user: User, purchase: Purchase, message: int, lang: str) -> None:
    """From wherever the user is in the doctor: Refresh the network connection → Refresh now."""
    await env.press(user, DoctorCallback(action="ask_refresh", esim_id=purchase.esim_id), message)
    await env.tap(user, tap_text(lang, "refresh now"), message)


async def age_refresh(env: BotEnv, iccid: str, by: timedelta) -> None:
    """Pretend the last network refresh happened `by` earlier."""
    async with env.deps.session_factory() as session:
        check = await session.scalar(select(EsimCheck).where(EsimCheck.iccid == iccid))
        assert check is not None and check.refreshed_at is not None
        check.refreshed_at -= by
        await session.commit()


@LANGUAGES
async def test_still_not_working_sends_one_ticket_with_the_diagnosis(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    bot_env.fake_esimgo.install(purchase.iccid)
    bot_env.fake_esimgo.attach(purchase.iccid, "FR")
    screen = await doctor(bot_env, alice, purchase, language)

    await bot_env.tap(alice, tap_text(language, "stuck"), screen.message_id)

    sent = {
        "en": "Your request is with our support team.",
        "ru": "Ваш запрос передан в поддержку.",
    }
    assert sent[language] in (bot_env.message(alice, screen.message_id).text or "")
    (ticket,) = admin_messages(bot_env)
    text = ticket.text or ""
    assert "Support request" in text and "<b>" not in text
    assert "Alice (@alice)" in text and f"language {language}" in text
    assert purchase.iccid in text and purchase.public_id in text
    assert "User saw: wrong_country at" in text and "location: FR on Orange" in text
    assert f"plan {TH_5GB}: queued" in text

    # Back to the card, "It doesn't work" again, "Still not working" again: one ticket.
    await bot_env.tap(alice, tap_text(language, "back"), screen.message_id)
    await bot_env.tap(alice, tap_text(language, "doctor"), screen.message_id)
    await bot_env.tap(alice, tap_text(language, "stuck"), screen.message_id)
    already = {"en": "already has your request", "ru": "уже получила ваш запрос"}
    assert already[language] in (bot_env.message(alice, screen.message_id).text or "")
    assert len(admin_messages(bot_env)) == 1


async def test_a_ticket_from_the_doctor_is_answered_by_replying_to_it(bot_env: BotEnv) -> None:
    """The ticket lands in the support desk: the admin's Telegram reply reaches the user."""
    alice, purchase = await bought(bot_env, "en")
    bot_env.fake_esimgo.install(purchase.iccid)
    bot_env.fake_esimgo.attach(purchase.iccid, "FR")
    screen = await doctor(bot_env, alice, purchase, "en")
    await bot_env.tap(alice, tap_text("en", "stuck"), screen.message_id)

    (copy,) = admin_messages(bot_env)
    assert "Support ticket #1" in (copy.text or "") and purchase.iccid in (copy.text or "")
    await reply(bot_env, ADMIN, copy, "Choose the eSIM for mobile data, please")
    answer = bot_env.screen(alice)
    assert "Choose the eSIM for mobile data, please" in (answer.text or "")
    assert "Answer from our support team (request #1)" in (answer.text or "")


def admin_messages(env: BotEnv) -> list[StoredMessage]:
    return [m for m in env.fake_telegram.chat(ADMIN_ID) if m.from_bot]


@LANGUAGES
async def test_esim_go_down_gives_the_usual_steps_not_an_error(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    screen_id = await open_card(bot_env, alice, purchase)
    # Down for the check and every retry it makes (Retry-After 0: no waiting in the test).
    bot_env.fake_esimgo.fail_next(
        f"GET /esims/{purchase.iccid}", status=503, times=10, headers={"Retry-After": "0"}
    )

    await bot_env.tap(alice, tap_text(language, "doctor"), screen_id)

    text = bot_env.message(alice, screen_id).text or ""
    expected = {
        "en": ("could not check your eSIM with the network right now", "Data Roaming"),
        "ru": ("не получается проверить вашу eSIM", "Роуминг данных"),
    }[language]
    for words in expected:
        assert words in text
    assert "No network data" in text or "Нет данных сети" in text
    screen = bot_env.message(alice, screen_id)
    assert screen.button(tap_text(language, "again")) and screen.button(
        tap_text(language, "stuck")
    )
    assert not [m for m in bot_env.fake_telegram.chat(ALICE) if "went wrong" in (m.text or "")]
    assert not bot_env.error_logs


async def test_someone_elses_esim_is_not_checked(bot_env: BotEnv) -> None:
    _, purchase = await bought(bot_env)
    bob = make_user(BOB)
    await bot_env.send(bob, "/start")
    history = f"GET /esims/{purchase.iccid}/history"

    for action in ("check", "ask_refresh", "refresh", "ticket"):
        calls = await bot_env.press(bob, DoctorCallback(action=action, esim_id=purchase.esim_id))
        (answer,) = answers(calls)
        assert "not available" in answer.params["text"] and answer.params["show_alert"]

    assert bot_env.fake_esimgo.calls(history) == [] and bot_env.fake_esimgo.refreshed == []
    assert admin_messages(bot_env) == []
