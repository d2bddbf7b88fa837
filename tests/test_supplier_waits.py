"""Calls to eSIM Go that a user waits on (validate on Pay, compatibility on a top-up pick, the
refresh on opening an eSIM) are tried once, briefly; on failure the user is asked to try again.
Only background work retries for long."""

from __future__ import annotations

from handlers.callbacks import MyEsimsCallback, TopUpCallback, TopUpPickCallback
from tests.helpers import BotEnv, answers, make_user
from tests.test_purchase import open_confirmation
from tests.test_topup import COMPATIBLE, GB_3GB, bought_esim

# Money moves here: every bot_env test runs on SQLite and again on PostgreSQL (tests/helpers.py).
ON_EVERY_DATABASE = True

UNAVAILABLE = {"Retry-After": "0"}  # the old client retried these at once


def validates(env: BotEnv) -> int:
    return len(
        [
            r
            for r in env.fake_esimgo.calls("POST /orders")
            if (r.json or {}).get("type") == "validate"
        ]
    )


async def test_pay_asks_esim_go_once_and_says_try_again(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(8001)
    await open_confirmation(env, alice)
    env.fake_esimgo.fail_next("POST /orders:validate", status=503, times=4, headers=UNAVAILABLE)
    calls = await env.tap(alice, "Pay")
    (answer,) = answers(calls)
    assert "try again" in str(answer.params.get("text"))
    assert answer.params.get("show_alert") is True
    assert not [c for c in calls if c.method == "sendInvoice"]
    assert validates(env) == 1


async def test_pay_says_try_again_in_russian(bot_env: BotEnv) -> None:
    env = bot_env
    ivan = make_user(8002, language_code="ru", username="ivan")
    await open_confirmation(env, ivan)
    env.fake_esimgo.fail_next("POST /orders:validate", status=503, headers=UNAVAILABLE)
    (answer,) = answers(await env.tap(ivan, "💳"))
    assert "ещё раз" in str(answer.params.get("text"))


async def test_a_top_up_pick_asks_compatibility_once(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(8003)
    esim = await bought_esim(env, alice)
    await env.press(alice, TopUpCallback(esim_id=esim.id))
    env.fake_esimgo.fail_next(COMPATIBLE, status=503, times=4, headers=UNAVAILABLE)
    calls = await env.press(alice, TopUpPickCallback(esim_id=esim.id, bundle=GB_3GB))
    (answer,) = answers(calls)
    assert "try again" in str(answer.params.get("text"))
    assert len(env.fake_esimgo.calls(COMPATIBLE)) == 1


async def test_opening_an_esim_reads_it_once_and_shows_what_we_know(bot_env: BotEnv) -> None:
    env = bot_env
    alice = make_user(8004)
    esim = await bought_esim(env, alice)
    route = f"GET /esims/{esim.iccid}"
    env.fake_esimgo.fail_next(route, status=503, times=4, headers=UNAVAILABLE)
    await env.press(alice, MyEsimsCallback(action="esim", id=esim.id))
    assert "Couldn't refresh" in str(env.screen(alice).text)
    assert len(env.fake_esimgo.calls(route)) == 1
