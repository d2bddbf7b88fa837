"""The measured tuning of the bot process, gathered here; the plain code paths stay plain.

`apply(bot, dispatcher)` turns on every piece that a bot and its dispatcher run with;
`settle_heap()` is the one piece with a moment of its own (start-up, once everything long-lived is
loaded). None of it changes what users see, only what an update costs. Each piece names the bench
that shows what it buys: run it with and without the piece; the figures go stale, the bench
prints current ones.

1. JSON bodies (`JsonBodySession`): the Bot API takes application/json as well as forms, and
   aiogram always builds a form: each field JSON-encoded on its own, then the whole URL-encoded,
   several times the CPU of one JSON document for a plan list's keyboard. Uploads (photos) still
   go as multipart forms. Uses aiogram's private `_dumps_json` parameter of `prepare_value`
   (pyproject.toml pins aiogram below its next minor version). Bench: bench/webhook.py.
2. Answers without the echoed keyboard (`loads_answer`): Telegram sends a sent message back with
   its inline keyboard; nothing here reads it, and building a model per button cost more than the
   rest of the message. So a `Message` returned by a send or an edit has `reply_markup` None.
   Updates (webhook bodies, getUpdates) keep theirs. Bench: bench/webhook.py.
3. Kept response models (`KeepResponseModels`): pydantic caches parametrised generic models only
   weakly, so each garbage collection threw `Response[T]` away and the next request rebuilt it,
   a large CPU cost each time under load. Bench: bench/webhook.py (with `--profile`).
4. Synchronous filters run inline (`_run_sync_filters_inline`): aiogram runs a synchronous
   filter (a handler's or a router's own) through asyncio.to_thread. Ours (`F.text`, an FSM
   state) are in-memory checks of a microsecond; the thread hop costs far more on every
   update, and under load each hop waits its turn in the loop besides. Bench: bench/webhook.py.
5. Light router crossings (`_LightPropagation`): aiogram takes an update across each router in
   four calls (wrapping an empty outer-middleware chain on the way), each copying the whole
   workflow data, and crosses every router even when none of its handlers takes that kind of
   update. With sixteen feature routers a typed search crossed eight. Here a router without
   outer middleware is crossed in one call, and a router none of whose handlers takes the
   update's kind is not entered at all; what runs (root filters, handlers, their order) is
   aiogram's. Bench: bench/webhook.py (CPU per update).
6. A settled heap (`settle_heap`): everything alive after start-up (modules, the catalogue) is
   frozen out of the collector's sight, so full collections scan only what updates create;
   and since each update allocates thousands of short-lived objects, the youngest generation
   is collected less often. Bench: bench/webhook.py (CPU per update), bench/purchase.py.

The database side of the tuning is db/sqlite.py (the SQLite driver) and the statements the
repositories build once.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.dispatcher.event.bases import REJECTED, UNHANDLED
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup, InputFile, TelegramObject
from aiohttp import ClientError, ClientTimeout

JSON_HEADERS = {"Content-Type": "application/json"}
# The youngest generation's threshold: aiogram and SQLAlchemy allocate in bursts per update.
GC_YOUNG_THRESHOLD = 20_000


def apply(bot: Bot, dispatcher: Dispatcher) -> None:
    """Pieces 1–5 for this bot and this dispatcher. Call once, on a Bot that has sent nothing
    and carries no request middleware yet, after the dispatcher's routers are included."""
    if not isinstance(bot.session, JsonBodySession):
        bot.session = JsonBodySession(api=bot.session.api, timeout=bot.session.timeout)
    bot.session.middleware(KeepResponseModels())
    _run_sync_filters_inline(dispatcher)
    _propagate_lightly(dispatcher)


def settle_heap() -> None:
    """Piece 5: collect once, freeze what is alive, collect the young less often. Call once at
    start-up, after the catalogue is loaded and before updates are taken."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def loads_answer(content: str) -> Any:
    """json.loads for Bot API answers, minus the inline keyboard a sent message echoes back."""
    data = json.loads(content)
    if isinstance(data, dict):
        result = data.get("result")
        if isinstance(result, dict):
            result.pop("reply_markup", None)
    return data


class JsonBodySession(AiohttpSession):
    """aiogram's aiohttp session, sending Bot API calls without files as one JSON body."""

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
        serialised by pydantic in one go: it holds no defaults or files to resolve."""
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


class KeepResponseModels(BaseRequestMiddleware):
    """Holds a strong reference to each `Response[T]` model aiogram parses answers with."""

    def __init__(self) -> None:
        self._models: dict[Any, type[Response[Any]]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._models:
            self._models[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)


def _run_sync_filters_inline(router: Router) -> None:
    for observer in router.observers.values():
        # A router's own filters (`router.message.filter(...)`) sit on its observer's private
        # root handler: every update the router sees crosses them.
        for handler in (observer._handler, *observer.handlers):
            for event_filter in handler.filters or ():
                if not event_filter.awaitable:
                    event_filter.callback = _awaitable(event_filter.callback)
                    event_filter.awaitable = True
    for child in router.sub_routers:
        _run_sync_filters_inline(child)


def _awaitable(check: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return run


def _propagate_lightly(router: Router) -> None:
    for child in router.sub_routers:
        # An instance attribute: the parent calls `child.propagate_event(...)`.
        child.propagate_event = _LightPropagation(child)  # type: ignore[method-assign]
        _propagate_lightly(child)


def _handled_kinds(router: Router) -> frozenset[str]:
    """The update kinds some handler (or outer middleware) of the router or of a router under
    it takes: for any other kind, aiogram's crossing would run nothing."""
    return frozenset(
        kind
        for each in router.chain_tail
        for kind, observer in each.observers.items()
        if observer.handlers or observer.outer_middleware
    )


class _LightPropagation:
    """`Router.propagate_event` and `_propagate_event` (aiogram 3.31) in one call."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._aiogram = router.propagate_event
        self._kinds = _handled_kinds(router)

    async def __call__(self, update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
        router = self._router
        observer = router.observers.get(update_type)
        if observer is not None and observer.outer_middleware:
            return await self._aiogram(update_type=update_type, event=event, **kwargs)
        if update_type not in self._kinds:
            return UNHANDLED
        kwargs["event_router"] = router
        if observer is not None:
            passed, data = await observer.check_root_filters(event, **kwargs)
            if not passed:
                return UNHANDLED
            kwargs.update(data)
            response = await observer.trigger(event, **kwargs)
            if response is REJECTED:
                return UNHANDLED
            if response is not UNHANDLED:
                return response
        for child in router.sub_routers:
            response = await child.propagate_event(update_type=update_type, event=event, **kwargs)
            if response is not UNHANDLED:
                return response
        return UNHANDLED
