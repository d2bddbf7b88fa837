"""eSIM Go callbacks over real HTTP: signatures, storage once, background processing, routing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

from babel.dates import format_date
from sqlalchemy import func, select, text

from bot.messenger import AiogramMessenger
from db.base import utcnow
from db.models import CallbackEvent, Esim, EsimBundle, User
from services.esimgo_events import EsimGoEventWorker, verify_signature
from tests.fakes.telegram import ApiCall
from tests.helpers import ADMIN_ID
from tests.tracking_helpers import (
    ICCID,
    ServerEnv,
    api_time,
    first_use,
    plan_window,
    seed_esim,
    utilisation,
)

USER_ID = 5001


async def event_count(server: ServerEnv) -> int:
    async with server.env.deps.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(CallbackEvent)) or 0)


def keyboard(call: ApiCall) -> list[list[dict[str, Any]]]:
    markup = call.params["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    return list(markup["inline_keyboard"])


def texts_to(server: ServerEnv, chat_id: int) -> list[str]:
    return [
        str(call.params.get("text", ""))
        for call in server.env.fake_telegram.calls_to("sendMessage")
        if int(call.params.get("chat_id", 0)) == chat_id
    ]


async def test_signature_in_hex_is_accepted_and_the_plan_start_is_told(
    server_env: ServerEnv,
) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)

    status, body = await server_env.post_callback(first_use(), encoding="hex")
    await server_env.settle()

    assert status == 200 and body["status"] == "accepted"
    async with server_env.env.deps.session_factory() as session:
        bundle = await session.scalar(select(EsimBundle).where(EsimBundle.iccid == ICCID))
        event = await session.scalar(select(CallbackEvent))
    assert bundle is not None and bundle.state == "active"
    assert bundle.remaining_bytes == 4_990_000_000 and bundle.initial_bytes == 5_000_000_000
    _, end = plan_window()
    assert bundle.end_at == end
    assert event is not None and event.processed and event.iccid == ICCID
    [text] = texts_to(server_env, USER_ID)
    assert "has started" in text and format_date(end, "d MMM", locale="en") in text


async def test_signature_in_base64_is_accepted(server_env: ServerEnv) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)

    status, _ = await server_env.post_callback(first_use(), encoding="base64")
    await server_env.settle()

    assert status == 200
    assert len(texts_to(server_env, USER_ID)) == 1


async def test_bad_or_missing_signature_is_refused_and_nothing_is_stored(
    server_env: ServerEnv,
) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)
    body = json.dumps(first_use()).encode()
    wrong_key = hmac.new(b"not-the-key", body, hashlib.sha256).hexdigest()

    assert (await server_env.post_callback(body, signature=wrong_key))[0] == 401
    assert (await server_env.post_callback(body, signature="zz-not-a-digest"))[0] == 401
    assert (await server_env.post_callback(body, signature=None))[0] == 401
    # Signed over a different body: a tampered payload.
    other = hmac.new(server_env.api_key.encode(), body + b" ", hashlib.sha256).hexdigest()
    assert (await server_env.post_callback(body, signature=other))[0] == 401

    assert await event_count(server_env) == 0
    assert texts_to(server_env, USER_ID) == []


async def test_malformed_or_unknown_shapes_get_400_and_are_not_stored(
    server_env: ServerEnv,
) -> None:
    for body in (
        b"{not json",
        b"[1, 2, 3]",
        json.dumps({"hello": "world"}).encode(),
        json.dumps({"alertType": "Utilisation", "iccid": ICCID}).encode(),  # no bundle
        json.dumps({"event": "esim.deleted"}).encode(),  # no iccid
        "\xff".encode("latin-1"),
    ):
        status, _ = await server_env.post_callback(body)
        assert status == 400, body
    assert await event_count(server_env) == 0


async def test_the_same_callback_twice_notifies_once(server_env: ServerEnv) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)
    body = json.dumps(first_use()).encode()

    first = await server_env.post_callback(body)
    second = await server_env.post_callback(body)
    await server_env.settle()

    assert first == (200, {"status": "accepted"})
    assert second == (200, {"status": "duplicate"})
    assert await event_count(server_env) == 1
    assert len(texts_to(server_env, USER_ID)) == 1


async def test_an_iccid_sent_as_a_big_json_number_stays_exact(server_env: ServerEnv) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)
    # Written by hand: the number must reach us as a JSON number, not a string.
    body = json.dumps(first_use(iccid="__ICCID__")).replace('"__ICCID__"', ICCID).encode()
    assert f'"iccid": {ICCID}' in body.decode()

    status, _ = await server_env.post_callback(body)
    await server_env.settle()

    assert status == 200
    async with server_env.env.deps.session_factory() as session:
        event = await session.scalar(select(CallbackEvent))
        rows = (await session.scalars(select(EsimBundle.iccid))).all()
    assert event is not None and event.iccid == ICCID
    assert rows == [ICCID]
    assert len(texts_to(server_env, USER_ID)) == 1


async def test_usage_alerts_at_80_and_100_percent_offer_a_top_up(server_env: ServerEnv) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)

    await server_env.post_callback(first_use())
    await server_env.post_callback(utilisation(remaining=2_500_000_000))  # 50 %: nothing new
    await server_env.settle()
    assert len(texts_to(server_env, USER_ID)) == 1

    await server_env.post_callback(utilisation(remaining=1_000_000_000))  # 80 %
    await server_env.settle()
    await server_env.post_callback(utilisation(remaining=0))  # 100 %
    await server_env.settle()

    texts = texts_to(server_env, USER_ID)
    assert len(texts) == 3
    assert "80" in texts[1] and "1 GB left" in texts[1]
    assert "used up" in texts[2]
    messages = server_env.env.fake_telegram.calls_to("sendMessage")[-2:]
    for call in messages:
        [[button]] = keyboard(call)
        assert "Top up" in button["text"] and button["callback_data"].startswith("topup:")
    async with server_env.env.deps.session_factory() as session:
        bundle = await session.scalar(select(EsimBundle))
    assert bundle is not None and bundle.state == "depleted" and bundle.remaining_bytes == 0


async def test_callbacks_out_of_order_never_give_usage_back(server_env: ServerEnv) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)
    await server_env.post_callback(utilisation(remaining=1_000_000_000))
    await server_env.post_callback(first_use(remaining=4_990_000_000))
    await server_env.settle()
    async with server_env.env.deps.session_factory() as session:
        bundle = await session.scalar(select(EsimBundle))
    assert bundle is not None and bundle.remaining_bytes == 1_000_000_000


async def test_unknown_iccid_is_kept_and_not_an_error(server_env: ServerEnv) -> None:
    status, _ = await server_env.post_callback(first_use(iccid="8900000000000000001"))
    await server_env.settle()

    assert status == 200
    async with server_env.env.deps.session_factory() as session:
        event = await session.scalar(select(CallbackEvent))
    assert event is not None and event.processed and event.error == "unknown iccid"
    assert event.iccid == "8900000000000000001"
    assert server_env.env.fake_telegram.calls_to("sendMessage") == []


async def test_low_and_insufficient_balance_alert_the_admins(server_env: ServerEnv) -> None:
    low = {
        "alertType": "LowBalance",
        "balanceInfo": {"balance": 1299.3, "threshold": 2600, "thresholdPercentRemaining": 49.973},
    }
    await server_env.post_callback(low)
    await server_env.post_callback({"alertType": "InsufficientBalance"})
    await server_env.settle()

    texts = texts_to(server_env, ADMIN_ID)
    assert len(texts) == 2
    assert "1299.3" in texts[0] and "2600" in texts[0]
    assert "insufficient balance" in texts[1]


async def test_profile_installed_tells_the_user_once(server_env: ServerEnv) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)
    payload = {
        "iccid": ICCID,
        "alertType": "ProfileStatusChange",
        "profileStatus": "Installed",
        "timestamp": api_time(utcnow() - timedelta(minutes=10)),
    }
    await server_env.post_callback(payload)
    await server_env.post_callback({**payload, "timestamp": api_time(utcnow())})
    await server_env.settle()

    [text] = texts_to(server_env, USER_ID)
    assert "installed" in text
    async with server_env.env.deps.session_factory() as session:
        esim = await session.scalar(select(Esim))
    assert esim is not None and esim.profile_status == "Installed"
    assert esim.first_installed_at is not None


async def test_deletion_scheduled_offers_top_up_to_keep_and_deleted_stops_tracking(
    server_env: ServerEnv,
) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)
    announced = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    scheduled = {"date": api_time(announced), "event": "esim.deletion_scheduled", "iccid": ICCID}
    await server_env.post_callback(scheduled)
    await server_env.settle()

    [call] = server_env.env.fake_telegram.calls_to("sendMessage")
    deletion_day = format_date(announced + timedelta(days=7), "d MMM", locale="en")
    assert "0222" in call.params["text"] and deletion_day in call.params["text"]
    [[button]] = keyboard(call)
    assert button["text"] == "Top up to keep it"

    deleted = {"date": api_time(announced + timedelta(days=7)), "event": "esim.deleted"}
    await server_env.post_callback({**deleted, "iccid": ICCID})
    await server_env.settle()
    async with server_env.env.deps.session_factory() as session:
        esim = await session.scalar(select(Esim))
    assert esim is not None and esim.deleted_at is not None and not esim.tracking


async def test_notifications_are_in_russian_for_a_russian_user(server_env: ServerEnv) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID, language="ru")
    await server_env.post_callback(first_use())
    await server_env.post_callback(utilisation(remaining=0))
    await server_env.settle()

    started, used_up = texts_to(server_env, USER_ID)
    _, end = plan_window()
    assert "начал действовать" in started
    assert format_date(end, "d MMM", locale="ru").rstrip(".") in started
    assert "закончился" in used_up
    call = server_env.env.fake_telegram.calls_to("sendMessage")[-1]
    [[button]] = keyboard(call)
    assert button["text"] == "Пополнить"


async def test_a_user_who_blocked_the_bot_is_marked_and_not_retried(
    server_env: ServerEnv,
) -> None:
    await seed_esim(server_env.env.deps.session_factory, user_id=USER_ID)
    server_env.env.fake_telegram.fail_next("sendMessage")  # 403: bot was blocked by the user
    await server_env.post_callback(first_use())
    await server_env.settle()
    await server_env.post_callback(utilisation(remaining=0))
    await server_env.settle()

    async with server_env.env.deps.session_factory() as session:
        user = await session.get(User, USER_ID)
    assert user is not None and user.blocked_at is not None
    assert len(server_env.env.fake_telegram.calls_to("sendMessage")) == 1  # the failed one


async def test_events_stored_before_a_restart_are_processed_at_start(
    server_env: ServerEnv,
) -> None:
    deps = server_env.env.deps
    await seed_esim(deps.session_factory, user_id=USER_ID)
    await server_env.worker.stop()  # as if the process died right after answering 200
    body = json.dumps(first_use()).encode()
    result = await deps.esimgo_events.receive(body, hmac_hex(body, server_env.api_key))
    assert result.event_id is not None

    await server_env.worker.start()
    await server_env.settle()

    assert len(texts_to(server_env, USER_ID)) == 1


async def test_a_callback_that_failed_is_retried_while_the_bot_runs(
    server_env: ServerEnv,
) -> None:
    deps = server_env.env.deps
    await seed_esim(deps.session_factory, user_id=USER_ID)
    await server_env.worker.stop()
    worker = EsimGoEventWorker(
        deps.esimgo_events, AiogramMessenger(server_env.env.bot), first_retry_seconds=0.05
    )
    await worker.start()
    try:
        # The database loses a table for a moment (a restore, a botched manual change).
        async with deps.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE esim_bundles RENAME TO esim_bundles_away"))
        body = json.dumps(first_use()).encode()
        result = await deps.esimgo_events.receive(body, hmac_hex(body, server_env.api_key))
        assert result.event_id is not None
        worker.enqueue(result.event_id)
        await worker.wait_idle()
        event = await stored_event(server_env, result.event_id)
        assert not event.processed and "esim_bundles" in (event.error or "")

        async with deps.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE esim_bundles_away RENAME TO esim_bundles"))
        async with asyncio.timeout(10):
            # Retried on the worker's own schedule: poll the stored event, bounded by the timeout.
            while not (await stored_event(server_env, result.event_id)).processed:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        await worker.stop()

    [started] = texts_to(server_env, USER_ID)
    assert "started" in started


async def stored_event(server: ServerEnv, event_id: int) -> CallbackEvent:
    async with server.env.deps.session_factory() as session:
        event = await session.get(CallbackEvent, event_id)
    assert event is not None
    return event


async def test_callback_bodies_older_than_30_days_are_pruned(server_env: ServerEnv) -> None:
    deps = server_env.env.deps
    await server_env.worker.stop()
    now = utcnow()
    ages = {"old-done": 31, "old-stuck": 45, "recent": 29, "today": 0}
    async with deps.session_factory() as session:
        for name, days in ages.items():
            session.add(
                CallbackEvent(
                    body_hash=name,
                    body=json.dumps({"alertType": "Mystery", "n": name}),
                    kind="Mystery",
                    received_at=now - timedelta(days=days, minutes=1),
                    processed=name != "old-stuck",
                )
            )
        await session.commit()

    await server_env.worker.start()
    await server_env.settle()

    async with deps.session_factory() as session:
        kept = set((await session.scalars(select(CallbackEvent.body_hash))).all())
    assert kept == {"recent", "today"}


def hmac_hex(body: bytes, key: str) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def test_signature_check_accepts_both_encodings_only_for_the_right_key() -> None:
    body = b'{"alertType":"LowBalance"}'
    digest = hmac.new(b"k", body, hashlib.sha256).digest()
    assert verify_signature(body, digest.hex(), "k") == "hex"
    assert verify_signature(body, digest.hex().upper(), "k") == "hex"
    assert verify_signature(body, base64.b64encode(digest).decode(), "k") == "base64"
    assert verify_signature(body, "sha256=" + digest.hex(), "k") == "hex"
    assert verify_signature(body, digest.hex(), "other") is None
    assert verify_signature(body, "", "k") is None
    assert verify_signature(body, digest.hex(), "") is None
