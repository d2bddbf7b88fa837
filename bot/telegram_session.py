"""aiogram's aiohttp session, sending Bot API calls without files as one JSON body."""

from __future__ import annotations

import json
from typing import Any, cast

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup, InputFile
from aiohttp import ClientError, ClientTimeout

JSON_HEADERS = {"Content-Type": "application/json"}


def loads_answer(content: str) -> Any:
    """json.loads for Bot API answers, minus the inline keyboard a sent message echoes back:
    nothing reads it, and building a model per button cost more than the rest of the message.
    Updates (webhook bodies, getUpdates lists) carry no `result` object and pass unchanged."""
    data = json.loads(content)
    if isinstance(data, dict):
        result = data.get("result")
        if isinstance(result, dict):
            result.pop("reply_markup", None)
    return data


class JsonBodySession(AiohttpSession):
    """The Bot API takes application/json as well as forms. aiogram always builds a form: each
    field JSON-encoded on its own, then the whole URL-encoded, several times the CPU of one
    JSON document for a plan list's keyboard. Uploads (photos) still go as multipart forms."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("json_loads", loads_answer)
        super().__init__(**kwargs)

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
        fields: dict[str, Any] = {}
        keyboard = ""  # `"reply_markup":{…}`, appended as pydantic wrote it
        for name, value in method:
            if value is None:
                continue
            if isinstance(value, InlineKeyboardMarkup):
                keyboard = f"{self.json_dumps(name)}:{value.model_dump_json(exclude_none=True)}"
                continue
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if files:
                return None
            if prepared is not None:
                fields[name] = prepared
        body = self.json_dumps(fields)
        if not keyboard:
            return body
        separator = "," if fields else ""
        return f"{body[:-1]}{separator}{keyboard}}}"
