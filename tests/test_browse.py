from tests.helpers import BotEnv, make_user, answers


async def test_smoke(bot_env: BotEnv) -> None:
    alice = make_user()
    await bot_env.send(alice, "/start")
    print(bot_env.screen(alice).text, bot_env.screen(alice).button_texts())
    calls = await bot_env.tap(alice, "Buy")
    print(bot_env.screen(alice).text, bot_env.screen(alice).button_texts())
    await bot_env.tap(alice, "Thailand")
    print(bot_env.screen(alice).text, bot_env.screen(alice).button_texts())
    await bot_env.tap(alice, "1 GB")
    print(bot_env.screen(alice).html, bot_env.screen(alice).button_texts())
    await bot_env.send(alice, "Guinea")
    print(bot_env.screen(alice).text, bot_env.screen(alice).button_texts())
    assert not bot_env.error_logs
