"""/paysupport (pick an order, type a question, admins get it) and /terms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from db.models import Order, OrderStatus
from handlers.callbacks import SupportCallback
from tests.helpers import ADMIN_ID, BotEnv, answers, make_user

ALICE, BOB = 1001, 2002
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def _add_orders(env: BotEnv, user_id: int, count: int, prefix: str) -> list[int]:
    """`count` Thai orders a day apart, the last one the newest; returns their ids."""
    async with env.deps.session_factory() as session:
        orders = [
            Order(
                public_id=f"{prefix}{n:04d}",
                telegram_user_id=user_id,
                chat_id=user_id,
                bundle_name="esim_1GB_7D_TH_V2",
                country_code="TH",
                country_name="Thailand",
                cost=Decimal("1.25"),
                price=125,
                price_currency="XTR",
                status=OrderStatus.DELIVERED.value if n % 2 else OrderStatus.REFUNDED.value,
                iccid=f"89445001021983{n:05d}" if n % 2 else None,
                created_at=START + timedelta(days=n),
            )
            for n in range(count)
        ]
        session.add_all(orders)
        await session.commit()
        return [order.id for order in orders]


def _admin_messages(env: BotEnv) -> list[str]:
    return [
        str(call.params.get("text", ""))
        for call in env.fake_telegram.calls_to("sendMessage")
        if call.params.get("chat_id") == ADMIN_ID
    ]


async def test_paysupport_explains_refunds_and_lists_the_last_ten_orders(bot_env: BotEnv) -> None:
    await _add_orders(bot_env, ALICE, 12, "AL")
    alice = make_user(ALICE)
    await bot_env.send(alice, "/paysupport")
    screen = bot_env.screen(alice)
    assert "money back automatically" in (screen.text or "")
    labels = screen.button_texts()
    orders = [label for label in labels if "Thailand" in label]
    assert len(orders) == 10
    assert orders[0].endswith("Mar 12, 2025") and orders[-1].endswith(
        "Mar 3, 2025"
    )  # newest first
    assert "Another question" in labels[-2] and "Back" in labels[-1]


async def test_question_about_an_order_reaches_the_admins(bot_env: BotEnv) -> None:
    await _add_orders(bot_env, ALICE, 2, "AL")
    alice = make_user(ALICE, username="alice_t", first_name="Alice")
    await bot_env.send(alice, "/paysupport")
    await bot_env.tap(alice, "Mar 2")  # AL0001, delivered
    assert "AL0001" in (bot_env.screen(alice).text or "")
    assert "Type your question" in (bot_env.screen(alice).text or "")

    await bot_env.send(alice, "The eSIM <b>won't</b> connect & I'm in Bangkok")

    (admin_text,) = _admin_messages(bot_env)
    assert "AL0001" in admin_text and "delivered" in admin_text
    assert "@alice_t" in admin_text and "1001" in admin_text
    assert "8944500102198300001" in admin_text
    assert "The eSIM &lt;b&gt;won't&lt;/b&gt; connect &amp; I'm in Bangkok" in admin_text
    assert "sent to our support team" in (bot_env.screen(alice).text or "")

    # The question was taken once: the next text is a country search again, not a question.
    await bot_env.send(alice, "Thailand")
    assert len(_admin_messages(bot_env)) == 1
    assert not bot_env.error_logs


async def test_general_question_in_russian(bot_env: BotEnv) -> None:
    alice = make_user(ALICE, language_code="ru")
    await bot_env.send(alice, "/paysupport")
    assert "Помощь с оплатой" in (bot_env.screen(alice).text or "")
    await bot_env.tap(alice, "Другой вопрос")
    await bot_env.send(alice, "Работает ли eSIM в Турции?")
    (admin_text,) = _admin_messages(bot_env)
    assert "none chosen" in admin_text and "Работает ли eSIM в Турции?" in admin_text
    assert "language ru" in admin_text
    assert "Спасибо" in (bot_env.screen(alice).text or "")


async def test_a_command_instead_of_the_question_drops_the_request(bot_env: BotEnv) -> None:
    alice = make_user(ALICE)
    await bot_env.send(alice, "/paysupport")
    await bot_env.tap(alice, "Another question")
    await bot_env.send(alice, "/start")
    assert "Buy eSIM" in bot_env.screen(alice).button_texts()[0]
    await bot_env.send(alice, "Japan")
    assert _admin_messages(bot_env) == []


async def test_cancel_drops_the_request(bot_env: BotEnv) -> None:
    alice = make_user(ALICE)
    await bot_env.send(alice, "/paysupport")
    await bot_env.tap(alice, "Another question")
    await bot_env.tap(alice, "Cancel")
    assert "Cancelled" in (bot_env.screen(alice).text or "")
    await bot_env.send(alice, "Japan")
    assert _admin_messages(bot_env) == []


async def test_someone_elses_order_is_refused(bot_env: BotEnv) -> None:
    (alices,) = await _add_orders(bot_env, ALICE, 1, "AL")
    bob = make_user(BOB, username="bob")
    await bot_env.send(bob, "/paysupport")
    for order_id in (alices, 999_999):
        calls = await bot_env.press(bob, SupportCallback(action="order", id=order_id))
        (answer,) = answers(calls)
        assert "not available" in answer.params.get("text", "")
        assert answer.params.get("show_alert") is True
    # Nothing is awaited: Bob's next text is not forwarded.
    await bot_env.send(bob, "Thailand")
    assert _admin_messages(bot_env) == []


async def test_terms_in_english_and_russian(bot_env: BotEnv) -> None:
    await bot_env.send(make_user(ALICE), "/terms")
    english = bot_env.screen(make_user(ALICE)).text or ""
    assert "Terms of sale" in english
    assert "from first use" in english and "refunded in full automatically" in english
    assert "/paysupport" in english
    await bot_env.send(make_user(BOB, language_code="ru"), "/terms")
    russian = bot_env.screen(make_user(BOB)).text or ""
    assert "Условия продажи" in russian and "с первого использования" in russian
    assert "/paysupport" in russian
