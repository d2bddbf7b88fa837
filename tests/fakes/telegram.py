"""A fake Telegram Bot API server on loopback: aiogram talks to it through TELEGRAM_API_BASE.

It answers like the real Bot API (`{"ok": true, "result": ...}` or an error object), accepts JSON,
url-encoded and multipart bodies, keeps the state a bot can observe (messages per chat, edits,
webhook, commands, the update queue), records every call and can be told to fail the next ones.
Like Telegram it rejects malformed HTML, over-long texts and invalid callback data, so the tests
catch what production would.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from multidict import MultiDictProxy

DEFAULT_TOKEN = "123456:TEST"

# How form fields are typed (Telegram receives every form value as a string).
_INT_FIELDS = frozenset(
    {
        "message_id",
        "message_thread_id",
        "user_id",
        "cache_time",
        "offset",
        "limit",
        "timeout",
        "max_connections",
        "reply_to_message_id",
        "max_tip_amount",
        "subscription_period",
        "direct_messages_topic_id",
        "from_chat_id",
    }
)
_INT_OR_STRING_FIELDS = frozenset({"chat_id"})
_BOOL_FIELDS = frozenset(
    {
        "show_alert",
        "ok",
        "disable_notification",
        "protect_content",
        "allow_paid_broadcast",
        "drop_pending_updates",
        "has_spoiler",
        "show_caption_above_media",
        "is_flexible",
        "need_name",
        "need_phone_number",
        "need_email",
        "need_shipping_address",
        "send_phone_number_to_provider",
        "send_email_to_provider",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "is_personal",
    }
)
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "prices",
        "link_preview_options",
        "reply_parameters",
        "commands",
        "scope",
        "allowed_updates",
        "suggested_tip_amounts",
        "media",
        "results",
        "button",
    }
)

_ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_SPECIAL = re.compile(r"[<&]")
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)"
    r"((?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
)
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")

# An inline button is exactly one of these (InlineKeyboardButton: "exactly one of the fields
# other than text, icon_custom_emoji_id and style").
_BUTTON_KINDS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)

# Marks a request the fake's redirect loop sent back to itself.
LOOP_PARAMETER = "fake-redirect-loop"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_ANSWER = 200
MAX_DESCRIPTION = 512
MAX_SHORT_DESCRIPTION = 120
MAX_INLINE_RESULTS = 50


class ApiError(Exception):
    """An error answer: `{"ok": false, "error_code": ..., "description": ...}`."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class ApiCall:
    """One request the bot made: method, typed parameters and uploaded files' bytes."""

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    content_type: str = ""
    error_code: int | None = None
    description: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass
class StoredMessage:
    """A message as a chat currently shows it (after edits)."""

    chat_id: int
    message_id: int
    from_bot: bool
    date: int
    text: str | None = None  # plain text, as Telegram shows it
    html: str | None = None  # what the bot sent, tags included
    caption: str | None = None
    caption_html: str | None = None
    photo: bytes | None = None
    reply_markup: dict[str, Any] | None = None
    invoice: dict[str, Any] | None = None
    reply_to: int | None = None  # the message this one answers (Telegram's reply)
    edits: int = 0

    def buttons(self) -> list[dict[str, Any]]:
        """Every inline button, row after row."""
        if not self.reply_markup:
            return []
        rows = self.reply_markup.get("inline_keyboard") or []
        return [button for row in rows for button in row]

    def button_texts(self) -> list[str]:
        return [str(button.get("text", "")) for button in self.buttons()]

    def button(self, text_contains: str) -> dict[str, Any]:
        """The first button whose text contains the given words (case-insensitive)."""
        wanted = text_contains.casefold()
        for button in self.buttons():
            if wanted in str(button.get("text", "")).casefold():
                return button
        raise LookupError(f"no button with {text_contains!r} in {self.button_texts()!r}")


@dataclass
class _Failure:
    error_code: int
    description: str
    remaining: int
    retry_after: int | None
    after: int = 0


