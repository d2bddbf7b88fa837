"""Runtime configuration: one pydantic-settings class with the names of DESIGN.md §5."""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values copied from .env.example that must never reach Telegram or eSIM Go.
_PLACEHOLDER_MARKERS = ("changeme", "your-", "your_", "<", "xxx", "placeholder")
# What Telegram accepts as a webhook's secret_token.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{32,256}")
# ESIMGO_API_KEY selecting the sandbox: never a real key, so the sandbox is never on by accident.
SANDBOX_KEY = "sandbox"
# The sandbox's own database unless DATABASE_URL names one: a demo never mixes with a shop's data.
SANDBOX_DATABASE_URL = "sqlite+aiosqlite:///data/demo.db"


class ConfigError(Exception):
    """A configuration problem, worded for the operator in one line."""


def _looks_like_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return not lowered or any(marker in lowered for marker in _PLACEHOLDER_MARKERS)


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Everything the bot reads from the environment or `.env`."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    bot_token: SecretStr
    telegram_api_base: str = "https://api.telegram.org"
    esimgo_api_key: SecretStr
    esimgo_base_url: str = "https://api.esim-go.com/v2.4"
    # The whole account's pace, shared by every replica when REDIS_URL is set (eSIM Go allows 10).
    esimgo_requests_per_second: float = Field(default=9.0, gt=0)
    database_url: str = "sqlite+aiosqlite:///data/esimbot.db"
    # Connections kept open (half as many more in a burst); None (empty) = the driver's own.
    database_pool_size: int | None = Field(default=None, ge=1)
    redis_url: str = ""
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    esimgo_callback_path: str = "/esimgo/callback"
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    payment_currency: str = "XTR"
    payment_provider_token: SecretStr = SecretStr("")
    price_markup_percent: Decimal = Field(default=Decimal("30"), ge=0)
    usd_per_star: Decimal = Field(default=Decimal("0.013"), gt=0)
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    catalogue_refresh_minutes: int = Field(default=360, ge=1)
    status_poll_minutes: int = Field(default=30, ge=1)
    fulfilment_deadline_minutes: int = Field(default=15, ge=1)
    payment_reconcile_seconds: int = Field(default=300, ge=10)
    # An eSIM never installed, plan never started, can be refunded by its owner this long.
    self_refund_days: int = Field(default=7, ge=0)
    default_language: Literal["en", "ru"] = "en"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # In the eSIM Go balance's currency; None (empty) = no warning.
    esimgo_balance_warn: Decimal | None = Field(default=None, ge=0)
    metrics_token: SecretStr = SecretStr("")
    # UTC hour of the admins' daily summary; None (empty) = off.
    daily_report_hour: int | None = Field(default=None, ge=0, le=23)
    # Per user: this many updates at once, refilled at this many a second; the excess is
    # dropped (payments never are).
    throttle_burst: int = Field(default=10, ge=1)
    throttle_rate: float = Field(default=3.0, gt=0)
    # Orders awaiting payment one user may hold (one per plan: Buy again reuses it).
    unpaid_orders_per_user: int = Field(default=5, ge=1)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            return frozenset(int(p) for p in parts if p)
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator(
        "esimgo_balance_warn", "daily_report_hour", "database_pool_size", mode="before"
    )
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("payment_currency", mode="before")
    @classmethod
    def _upper_currency(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("telegram_api_base", "esimgo_base_url", "webhook_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret_alphabet(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and not _WEBHOOK_SECRET.fullmatch(secret):
            raise ValueError("must be 32–256 characters of A–Z a–z 0–9 _ -")
        return value

    @field_validator("esimgo_base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        # The API key goes in every request's headers: only TLS, or this machine, may see it.
        parts = urlsplit(value)
        local = parts.scheme == "http" and _is_loopback(parts.hostname)
        if parts.scheme != "https" and not local:
            raise ValueError("must use https (plain http only for a loopback address)")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if _looks_like_placeholder(self.bot_token.get_secret_value()):
            raise ValueError("BOT_TOKEN is missing or still the placeholder from .env.example")
        if _looks_like_placeholder(self.esimgo_api_key.get_secret_value()):
            raise ValueError(
                "ESIMGO_API_KEY is missing or still the placeholder from .env.example"
            )
        if self.sandbox:
            self._sandbox_consistency()
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_URL is set")
        if self.payment_currency != "XTR" and not self.payment_provider_token.get_secret_value():
            raise ValueError(
                f"PAYMENT_CURRENCY={self.payment_currency} needs PAYMENT_PROVIDER_TOKEN "
                "(or use XTR, Telegram Stars)"
            )
        if not self.uses_stars and not self.admin_ids:
            # Card payments cannot be refunded through the Bot API: an admin refunds them.
            raise ValueError(
                f"PAYMENT_CURRENCY={self.payment_currency} needs ADMIN_IDS "
                "(card refunds are made by an admin, who must be told)"
            )
        return self

    def _sandbox_consistency(self) -> None:
        default_base_url = type(self).model_fields["esimgo_base_url"].default
        if "esimgo_base_url" in self.model_fields_set and self.esimgo_base_url != default_base_url:
            raise ValueError(
                "ESIMGO_BASE_URL cannot be used with ESIMGO_API_KEY=sandbox: the sandbox runs its "
                "own eSIM Go stand-in (remove ESIMGO_BASE_URL, or set your real API key)"
            )
        if "database_url" not in self.model_fields_set:
            self.database_url = SANDBOX_DATABASE_URL

    @property
    def sandbox(self) -> bool:
        """ESIMGO_API_KEY=sandbox: the built-in eSIM Go stand-in, payments only simulated."""
        return self.esimgo_api_key.get_secret_value() == SANDBOX_KEY

    @property
    def uses_stars(self) -> bool:
        return self.payment_currency == "XTR"

    @property
    def webhook_mode(self) -> bool:
        return bool(self.webhook_url)


def load_settings(**overrides: object) -> Settings:
    """Read settings; any problem becomes one readable ConfigError line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "is required (set it in the environment or .env)"
            problems.append(f"{name} {message}".strip() if name else message)
        raise ConfigError("configuration error: " + "; ".join(problems)) from None
