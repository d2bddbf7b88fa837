"""aiogram's aiohttp session, sending Bot API calls without files as one JSON body."""

from __future__ import annotations

from typing import Any, cast

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup, InputFile
from aiohttp import ClientError, ClientTimeout

JSON_HEADERS = {"Content-Type": "application/json"}


class JsonBodySession(AiohttpSession):
    """The Bot API takes application/json as well as forms. aiogram always builds a form: each
    field JSON-encoded on its own, then the whole URL-encoded, several times the CPU of one
    JSON document for a plan list's keyboard. Uploads (photos) still go as multipart forms."""

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - aiogram's signature
    ) -> TelegramType:
        body = self._json_body(bot, method)
        if body is None:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(
                url,
                data=body,
                headers=JSON_HEADERS,
                timeout=ClientTimeout(total=self.timeout if timeout is None else timeout),
            ) as resp:
                raw_result = await resp.text()
        except TimeoutError as exc:
            raise TelegramNetworkError(method=method, message="Request timeout error") from exc
        except ClientError as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise TelegramNetworkError(method=method, message=message) from exc
        response = self.check_response(
            bot=bot, method=method, status_code=resp.status, content=raw_result
        )
        return cast(TelegramType, response.result)

    def _json_body(self, bot: Bot, method: TelegramMethod[Any]) -> str | None:
        """The call as one JSON object; None when it uploads a file. An inline keyboard is
        serialised by pydantic in one go: it holds no defaults or files to resolve, and
        walking it in Python cost more than the rest of the request."""
        files: dict[str, InputFile] = {}
        fields: list[str] = []
        for name, value in method:
            if value is None:
                continue
            if isinstance(value, InlineKeyboardMarkup):
                encoded = value.model_dump_json(exclude_none=True)
            else:
                prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
                if files:
                    return None
                if prepared is None:
                    continue
                encoded = self.json_dumps(prepared)
            fields.append(f"{self.json_dumps(name)}:{encoded}")
        return "{" + ",".join(fields) + "}"