def parse_html(text: str) -> str:
    """Plain text of an HTML-formatted message; raises like Telegram on malformed markup."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "<":
            match = _TAG.match(text, pos)
            if match is None:
                name = re.match(r"</?([^\s>]*)", text[pos:])
                tag = name.group(1) if name else ""
                raise _bad_request(
                    f'can\'t parse entities: Unsupported start tag "{tag}" at byte offset '
                    f"{len(text[:pos].encode())}"
                )
            closing, tag = match.group(1) == "/", match.group(2).lower()
            if tag not in _ALLOWED_TAGS:
                raise _bad_request(
                    f'can\'t parse entities: Unsupported start tag "{tag}" at byte offset '
                    f"{len(text[:pos].encode())}"
                )
            if closing:
                if not stack or stack[-1] != tag:
                    raise _bad_request(
                        f"can't parse entities: Unmatched end tag at byte offset "
                        f'{len(text[:pos].encode())}, expected "</{stack[-1] if stack else ""}>"'
                        f', found "</{tag}>"'
                    )
                stack.pop()
            else:
                stack.append(tag)
            pos = match.end()
        elif char == "&":
            match = _ENTITY.match(text, pos)
            if match is None:
                # Telegram keeps an unknown "&name;" as is but rejects a bare ampersand run
                # like "&foo" only when it looks like an entity; be strict: unescaped "&" is a bug.
                raise _bad_request(
                    "can't parse entities: Character entity expected at byte offset "
                    f"{len(text[:pos].encode())}"
                )
            out.append(html.unescape(match.group(0)))
            pos = match.end()
        else:
            # A run of plain text up to the next tag or entity, in one step.
            special = _SPECIAL.search(text, pos)
            end = special.start() if special else len(text)
            out.append(text[pos:end])
            pos = end
    if stack:
        raise _bad_request(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return "".join(out)


class FakeTelegram:
    """The Bot API on 127.0.0.1 with a random port. `await start()`, then use `base_url`."""

    def __init__(self, token: str | None = DEFAULT_TOKEN) -> None:
        # None accepts any well-formed token.
        self.token = token
        self.calls: list[ApiCall] = []
        self.messages: dict[tuple[int, int], StoredMessage] = {}
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # The bot's profile texts per language_code ("" is the default for every other one).
        self.descriptions: dict[str, str] = {}
        self.short_descriptions: dict[str, str] = {}
        # What getMe says: inline mode is switched on in BotFather (/setinline).
        self.supports_inline_queries = False
        self.answered_inline_queries: dict[str, dict[str, Any]] = {}
        self.webhook: dict[str, Any] | None = None
        self.answered_callbacks: dict[str, dict[str, Any]] = {}
        self.answered_pre_checkouts: dict[str, dict[str, Any]] = {}
        self.refunded_charges: set[str] = set()
        # Telegram's Stars ledger, oldest first: what getStarTransactions lists (newest first).
        self.star_transactions: list[dict[str, Any]] = []
        # The Bot API's text says "chronological order"; the server it wraps lists the newest
        # first. Tests set this to False to list the ledger oldest first.
        self.star_newest_first = True
        # Chats whose user blocked the bot: every send to them is refused with 403.
        self.blocked_chats: set[int] = set()
        # Stars charges and who paid each: Telegram refunds a charge only to its payer.
        self.star_payments: dict[str, int] = {}
        self.base_url = ""
        self._last_message_id: dict[int, int] = {}
        self._failures: dict[str, list[_Failure]] = {}
        # Seconds a method takes to answer (lower-cased name), as a slow Telegram does.
        self._delays: dict[str, float] = {}
        self._redirects: dict[str, int] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._new_update: asyncio.Event | None = None
        self._file_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._new_update = asyncio.Event()
        return self.base_url

    async def close(self) -> None:
        if self._new_update is not None:
            self._new_update.set()  # release long polls so the server shuts down at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- test controls --------------------------------------------------------------------------

    @property
    def bot_id(self) -> int:
        return int((self.token or DEFAULT_TOKEN).split(":")[0])

    def fail_next(
        self,
        method: str,
        error_code: int = 403,
        description: str = "Forbidden: bot was blocked by the user",
        times: int = 1,
        retry_after: int | None = None,
        after: int = 0,
    ) -> None:
        """The next `times` calls of `method` fail (once `after` more have succeeded); with
        retry_after it is a 429 flood wait."""
        if retry_after is not None and error_code == 403:
            error_code, description = 429, f"Too Many Requests: retry after {retry_after}"
        self._failures.setdefault(method.lower(), []).append(
            _Failure(error_code, description, times, retry_after, after)
        )

    def delay(self, method: str, seconds: float) -> None:
        """Every call of `method` answers `seconds` later (0: at once again); it is recorded
        in `calls` when it arrives, and does its work only when the delay is over."""
        self._delays[method.lower()] = seconds

    def redirect_loop(self, method: str, times: int = 1) -> None:
        """The next `times` calls of `method` meet a proxy that redirects them in a circle."""
        self._redirects[method.lower()] = self._redirects.get(method.lower(), 0) + times

    def record_star_payment(self, user_id: int, charge_id: str) -> None:
        """Telegram took `charge_id` from `user_id`: call it with each successful_payment."""
        self.star_payments[charge_id] = user_id

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method.lower() == method.lower()]

    def clear_calls(self) -> None:
        self.calls.clear()

    def allocate_message_id(self, chat_id: int) -> int:
        """Message ids grow per chat, shared by the user's and the bot's messages."""
        next_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = next_id
        return next_id

    def record_user_message(self, chat_id: int, text: str | None = None) -> int:
        """Put a message from the user into the chat (the bot cannot edit it)."""
        message_id = self.allocate_message_id(chat_id)
        self.messages[(chat_id, message_id)] = StoredMessage(
            chat_id=chat_id, message_id=message_id, from_bot=False, date=_now(), text=text
        )
        return message_id

    def chat(self, chat_id: int) -> list[StoredMessage]:
        """The chat's messages, oldest first."""
        found = [m for (chat, _), m in self.messages.items() if chat == chat_id]
        return sorted(found, key=lambda m: m.message_id)

    def last_bot_message(self, chat_id: int) -> StoredMessage:
        # Every message id comes from allocate_message_id: walking down from the chat's newest
        # keeps this cheap with thousands of chats (the replica cluster test has a hundred).
        for message_id in range(self._last_message_id.get(chat_id, 0), 0, -1):
            message = self.messages.get((chat_id, message_id))
            if message is not None and message.from_bot:
                return message
        raise LookupError(f"the bot has sent nothing to chat {chat_id}")

    def push_update(self, update: Mapping[str, Any]) -> int:
        """Queue an update for getUpdates; returns its update_id."""
        data = dict(update)
        data.setdefault("update_id", next(self._update_ids))
        self._updates.append(data)
        if self._new_update is not None:
            self._new_update.set()
        return int(data["update_id"])

    # -- Telegram Stars ledger -------------------------------------------------------------------

    def add_star_payment(
        self,
        user_id: int,
        payload: str,
        amount: int,
        *,
        charge_id: str | None = None,
        date: int | None = None,
    ) -> str:
        """A user paid an invoice in Stars: Telegram's ledger gains the incoming transaction
        (its id is the payment's telegram_payment_charge_id). Returns the charge id; a charge
        already in the ledger is kept once, as Telegram charges once."""
        charge_id = charge_id or f"stxn-{len(self.star_transactions) + 1:06d}"
        self.record_star_payment(user_id, charge_id)
        if self._star_payment(charge_id) is None:
            partner = self._star_partner(user_id, payload)
            self.star_transactions.append(
                {
                    "id": charge_id,
                    "amount": amount,
                    "date": _now() if date is None else date,
                    "source": partner,
                }
            )
        return charge_id

    def _star_payment(self, charge_id: str) -> dict[str, Any] | None:
        for transaction in self.star_transactions:
            if transaction["id"] == charge_id and "source" in transaction:
                return transaction
        return None

    @staticmethod
    def _star_partner(user_id: int, payload: str) -> dict[str, Any]:
        """TransactionPartnerUser of an invoice payment."""
        return {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": {"id": user_id, "is_bot": False, "first_name": "Traveller"},
            "invoice_payload": payload,
        }

    def _add_star_refund(self, charge_id: str) -> None:
        """A refund is an outgoing transaction with the id of the payment it returns."""
        payment = self._star_payment(charge_id)
        if payment is None:
            return
        self.star_transactions.append(
            {
                "id": charge_id,
                "amount": payment["amount"],
                "date": _now(),
                "receiver": dict(payment["source"]),
            }
        )

    async def _m_getstartransactions(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        if not 1 <= limit <= 100:
            raise _bad_request("invalid limit")
        listed = self.star_transactions[::-1] if self.star_newest_first else self.star_transactions
        return {"transactions": listed[max(offset, 0) : max(offset, 0) + limit]}

    # -- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        if LOOP_PARAMETER in request.query:
            raise web.HTTPFound(request.path_qs)
        if self._redirects.get(method.lower(), 0) > 0:
            self._redirects[method.lower()] -= 1
            self.calls.append(ApiCall(method, {}, error_code=302, description="redirect loop"))
            raise web.HTTPFound(f"{request.path}?{LOOP_PARAMETER}=1")
        params, files = await self._read_params(request)
        call = ApiCall(
            method=method, params=params, files=files, content_type=request.content_type
        )
        self.calls.append(call)
        try:
            if not re.fullmatch(r"\d+:[\w-]+", token) or (
                self.token is not None and token != self.token
            ):
                raise ApiError(401, "Unauthorized")
            if self._delays.get(method.lower()):
                await asyncio.sleep(self._delays[method.lower()])
            self._maybe_fail(method)
            self._refuse_blocked(method, params)
            handler = getattr(self, f"_m_{method.lower()}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(params, files)
        except ApiError as error:
            call.error_code, call.description = error.error_code, error.description
            return web.json_response(error.body(), status=error.error_code)
        return web.json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        params: dict[str, Any] = {key: _coerce(key, value) for key, value in request.query.items()}
        files: dict[str, bytes] = {}
        if not request.can_read_body:
            return params, files
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
            return params, files
        form: MultiDictProxy[Any] = await request.post()
        uploads: dict[str, bytes] = {}
        for key, value in form.items():
            if isinstance(value, web.FileField):
                uploads[key] = value.file.read()
            else:
                params[key] = _coerce(key, str(value))
        # aiogram uploads as `photo=attach://<name>` plus a part named <name>; so does the API.
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                name = value.removeprefix("attach://")
                if name in uploads:
                    files[key] = uploads.pop(name)
        files.update(uploads)
        return params, files

    def _maybe_fail(self, method: str) -> None:
        queue = self._failures.get(method.lower())
        if not queue:
            return
        failure = queue[0]
        if failure.after > 0:
            failure.after -= 1
            return
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        raise ApiError(failure.error_code, failure.description, failure.retry_after)

    def _refuse_blocked(self, method: str, params: Mapping[str, Any]) -> None:
        if method.lower().startswith("send") and params.get("chat_id") in self.blocked_chats:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    # -- objects --------------------------------------------------------------------------------

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "eSIM Test Bot",
            "username": "esim_test_bot",
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": self.supports_inline_queries,
        }

    def _chat_object(self, chat_id: int) -> dict[str, Any]:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Traveller"}
        return {"id": chat_id, "type": "supergroup", "title": "Group"}

    def _message_object(self, stored: StoredMessage) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": stored.message_id,
            "date": stored.date,
            "chat": self._chat_object(stored.chat_id),
        }
        if stored.from_bot:
            message["from"] = self._bot_user()
        if stored.edits:
            message["edit_date"] = _now()
        if stored.text is not None:
            message["text"] = stored.text
        if stored.photo is not None:
            message["photo"] = self._photo_sizes()
        if stored.caption is not None:
            message["caption"] = stored.caption
        if stored.invoice is not None:
            message["invoice"] = stored.invoice
        if stored.reply_markup and "inline_keyboard" in stored.reply_markup:
            message["reply_markup"] = stored.reply_markup
        return message

    def _photo_sizes(self) -> list[dict[str, Any]]:
        file_no = next(self._file_ids)
        sizes = []
        for side, letter in ((90, "s"), (320, "m"), (800, "x")):
            sizes.append(
                {
                    "file_id": f"AgACAgIAAxkBAAI{file_no:06d}{letter}",
                    "file_unique_id": f"AQAD{file_no:06d}{letter}",
                    "width": side,
                    "height": side,
                    "file_size": side * 40,
                }
            )
        return sizes

    # -- checks shared by several methods -------------------------------------------------------

    @staticmethod
    def _chat_id(params: Mapping[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if isinstance(chat_id, str):
            if chat_id.startswith("@"):
                raise _bad_request("chat not found")
            try:
                return int(chat_id)
            except ValueError:
                raise _bad_request("chat not found") from None
        return int(chat_id)

    @staticmethod
    def _formatted(params: Mapping[str, Any], key: str, limit: int) -> tuple[str, str]:
        raw = params.get(key)
        raw = "" if raw is None else str(raw)
        mode = str(params.get("parse_mode") or "").lower()
        plain = parse_html(raw) if mode == "html" else raw
        if not plain.strip():
            what = "message text" if key == "text" else "message caption"
            raise _bad_request(f"{what} is empty")
        if len(plain.encode("utf-16-le")) // 2 > limit:
            raise _bad_request(
                "message is too long" if key == "text" else "message caption is too long"
            )
        return raw, plain

    @staticmethod
    def _markup(params: Mapping[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard") or []:
            for button in row:
                if not str(button.get("text") or "").strip():
                    raise _bad_request("text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise _bad_request("BUTTON_DATA_INVALID")
                url = button.get("url")
                if url is not None and not re.match(r"(https?|tg)://", str(url)):
                    raise _bad_request("BUTTON_URL_INVALID")
                copy = button.get("copy_text")
                if copy is not None and not (
                    isinstance(copy, dict) and 1 <= len(str(copy.get("text") or "")) <= 256
                ):
                    raise _bad_request("BUTTON_COPY_TEXT_INVALID")
                if len(_BUTTON_KINDS.intersection(button)) != 1:
                    raise _bad_request("BUTTON_TYPE_INVALID")
        return markup

    def _editable(self, params: Mapping[str, Any]) -> StoredMessage | None:
        """The message an edit targets; None for inline messages (they only answer True)."""
        if params.get("inline_message_id"):
            return None
        chat_id = self._chat_id(params)
        stored = self.messages.get((chat_id, int(params.get("message_id") or 0)))
        if stored is None:
            raise _bad_request("message to edit not found")
        if not stored.from_bot:
            raise _bad_request("message can't be edited")
        return stored

    # -- methods --------------------------------------------------------------------------------

    async def _m_getme(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._bot_user()

    async def _m_sendmessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        chat_id = self._chat_id(params)
        raw, plain = self._formatted(params, "text", MAX_TEXT)
        markup = self._markup(params)
        stored = StoredMessage(
            chat_id=chat_id,
            message_id=self.allocate_message_id(chat_id),
            from_bot=True,
            date=_now(),
            text=plain,
            html=raw,
            reply_markup=markup,
            reply_to=_reply_to(params),
        )
        self.messages[(chat_id, stored.message_id)] = stored
        return self._message_object(stored)

    async def _m_sendphoto(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        chat_id = self._chat_id(params)
        photo = files.get("photo")
        if photo is None:
            reference = params.get("photo")
            if not reference:
                raise _bad_request("there is no photo in the request")
            photo = str(reference).encode()
        caption_raw = caption = None
        if params.get("caption"):
            caption_raw, caption = self._formatted(params, "caption", MAX_CAPTION)
        stored = StoredMessage(
            chat_id=chat_id,
            message_id=self.allocate_message_id(chat_id),
            from_bot=True,
            date=_now(),
            photo=photo,
            caption=caption,
            caption_html=caption_raw,
            reply_markup=self._markup(params),
            reply_to=_reply_to(params),
        )
        self.messages[(chat_id, stored.message_id)] = stored
        return self._message_object(stored)

    async def _m_editmessagetext(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        stored = self._editable(params)
        raw, plain = self._formatted(params, "text", MAX_TEXT)
        markup = self._markup(params)
        if stored is None:
            return True
        if stored.text is None:
            raise _bad_request("there is no text in the message to edit")
        if stored.html == raw and stored.reply_markup == markup:
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        stored.text, stored.html, stored.reply_markup = plain, raw, markup
        stored.edits += 1
        return self._message_object(stored)

    async def _m_editmessagecaption(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        stored = self._editable(params)
        caption_raw, caption = self._formatted(params, "caption", MAX_CAPTION)
        markup = self._markup(params)
        if stored is None:
            return True
        if stored.photo is None:
            raise _bad_request("there is no caption in the message to edit")
        if stored.caption_html == caption_raw and stored.reply_markup == markup:
            raise _bad_request("message is not modified")
        stored.caption, stored.caption_html, stored.reply_markup = caption, caption_raw, markup
        stored.edits += 1
        return self._message_object(stored)

    async def _m_editmessagereplymarkup(
        self, params: dict[str, Any], files: dict[str, bytes]
    ) -> Any:
        stored = self._editable(params)
        markup = self._markup(params)
        if stored is None:
            return True
        if stored.reply_markup == markup:
            raise _bad_request("message is not modified")
        stored.reply_markup = markup
        stored.edits += 1
        return self._message_object(stored)

    async def _m_deletemessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        key = (self._chat_id(params), int(params.get("message_id") or 0))
        if key not in self.messages:
            raise _bad_request("message to delete not found")
        del self.messages[key]
        return True

    async def _m_answercallbackquery(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        query_id = str(params.get("callback_query_id") or "")
        if not query_id or query_id in self.answered_callbacks:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text") or "")) > MAX_CALLBACK_ANSWER:
            raise _bad_request("MESSAGE_TOO_LONG")
        self.answered_callbacks[query_id] = params
        return True

    async def _m_sendchataction(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self._chat_id(params)
        if not params.get("action"):
            raise _bad_request("wrong parameter action in request")
        return True

    async def _m_sendinvoice(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        chat_id = self._chat_id(params)
        currency = str(params.get("currency") or "")
        prices = params.get("prices")
        payload = str(params.get("payload") or "")
        if not params.get("title") or not params.get("description"):
            raise _bad_request("invoice title and description must be non-empty")
        if not 1 <= len(payload.encode()) <= 128:
            raise _bad_request("INVOICE_PAYLOAD_INVALID")
        if not isinstance(prices, list) or not prices:
            raise _bad_request("prices must be non-empty")
        if currency == "XTR" and len(prices) != 1:
            raise _bad_request("STARS_INVOICE_INVALID")
        if currency != "XTR" and not params.get("provider_token"):
            raise _bad_request("PAYMENT_PROVIDER_INVALID")
        total = sum(int(price.get("amount", 0)) for price in prices)
        if total <= 0:
            raise _bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
        stored = StoredMessage(
            chat_id=chat_id,
            message_id=self.allocate_message_id(chat_id),
            from_bot=True,
            date=_now(),
            invoice={
                "title": str(params["title"]),
                "description": str(params["description"]),
                "start_parameter": str(params.get("start_parameter") or ""),
                "currency": currency,
                "total_amount": total,
            },
            reply_markup=self._markup(params),
        )
        self.messages[(chat_id, stored.message_id)] = stored
        return self._message_object(stored)

    async def _m_answerprecheckoutquery(
        self, params: dict[str, Any], files: dict[str, bytes]
    ) -> Any:
        query_id = str(params.get("pre_checkout_query_id") or "")
        if not query_id or query_id in self.answered_pre_checkouts:
            raise _bad_request("QUERY_ID_INVALID")
        if params.get("ok") is not True and not params.get("error_message"):
            raise _bad_request("ERROR_MESSAGE_EMPTY")
        self.answered_pre_checkouts[query_id] = params
        return True

    async def _m_refundstarpayment(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        charge_id = str(params.get("telegram_payment_charge_id") or "")
        if not params.get("user_id") or not charge_id:
            raise _bad_request("CHARGE_ID_EMPTY")
        if self.star_payments.get(charge_id) != params["user_id"]:
            raise _bad_request("CHARGE_NOT_FOUND")  # no such charge, or another user's
        if charge_id in self.refunded_charges:
            raise _bad_request("CHARGE_ALREADY_REFUNDED")
        self.refunded_charges.add(charge_id)
        self._add_star_refund(charge_id)
        return True

    async def _m_setwebhook(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        url = str(params.get("url") or "")
        if not url:
            self.webhook = None
            return True
        if not url.startswith("https://"):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = dict(params)
        return True

    async def _m_deletewebhook(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _m_getwebhookinfo(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        info: dict[str, Any] = {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook and self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    async def _m_setmycommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("commands must be an array")
        for command in commands:
            name = str(command.get("command") or "")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[_commands_key(params)] = list(commands)
        return True

    async def _m_getmycommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self.commands.get(_commands_key(params), [])

    async def _m_deletemycommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self.commands.pop(_commands_key(params), None)
        return True

    async def _m_setmydescription(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._set_profile_text(params, "description", MAX_DESCRIPTION, self.descriptions)

    async def _m_getmydescription(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        language = str(params.get("language_code") or "")
        return {"description": self.descriptions.get(language, "")}

    async def _m_setmyshortdescription(
        self, params: dict[str, Any], files: dict[str, bytes]
    ) -> Any:
        return self._set_profile_text(
            params, "short_description", MAX_SHORT_DESCRIPTION, self.short_descriptions
        )

    async def _m_getmyshortdescription(
        self, params: dict[str, Any], files: dict[str, bytes]
    ) -> Any:
        language = str(params.get("language_code") or "")
        return {"short_description": self.short_descriptions.get(language, "")}

    @staticmethod
    def _set_profile_text(
        params: Mapping[str, Any], key: str, limit: int, store: dict[str, str]
    ) -> bool:
        text = str(params.get(key) or "")
        language = str(params.get("language_code") or "")
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise _bad_request("LANGUAGE_CODE_INVALID")
        if len(text) > limit:
            raise _bad_request(f"{key} is too long")
        if text:
            store[language] = text
        else:
            store.pop(language, None)  # an empty text removes that language's own one
        return True

    async def _m_answerinlinequery(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        query_id = str(params.get("inline_query_id") or "")
        results = params.get("results")
        if not query_id or query_id in self.answered_inline_queries:
            raise _bad_request("QUERY_ID_INVALID")
        if not isinstance(results, list) or len(results) > MAX_INLINE_RESULTS:
            raise _bad_request("RESULTS_TOO_MUCH")
        ids = [str(result.get("id") or "") for result in results]
        if len(set(ids)) != len(ids) or not all(1 <= len(i.encode()) <= 64 for i in ids):
            raise _bad_request("RESULT_ID_DUPLICATE")
        for result in results:
            self._inline_result(result)
        self.answered_inline_queries[query_id] = params
        return True

    def _inline_result(self, result: Mapping[str, Any]) -> None:
        """An InlineQueryResultArticle as Telegram checks it: a title, a text message that
        parses, a keyboard like any other."""
        if result.get("type") != "article" or not str(result.get("title") or "").strip():
            raise _bad_request("RESULT_TYPE_INVALID")
        content = result.get("input_message_content")
        if not isinstance(content, dict):
            raise _bad_request("MESSAGE_EMPTY")
        self._formatted(
            {"text": content.get("message_text"), "parse_mode": content.get("parse_mode")},
            "text",
            MAX_TEXT,
        )
        self._markup({"reply_markup": result.get("reply_markup")})

    async def _m_getupdates(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = min(float(params.get("timeout") or 0), 5.0)
        # Updates below the offset are confirmed: Telegram forgets them.
        self._updates = [u for u in self._updates if int(u["update_id"]) >= offset]
        if not self._updates and timeout > 0 and self._new_update is not None:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        return self._updates[:limit]


def _reply_to(params: Mapping[str, Any]) -> int | None:
    """The message a send answers: `reply_parameters` (or the older `reply_to_message_id`)."""
    reply = params.get("reply_parameters")
    if isinstance(reply, dict) and reply.get("message_id") is not None:
        return int(reply["message_id"])
    old = params.get("reply_to_message_id")
    return int(old) if old is not None else None


def _commands_key(params: Mapping[str, Any]) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    scope_type = str(scope.get("type", "default")) if isinstance(scope, dict) else "default"
    return scope_type, str(params.get("language_code") or "")


def _coerce(key: str, value: str) -> Any:
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key in _INT_FIELDS or key in _INT_OR_STRING_FIELDS:
        if re.fullmatch(r"-?\d+", value):
            return int(value)
        return value
    if key in _BOOL_FIELDS:
        return value.lower() == "true"
    return value


def _now() -> int:
    return int(time.time())


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """A started fake Bot API server, closed after the test."""
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
