"""/myesims through the real dispatcher: the list, details, Show QR again, owner checks."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import zxingcpp
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Esim, EsimBundle, Order, OrderStatus
from db.repositories.esims import MyEsimsRepository
from handlers.callbacks import InstallHelpCallback, MenuCallback, MyEsimsCallback
from tests.fakes.telegram import ApiCall
from tests.helpers import BotEnv, answers, make_user

ALICE, BOB = 1001, 2002
ICCID = "8944500102198304826"
LPA = "LPA:1$rsp.truphone.com$QR-G-5C-1LS-1W1Z9P7"


def _order(
    public_id: str, user_id: int, status: OrderStatus, when: datetime, **extra: object
) -> Order:
    values: dict[str, object] = {
        "public_id": public_id,
        "telegram_user_id": user_id,
        "telegram_username": "traveller",
        "chat_id": user_id,
        "language": "en",
        "bundle_name": "esim_1GB_7D_TH_V2",
        "country_code": "TH",
        "country_name": "Thailand",
        "cost": Decimal("1.25"),
        "cost_currency": "USD",
        "price": 125,
        "price_currency": "XTR",
        "status": status.value,
        "created_at": when,
        "updated_at": when,
        **extra,
    }
    return Order(**values)


async def _seed(env: BotEnv) -> dict[str, int]:
    """Alice: a delivered Thai eSIM (March 10), a refunded order (March 11) and an unpaid UK
    order (March 12). Bob: one delivered eSIM of his own."""
    async with env.deps.session_factory() as session:
        delivered = _order(
            "THAI0001",
            ALICE,
            OrderStatus.DELIVERED,
            datetime(2025, 3, 10, 9, 30, tzinfo=UTC),
            iccid=ICCID,
            qr_code=LPA,
            activation_code="QR-G-5C-1LS-1W1Z9P7",
            smdp_address="rsp.truphone.com",
            esimgo_order_reference="ref-thai-1",
        )
        refunded = _order(
            "THAI0002", ALICE, OrderStatus.REFUNDED, datetime(2025, 3, 11, 8, 0, tzinfo=UTC)
        )
        unpaid = _order(
            "UK000003",
            ALICE,
            OrderStatus.AWAITING_PAYMENT,
            datetime(2025, 3, 12, 18, 45, tzinfo=UTC),
            bundle_name="esim_1GB_7D_GB_V2",
            country_code="GB",
            country_name="United Kingdom",
        )
        bobs = _order(
            "BOB00001",
            BOB,
            OrderStatus.DELIVERED,
            datetime(2025, 3, 9, tzinfo=UTC),
            iccid="8944500102198300000",
            qr_code="LPA:1$rsp.truphone.com$BOB-SECRET",
        )
        session.add_all([delivered, refunded, unpaid, bobs])
        await session.flush()
        esim = Esim(
            iccid=ICCID,
            telegram_user_id=ALICE,
            first_order_id=delivered.id,
            smdp_address="rsp.truphone.com",
            matching_id="QR-G-5C-1LS-1W1Z9P7",
            lpa=LPA,
            country_code="TH",
            profile_status="Released",
            created_at=datetime(2025, 3, 10, 9, 31, tzinfo=UTC),
        )
        bob_esim = Esim(
            iccid="8944500102198300000",
            telegram_user_id=BOB,
            first_order_id=bobs.id,
            smdp_address="rsp.truphone.com",
            matching_id="BOB-SECRET",
            lpa="LPA:1$rsp.truphone.com$BOB-SECRET",
            created_at=datetime(2025, 3, 9, tzinfo=UTC),
        )
        session.add_all([esim, bob_esim])
        session.add(
            EsimBundle(
                iccid=ICCID,
                assignment_key="a-1",
                bundle_name="esim_1GB_7D_TH_V2",
                state="active",
                initial_bytes=1_000_000_000,
                remaining_bytes=400_000_000,
            )
        )
        await session.flush()
        ids = {
            "esim": esim.id,
            "bob_esim": bob_esim.id,
            "refunded": refunded.id,
            "unpaid": unpaid.id,
            "bob_order": bobs.id,
        }
        await session.commit()
    return ids


def _refusal(calls: list[ApiCall]) -> ApiCall:
    (answer,) = answers(calls)
    return answer


async def test_myesims_lists_esims_and_orders_newest_first(bot_env: BotEnv) -> None:
    await _seed(bot_env)
    alice = make_user(ALICE)
    await bot_env.send(alice, "/myesims")
    screen = bot_env.screen(alice)
    text = screen.text or ""
    uk, refunded, thai = (
        text.index("United Kingdom"),
        text.index("refunded"),
        text.index("in use"),
    )
    assert uk < refunded < thai
    assert "awaiting payment" in text
    assert "Mar 12, 2025" in text and "Mar 10, 2025" in text
    assert "🇹🇭 Thailand · 1 GB · 7 days" in text
    assert "BOB" not in text and "8944500102198300000" not in text
    labels = screen.button_texts()
    assert labels[:3] == [
        "🇬🇧 United Kingdom · 1 GB · 7 days · Mar 12",
        "🇹🇭 Thailand · 1 GB · 7 days · Mar 11",
        "🇹🇭 Thailand · 1 GB · 7 days · Mar 10",
    ]
    assert "Back" in labels[-1]
    assert not bot_env.error_logs


async def test_myesims_in_russian(bot_env: BotEnv) -> None:
    await _seed(bot_env)
    alice = make_user(ALICE, language_code="ru")
    await bot_env.send(alice, "/myesims")
    text = bot_env.screen(alice).text or ""
    assert "Мои eSIM и заказы" in text
    assert "ждёт оплаты" in text and "оплата возвращена" in text
    assert "12 мар. 2025" in text
    assert "🇹🇭 Таиланд · 1 ГБ" in text
    assert text.index("Великобритания") < text.index("Таиланд")


async def test_main_menu_button_opens_the_list(bot_env: BotEnv) -> None:
    await _seed(bot_env)
    alice = make_user(ALICE)
    await bot_env.send(alice, "/start")
    await bot_env.tap(alice, "My eSIMs")
    assert "My eSIMs and orders" in (bot_env.screen(alice).text or "")


async def test_open_esim_shows_details_and_history(bot_env: BotEnv) -> None:
    await _seed(bot_env)
    alice = make_user(ALICE)
    await bot_env.send(alice, "/myesims")
    screen_id = bot_env.screen(alice).message_id
    await bot_env.tap(alice, "Thailand · 1 GB · 7 days · Mar 10")
    screen = bot_env.message(alice, screen_id)
    assert ICCID in (screen.text or "")
    assert "Status: in use" in (screen.text or "")
    assert "THAI0001" in (screen.html or "")
    assert "delivered" in (screen.text or "")
    assert [t.split(" ", 1)[1] for t in screen.button_texts()] == [
        "Show QR again",
        "How to install",
        "Top up",
        "It doesn't work",
        "Back",
    ]
    await bot_env.tap(alice, "How to install", screen_id)
    assert "iPhone" in (bot_env.message(alice, screen_id).text or "")
    await bot_env.tap(alice, "Back", screen_id)
    assert ICCID in (bot_env.message(alice, screen_id).text or "")
    await bot_env.tap(alice, "Back", screen_id)
    assert "My eSIMs and orders" in (bot_env.message(alice, screen_id).text or "")


async def test_open_unpaid_order_explains_its_status(bot_env: BotEnv) -> None:
    await _seed(bot_env)
    alice = make_user(ALICE)
    await bot_env.send(alice, "/myesims")
    await bot_env.tap(alice, "United Kingdom")
    text = bot_env.screen(alice).text or ""
    assert "UK000003" in text and "awaiting payment" in text
    assert "has not been paid" in text


async def test_show_qr_again_resends_the_photo_without_esimgo(bot_env: BotEnv) -> None:
    await _seed(bot_env)
    alice = make_user(ALICE)
    await bot_env.send(alice, "/myesims")
    await bot_env.tap(alice, "Thailand · 1 GB · 7 days · Mar 10")
    esimgo_before = len(bot_env.fake_esimgo.requests)
    calls = await bot_env.tap(alice, "Show QR again")
    photos = [c for c in calls if c.method == "sendPhoto"]
    assert len(photos) == 1
    png = photos[0].files["photo"]
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert [r.text for r in decoded] == [LPA]
    assert len(bot_env.fake_esimgo.requests) == esimgo_before
    message = bot_env.screen(alice)
    assert message.photo == png
    caption = message.caption_html or ""
    assert f"<code>{ICCID}</code>" in caption
    assert "<code>QR-G-5C-1LS-1W1Z9P7</code>" in caption
    urls = [b.get("url") for b in message.buttons()]
    assert urls[0] == (
        "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata="
        "LPA%3A1%24rsp.truphone.com%24QR-G-5C-1LS-1W1Z9P7"
    )
    # The photo's "Step-by-step instructions" answers with a new message, the photo stays.
    await bot_env.tap(alice, "Step-by-step")
    assert "How to install your eSIM" in (bot_env.screen(alice).text or "")
    assert bot_env.screen(alice).message_id != message.message_id
    assert not bot_env.error_logs


async def test_foreign_and_unknown_ids_are_refused(bot_env: BotEnv) -> None:
    ids = await _seed(bot_env)
    bob = make_user(BOB, username="bob")
    await bot_env.send(bob, "/myesims")
    for data in (
        MyEsimsCallback(action="esim", id=ids["esim"]),
        MyEsimsCallback(action="qr", id=ids["esim"]),
        MyEsimsCallback(action="order", id=ids["unpaid"]),
        MyEsimsCallback(action="oqr", id=ids["refunded"]),
        MyEsimsCallback(action="esim", id=999_999),
        MyEsimsCallback(action="order", id=999_999),
        InstallHelpCallback(esim_id=ids["esim"]),
    ):
        before = bot_env.screen(bob)
        calls = await bot_env.press(bob, data)
        answer = _refusal(calls)
        assert "not available" in answer.params.get("text", ""), data
        assert answer.params.get("show_alert") is True
        assert not [c for c in calls if c.method in {"sendPhoto", "editMessageText"}]
        assert bot_env.screen(bob).message_id == before.message_id
    # His own eSIM still opens.
    await bot_env.press(bob, MyEsimsCallback(action="esim", id=ids["bob_esim"]))
    assert "8944500102198300000" in (bot_env.screen(bob).text or "")


async def test_empty_state_offers_to_buy(bot_env: BotEnv) -> None:
    carol = make_user(3003)
    await bot_env.send(carol, "/myesims")
    screen = bot_env.screen(carol)
    assert "You have no eSIMs yet" in (screen.text or "")
    assert screen.button("Buy eSIM").get("callback_data") == MenuCallback(action="buy").pack()
    await bot_env.tap(carol, "Buy eSIM")
    assert "Where are you travelling?" in (bot_env.screen(carol).text or "")


async def test_repository_is_owner_scoped_and_newest_first(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        older = _order("R1", ALICE, OrderStatus.DELIVERED, datetime(2025, 1, 1, tzinfo=UTC))
        newer = _order("R2", ALICE, OrderStatus.CANCELLED, datetime(2025, 2, 1, tzinfo=UTC))
        foreign = _order("R3", BOB, OrderStatus.DELIVERED, datetime(2025, 3, 1, tzinfo=UTC))
        older.iccid = ICCID
        session.add_all([older, newer, foreign])
        await session.flush()
        esim = Esim(iccid=ICCID, telegram_user_id=ALICE, lpa=LPA)
        session.add(esim)
        session.add(EsimBundle(iccid=ICCID, assignment_key="k", bundle_name="b", state="queued"))
        await session.commit()

        repo = MyEsimsRepository(session)
        assert [o.public_id for o in await repo.orders(ALICE)] == ["R2", "R1"]
        assert [o.public_id for o in await repo.orders(ALICE, limit=1)] == ["R2"]
        assert await repo.order(foreign.id, ALICE) is None
        assert (await repo.order(foreign.id, BOB)) is not None
        assert await repo.esim(esim.id, BOB) is None
        assert [e.iccid for e in await repo.esims(ALICE)] == [ICCID]
        assert await repo.esims(BOB) == []
        assert [o.public_id for o in await repo.esim_orders(ICCID, ALICE)] == ["R1"]
        assert await repo.esim_orders(ICCID, BOB) == []
        assert len(await repo.esim_bundles(ICCID, ALICE)) == 1
        assert await repo.esim_bundles(ICCID, BOB) == []
        grouped = await repo.bundles_by_iccid([ICCID], ALICE)
        assert list(grouped) == [ICCID] and [b.state for b in grouped[ICCID]] == ["queued"]
        assert await repo.bundles_by_iccid([ICCID], BOB) == {}
