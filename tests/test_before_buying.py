"""What a traveller learns before paying, through the real dispatcher, in English and Russian:
"Will it work on my phone?" from the menu and from every plan's card, the confirmation's two
warnings (when the plan starts; the QR installs once), and the self-refund rule in /terms and
/paysupport (and its absence when SELF_REFUND_DAYS is 0)."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.callbacks import BundleCallback, PhoneCheckCallback, TopUpCallback, TopUpPickCallback
from tests.doctor_world import TH_1GB, bought
from tests.helpers import BotEnv, make_user

ALICE = make_user(7001, language_code="en")
BORIS = make_user(7003, language_code="ru")
ASIA = "esim_1GB_7D_RAS_V2"
LANGUAGES = pytest.mark.parametrize("language", ["en", "ru"])
USERS = {"en": ALICE, "ru": BORIS}
WORDS = {
    "en": {
        "check": "Will it work on my phone?",
        "step 1": ("Step 1 of 3: eSIM", "*#06#", "EID"),
        "eid": "I see an EID",
        "no eid": "There is no EID",
        "step 2": ("Step 2 of 3: is your phone unlocked?", "Carrier Lock"),
        "unlocked": "It is unlocked",
        "locked": "Locked or not sure",
        "unlocked now": "It is unlocked now",
        "step 3": "Step 3 of 3: the right country",
        "choose": "Choose a country",
        "no sale": ("This phone cannot use an eSIM", "we will not sell you one"),
        "ask carrier": "Ask your carrier to unlock the phone first",
        "menu": "Main menu",
        "back": "Back",
        "buy this": "Buy this plan",
        "buy screen": "Where are you travelling?",
        "main menu": "Travel eSIMs",
        "thailand": "🇹🇭 Thailand",
        "starts": "The plan starts when your phone first uses data in a covered country",
        "keep qr": "The QR code can be installed only once: keep it until the eSIM is installed.",
        "confirm": "Confirm your order",
        "rule": ("Refund of an unused eSIM.", "within 7 days of purchase"),
        "no return": "A delivered eSIM cannot be returned",
        "installed no return": "An eSIM that has been installed, or whose plan has started",
    },
    "ru": {
        "check": "Подойдёт ли мой телефон?",
        "step 1": ("Шаг 1 из 3: eSIM", "*#06#", "EID"),
        "eid": "EID есть",
        "no eid": "EID нет",
        "step 2": ("Шаг 2 из 3: телефон разблокирован?", "Блокировка оператора"),
        "unlocked": "Разблокирован",
        "locked": "Заблокирован или не уверен",
        "unlocked now": "Теперь разблокирован",
        "step 3": "Шаг 3 из 3: нужная страна",
        "choose": "Выбрать страну",
        "no sale": ("Этот телефон не поддерживает eSIM", "мы не продадим вам"),
        "ask carrier": "Сначала попросите оператора разблокировать телефон",
        "menu": "Главное меню",
        "back": "Назад",
        "buy this": "Купить этот тариф",
        "buy screen": "Куда вы едете?",
        "main menu": "eSIM для путешествий",
        "thailand": "🇹🇭 Таиланд",
        "starts": "Тариф начинает действовать, когда телефон впервые использует интернет",
        "keep qr": "QR-код можно установить только один раз",
        "confirm": "Подтвердите заказ",
        "rule": ("Возврат неиспользованной eSIM.", "в течение 7 дней после покупки"),
        "no return": "Выданную eSIM вернуть нельзя",
        "installed no return": "Установленную eSIM или eSIM, тариф которой уже начался",
    },
}


def shown(env: BotEnv, language: str) -> str:
    return env.screen(USERS[language]).text or ""


async def tap(env: BotEnv, language: str, what: str) -> None:
    await env.tap(USERS[language], WORDS[language][what])


@LANGUAGES
async def test_from_the_menu_the_three_steps_lead_to_choosing_a_country(
    bot_env: BotEnv, language: str
) -> None:
    words = WORDS[language]
    await bot_env.send(USERS[language], "/start")

    await tap(bot_env, language, "check")
    assert all(part in shown(bot_env, language) for part in words["step 1"])
    await tap(bot_env, language, "eid")
    assert all(part in shown(bot_env, language) for part in words["step 2"])
    await tap(bot_env, language, "unlocked")
    assert words["step 3"] in shown(bot_env, language)
    await tap(bot_env, language, "choose")

    assert words["buy screen"] in shown(bot_env, language)


@LANGUAGES
async def test_no_eid_means_no_sale(bot_env: BotEnv, language: str) -> None:
    words = WORDS[language]
    await bot_env.send(USERS[language], "/start")
    await tap(bot_env, language, "check")

    await tap(bot_env, language, "no eid")

    assert all(part in shown(bot_env, language) for part in words["no sale"])
    assert bot_env.screen(USERS[language]).button_texts() == [f"🏠 {words['menu']}"]
    await tap(bot_env, language, "menu")
    assert words["main menu"] in shown(bot_env, language)


@LANGUAGES
async def test_a_locked_phone_is_sent_to_its_carrier_then_on(
    bot_env: BotEnv, language: str
) -> None:
    words = WORDS[language]
    await bot_env.send(USERS[language], "/start")
    await tap(bot_env, language, "check")
    await tap(bot_env, language, "eid")

    await tap(bot_env, language, "locked")
    assert words["ask carrier"] in shown(bot_env, language)
    await tap(bot_env, language, "unlocked now")

    assert words["step 3"] in shown(bot_env, language)


@LANGUAGES
async def test_from_a_plan_card_step_three_lists_its_countries_and_buys_it(
    bot_env: BotEnv, language: str
) -> None:
    words = WORDS[language]
    user = USERS[language]
    await bot_env.send(user, "/start")
    await bot_env.press(user, BundleCallback(action="show", bundle=TH_1GB, iso="TH"))

    await tap(bot_env, language, "check")
    await tap(bot_env, language, "eid")
    await tap(bot_env, language, "unlocked")
    step3 = shown(bot_env, language)
    assert words["step 3"] in step3 and words["thailand"] in step3
    await tap(bot_env, language, "buy this")

    confirmation = shown(bot_env, language)
    assert words["confirm"] in confirmation
    assert words["starts"] in confirmation and words["keep qr"] in confirmation


async def test_a_regional_plan_lists_every_country_with_its_flag(bot_env: BotEnv) -> None:
    await bot_env.send(ALICE, "/start")
    await bot_env.press(ALICE, PhoneCheckCallback(step="countries", bundle=ASIA, iso="TH"))

    text = shown(bot_env, "en")
    bundle = bot_env.deps.catalogue.catalogue.by_name(ASIA)
    assert bundle is not None and len(bundle.coverage) > 3
    flags = [line for line in text.splitlines() if line[:1] >= "\U0001f1e6"]
    assert len(flags) == min(len(bundle.coverage), 30)
    if len(bundle.coverage) > 30:
        assert f"…and {len(bundle.coverage) - 30} more" in text


@LANGUAGES
async def test_back_from_the_check_returns_where_it_started(
    bot_env: BotEnv, language: str
) -> None:
    words = WORDS[language]
    user = USERS[language]
    await bot_env.send(user, "/start")
    await tap(bot_env, language, "check")
    await tap(bot_env, language, "back")
    assert words["main menu"] in shown(bot_env, language)

    await bot_env.press(user, BundleCallback(action="show", bundle=TH_1GB, iso="TH"))
    card = shown(bot_env, language)
    await tap(bot_env, language, "check")
    await tap(bot_env, language, "eid")
    await tap(bot_env, language, "back")
    assert shown(bot_env, language) == card
    await tap(bot_env, language, "back")  # the card's own Back: Thailand's plans
    assert words["thailand"] in shown(bot_env, language)


async def test_a_forged_step_or_a_withdrawn_plan_starts_the_check_plainly(
    bot_env: BotEnv,
) -> None:
    await bot_env.send(ALICE, "/start")

    await bot_env.press(ALICE, PhoneCheckCallback(step="explode", bundle="esim_gone", iso="ZZ"))
    assert "Step 1 of 3" in shown(bot_env, "en")
    await bot_env.press(ALICE, PhoneCheckCallback(step="countries", bundle="esim_gone"))
    assert "Choose the country you are travelling to" in shown(bot_env, "en")
    assert not bot_env.error_logs


@LANGUAGES
async def test_a_top_up_confirmation_says_when_the_plan_starts_but_nothing_of_a_qr(
    bot_env: BotEnv, language: str
) -> None:
    alice, purchase = await bought(bot_env, language)
    await bot_env.press(alice, TopUpCallback(esim_id=purchase.esim_id))

    await bot_env.press(alice, TopUpPickCallback(esim_id=purchase.esim_id, bundle=TH_1GB))

    confirmation = bot_env.screen(alice).text or ""
    assert WORDS[language]["confirm"] in confirmation
    assert WORDS[language]["starts"] in confirmation
    assert WORDS[language]["keep qr"] not in confirmation


@LANGUAGES
@pytest.mark.parametrize("command", ["/terms", "/paysupport"])
async def test_terms_and_paysupport_state_the_self_refund_rule(
    bot_env: BotEnv, language: str, command: str
) -> None:
    words = WORDS[language]
    await bot_env.send(USERS[language], command)

    text = shown(bot_env, language)
    assert all(part in text for part in words["rule"])
    assert words["no return"] not in text and words["installed no return"] in text


class TestWithoutSelfRefunds:
    """SELF_REFUND_DAYS=0: no Refund button, and the texts do not promise one."""

    @pytest.fixture
    def bot_env_settings(self) -> dict[str, Any]:
        return {"self_refund_days": 0}

    @LANGUAGES
    @pytest.mark.parametrize("command", ["/terms", "/paysupport"])
    async def test_the_texts_keep_to_the_old_rule(
        self, bot_env: BotEnv, language: str, command: str
    ) -> None:
        await bot_env.send(USERS[language], command)

        text = shown(bot_env, language)
        assert WORDS[language]["rule"][0] not in text
        assert WORDS[language]["installed no return"] not in text

    async def test_no_refund_button_on_a_fresh_esim(self, bot_env: BotEnv) -> None:
        alice, _ = await bought(bot_env)
        await bot_env.send(alice, "/myesims")
        await bot_env.tap(alice, "Thailand")

        buttons = bot_env.screen(alice).button_texts()
        assert any("It doesn't work" in b for b in buttons)
        assert not any("Refund" in b for b in buttons)
