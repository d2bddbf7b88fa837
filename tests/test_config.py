"""Operators get one readable line for a bad configuration, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {"bot_token": "123456:ABCDEF", "esimgo_api_key": "live-key-123"}
WEBHOOK = {**REQUIRED, "webhook_url": "https://bot.example.com"}
WEBHOOK_SECRET_RULE = "WEBHOOK_SECRET must be 32–256 characters of A–Z a–z 0–9 _ -"
FIAT = {**REQUIRED, "payment_currency": "EUR", "payment_provider_token": "284685063:TEST:abc"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Settings read the environment and ./.env: isolate both from the developer's machine.
    for name in list(os.environ):
        if name.startswith(("BOT_", "ESIMGO_", "WEBHOOK_", "PAYMENT_", "ADMIN_", "DATABASE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_design() -> None:
    settings = load_settings(**REQUIRED)
    assert settings.telegram_api_base == "https://api.telegram.org"
    assert settings.esimgo_base_url == "https://api.esim-go.com/v2.4"
    assert settings.database_url == "sqlite+aiosqlite:///data/esimbot.db"
    assert settings.payment_currency == "XTR" and settings.uses_stars
    assert settings.price_markup_percent == Decimal("30")
    assert settings.usd_per_star == Decimal("0.013")
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8080)
    assert settings.catalogue_refresh_minutes == 360
    assert settings.status_poll_minutes == 30
    assert settings.fulfilment_deadline_minutes == 15
    assert settings.default_language == "en"
    assert not settings.webhook_mode
    assert settings.admin_ids == frozenset()


def test_environment_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "42:XYZ")
    monkeypatch.setenv("ESIMGO_API_KEY", "k-1")
    monkeypatch.setenv("ADMIN_IDS", "1, 2,3")
    monkeypatch.setenv("TELEGRAM_API_BASE", "http://127.0.0.1:9000/")
    monkeypatch.setenv("PRICE_MARKUP_PERCENT", "12.5")
    settings = load_settings()
    assert settings.bot_token.get_secret_value() == "42:XYZ"
    assert settings.admin_ids == frozenset({1, 2, 3})
    assert settings.telegram_api_base == "http://127.0.0.1:9000"
    assert settings.price_markup_percent == Decimal("12.5")


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOT_TOKEN=7:abc\nESIMGO_API_KEY=key\nLOG_FORMAT=json\n")
    settings = load_settings()
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"esimgo_api_key": "k"}, "BOT_TOKEN is required"),
        ({"bot_token": "1:a"}, "ESIMGO_API_KEY is required"),
        ({**REQUIRED, "bot_token": "changeme"}, "BOT_TOKEN is missing or still the placeholder"),
        ({**REQUIRED, "webhook_url": "https://x.example"}, "WEBHOOK_SECRET is required"),
        ({**REQUIRED, "payment_currency": "usd"}, "needs PAYMENT_PROVIDER_TOKEN"),
        ({**REQUIRED, "http_port": "seventy"}, "HTTP_PORT"),
        ({**REQUIRED, "admin_ids": "12,abc"}, "ADMIN_IDS"),
        ({**WEBHOOK, "webhook_secret": "s" * 31}, WEBHOOK_SECRET_RULE),
        ({**WEBHOOK, "webhook_secret": "s" * 257}, WEBHOOK_SECRET_RULE),
        ({**WEBHOOK, "webhook_secret": "s" * 31 + "!"}, WEBHOOK_SECRET_RULE),
        ({**WEBHOOK, "webhook_secret": "s" * 31 + "é"}, WEBHOOK_SECRET_RULE),
        ({**WEBHOOK, "webhook_secret": "s" * 16 + " " + "s" * 16}, WEBHOOK_SECRET_RULE),
        ({**REQUIRED, "esimgo_base_url": "http://api.esim-go.com/v2.4"}, "must use https"),
        ({**REQUIRED, "esimgo_base_url": "http://10.0.0.5/v2.4"}, "must use https"),
        ({**REQUIRED, "esimgo_base_url": "ftp://api.esim-go.com"}, "must use https"),
        ({**FIAT, "admin_ids": ""}, "PAYMENT_CURRENCY=EUR needs ADMIN_IDS"),
    ],
)
def test_bad_configuration_is_one_readable_line(overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_a_webhook_secret_of_telegrams_alphabet_and_a_loopback_esimgo_are_accepted() -> None:
    for secret in ("A" * 32, "aZ09_-" * 42 + "xyzw"):
        settings = load_settings(**WEBHOOK, webhook_secret=secret)
        assert settings.webhook_secret.get_secret_value() == secret
    for base in ("http://127.0.0.1:8081/v2.4", "http://localhost:9000", "http://[::1]:9000"):
        assert load_settings(**REQUIRED, esimgo_base_url=base).esimgo_base_url == base
    fiat = load_settings(**FIAT, admin_ids="7")
    assert fiat.payment_currency == "EUR" and fiat.admin_ids == frozenset({7})


def test_the_command_reports_missing_secrets_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "ESIMGO_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "BOT_TOKEN is required" in lines[0] and "ESIMGO_API_KEY is required" in lines[0]
    assert "Traceback" not in result.stderr


def test_operator_settings_are_off_when_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESIMGO_BALANCE_WARN", "")
    monkeypatch.setenv("DAILY_REPORT_HOUR", " ")
    settings = load_settings(**REQUIRED)
    assert settings.esimgo_balance_warn is None and settings.daily_report_hour is None
    assert settings.metrics_token.get_secret_value() == ""


def test_operator_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESIMGO_BALANCE_WARN", "150.50")
    monkeypatch.setenv("DAILY_REPORT_HOUR", "8")
    monkeypatch.setenv("METRICS_TOKEN", "s3cret")
    settings = load_settings(**REQUIRED)
    assert settings.esimgo_balance_warn == Decimal("150.50")
    assert settings.daily_report_hour == 8
    assert settings.metrics_token.get_secret_value() == "s3cret"
    for name, value in (("DAILY_REPORT_HOUR", "24"), ("ESIMGO_BALANCE_WARN", "-1")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=name):
            load_settings(**REQUIRED)
        monkeypatch.delenv(name)
