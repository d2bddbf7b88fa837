"""The production files, read offline as Compose and the bot would read them (no Docker here):
compose.yaml's services, order and health checks, Caddy's routes, and every setting name that
compose.yaml or .env.example uses exists in the Settings class."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings
from bot.server import TELEGRAM_WEBHOOK_PATH

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "compose.yaml").read_text()
CADDYFILE = (ROOT / "Caddyfile").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
# ${NAME}, ${NAME:?message}, ${NAME:-default}: Compose interpolation.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}")
# Values an operator would put in .env, to read the file as `docker compose up` would.
OPERATOR_VALUES = {
    "DOMAIN": "bot.example.com",
    "POSTGRES_PASSWORD": "0123456789abcdef",
    "BOT_TOKEN": "123456:compose-test-token",
    "ESIMGO_API_KEY": "compose-test-key",
    "WEBHOOK_SECRET": "s" * 40,
}


def _setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def _interpolated(text: str) -> str:
    return INTERPOLATION.sub(lambda m: OPERATOR_VALUES[m.group(1)], text)


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(_interpolated(COMPOSE_TEXT))
    return dict(compose["services"])


def _replicas(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("command") == ["run"]}


def _bot_image_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The bot replicas and the one-shot migration: everything that runs our image."""
    return {name: s for name, s in services.items() if s.get("build") == "."}


def test_two_replicas_run_the_bot_in_webhook_mode_on_postgres_and_redis(
    services: dict[str, dict[str, Any]],
) -> None:
    replicas = _replicas(services)
    assert len(replicas) >= 2, sorted(services)
    for name, replica in replicas.items():
        assert "ports" not in replica, f"{name} is published; only Caddy faces the internet"
        settings = Settings(_env_file=None, **replica["environment"])
        assert settings.webhook_mode and settings.webhook_url == "https://bot.example.com"
        assert settings.database_url.startswith("postgresql+asyncpg://esimbot:")
        assert "@postgres:5432/" in settings.database_url
        assert settings.redis_url.startswith("redis://redis:6379/")
        assert settings.log_format == "json"


def test_migrations_run_once_before_the_replicas_start(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no", "a finished migration must not be started again"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, replica in _replicas(services).items():
        assert replica["image"] == migrate["image"]
        assert replica["environment"]["DATABASE_URL"] == migrate["environment"]["DATABASE_URL"]
        conditions = {dep: spec["condition"] for dep, spec in replica["depends_on"].items()}
        assert conditions == {
            "migrate": "service_completed_successfully",
            "postgres": "service_healthy",
            "redis": "service_healthy",
        }, name


def test_health_checks_ask_each_replica_for_healthz(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, replica in _replicas(services).items():
        port = replica["environment"]["HTTP_PORT"]
        check = " ".join(replica["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in check, name
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert re.search(r"^\s*health_uri /healthz$", CADDYFILE, re.MULTILINE)


def test_caddy_sends_the_webhook_and_the_callbacks_to_every_replica(
    services: dict[str, dict[str, Any]],
) -> None:
    caddy = services["caddy"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    replicas = _replicas(services)
    upstreams = {
        f"{name}:{replica['environment']['HTTP_PORT']}" for name, replica in replicas.items()
    }
    assert set(caddy["environment"]["BOT_UPSTREAMS"].split()) == upstreams
    assert re.search(r"^\s*reverse_proxy \{\$BOT_UPSTREAMS\} \{$", CADDYFILE, re.MULTILINE)
    # Caddy's site is the host Telegram is told to post to.
    assert CADDYFILE.count("{$DOMAIN} {") == 1
    for replica in replicas.values():
        assert replica["environment"]["WEBHOOK_URL"] == f"https://{caddy['environment']['DOMAIN']}"
    routed = re.search(r"^\s*@inbound path (.+)$", CADDYFILE, re.MULTILINE)
    assert routed is not None
    callback_path = Settings.model_fields["esimgo_callback_path"].default
    assert set(routed[1].split()) == {TELEGRAM_WEBHOOK_PATH, callback_path}


def test_postgres_and_caddy_keep_their_data_in_named_volumes(
    services: dict[str, dict[str, Any]],
) -> None:
    compose = yaml.safe_load(_interpolated(COMPOSE_TEXT))
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "caddy-data:/data" in services["caddy"]["volumes"]
    named = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert named == set(compose["volumes"])


def test_every_setting_compose_passes_to_the_bot_exists(
    services: dict[str, dict[str, Any]],
) -> None:
    known = _setting_names()
    for name, service in _bot_image_services(services).items():
        assert service["env_file"] == ".env", name
        unknown = sorted(set(service["environment"]) - known)
        assert not unknown, f"{name} sets {unknown}, which bot/config.py does not read"


def test_env_example_lists_what_an_operator_fills_in() -> None:
    listed = re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.MULTILINE)
    active = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.MULTILINE))
    compose_names = set(INTERPOLATION.findall(COMPOSE_TEXT))
    unknown = sorted(set(listed) - _setting_names() - compose_names)
    assert not unknown, f".env.example lists {unknown}: neither a setting nor read by compose"
    assert len(listed) == len(set(listed)), "a name is listed twice"
    missing = sorted(compose_names - set(listed))
    assert not missing, f"compose.yaml needs {missing}, which .env.example does not mention"
    required = {name.upper() for name, f in Settings.model_fields.items() if f.is_required()}
    assert required <= active, f"required settings not filled in: {sorted(required - active)}"
