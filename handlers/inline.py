"""Inline mode: `@bot thailand` in any chat lists plans as cards with a "Buy in the bot" link.

The answers come from services.inline (the catalogue in memory, kept a minute per query and
language); the same for every user, so Telegram may cache them for everyone too.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.enums import ParseMode
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResultArticle,
    InlineQueryResultUnion,
    InputTextMessageContent,
)

from services.deeplinks import start_link
from services.inline import InlineCatalogue, InlineResult


def article(result: InlineResult, bot_username: str) -> InlineQueryResultArticle:
    """One card: what the list shows, the message it posts, one URL button into the bot."""
    link = start_link(bot_username, result.start_parameter)
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=result.button, url=link)]]
    )
    return InlineQueryResultArticle(
        id=result.id,
        title=result.title,
        description=result.description,
        input_message_content=InputTextMessageContent(
            message_text=result.text, parse_mode=ParseMode.HTML
        ),
        reply_markup=markup,
    )


async def on_inline_query(
    query: InlineQuery, bot: Bot, inline_catalogue: InlineCatalogue, language: str
) -> None:
    answer = inline_catalogue.answer(query.query, language)
    me = await bot.me()  # asked of Telegram once, then kept by the Bot
    results: list[InlineQueryResultUnion] = [
        article(result, me.username or "") for result in answer.results
    ]
    # Personal: Telegram caches shared answers by query only, whatever the asker's language.
    await query.answer(results, cache_time=answer.cache_seconds, is_personal=True)


def create_router() -> Router:
    """A fresh router each call: a router can belong to one dispatcher only."""
    router = Router(name="inline")
    router.inline_query.register(on_inline_query)
    return router
