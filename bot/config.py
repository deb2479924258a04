"""Settings from the environment and `.env` (pydantic-settings).

A missing or malformed setting becomes one clear line (`ConfigError`), never a traceback,
and the bot token is a SecretStr so it never shows up in a repr or a log line.
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")
WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class ConfigError(Exception):
    """A setting is missing or malformed; str() is a single line fit for the console."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    bot_token: SecretStr | None = Field(default=None, description="Telegram bot token")
    telegram_api_base_url: str = Field(
        default="https://api.telegram.org/bot",
        description="Bot API base URL; the token is appended (self-hosted Bot API server, tests)",
    )
    database_url: str = Field(default="sqlite+aiosqlite:///clinic.db")
    staff_ids: Annotated[frozenset[int], NoDecode] = Field(default=frozenset())
    staff_chat_id: int | None = None
    clinic_timezone: str = "Europe/London"
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    content_dir: Path = ROOT / "content"
    rate_limiter: bool = True
    log_level: str = "INFO"
    # Updates of different chats handled at once (one chat's updates always stay in order).
    max_concurrent_updates: int = Field(default=32, ge=1, le=512)
    # Fernet keys (urlsafe base64, 32 bytes), comma-separated: the FIRST encrypts, all decrypt.
    # Rotate by putting a new key first, running `run_bot.py rotate-keys`, then dropping the old.
    encryption_keys: SecretStr | None = Field(default=None, description="ENCRYPTION_KEYS")
    # Questionnaires last touched longer ago than this, of patients with no appointment in that
    # period, are purged by a daily job (bot/retention.py).
    intake_retention_months: int = Field(default=24, ge=1, le=240)

    # Webhook mode (`run_bot.py run --webhook`); polling is the default and needs none of these.
    webhook_url: str | None = Field(
        default=None, description="public HTTPS URL Telegram posts updates to, e.g. "
        "https://bot.example.com/telegram; its path is the path the server listens on")
    webhook_secret_token: SecretStr | None = Field(
        default=None, description="shared secret Telegram sends in X-Telegram-Bot-Api-Secret-Token")
    webhook_listen: str = Field(default="127.0.0.1", description="address the webhook server binds")
    webhook_port: int = Field(default=8443, ge=0, le=65535, description="0 picks a free port (tests)")
    webhook_max_connections: int = Field(default=40, ge=1, le=100)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not TOKEN_RE.match(value.get_secret_value().strip()):
            # Never echo the value: it is (almost) a secret.
            raise ValueError("does not look like a bot token (expected 123456:ABC... from @BotFather)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("staff_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError:
                raise ValueError("must be Telegram user ids separated by commas, e.g. 1234,5678") from None
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        from bot.crypto import parse_keys

        parse_keys(value.get_secret_value())  # raises ValueError naming the position, never the key
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown level {value!r} (DEBUG, INFO, WARNING, ERROR or CRITICAL)")
        return level

    @field_validator("quiet_hours_start", "quiet_hours_end")
    @classmethod
    def _wall_clock(cls, value: time) -> time:
        # Quiet hours are clinic wall-clock times; pydantic also reads "21:00Z" or "21:00+01:00",
        # a time that cannot be compared with a local time (every booking and send would fail).
        if value.tzinfo is not None:
            raise ValueError(f"{value.isoformat('minutes')} must be a clock time in the clinic's zone "
                             "(e.g. 21:00), without Z or an offset")
        return value

    @field_validator("clinic_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder: OSError
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Paris)") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        if not re.match(r"^(sqlite\+aiosqlite|postgresql\+asyncpg)://", value):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (async drivers)"
            )
        # SQLite creates the file, not its folder: say which folder, before a driver's
        # "unable to open database file".
        path = re.match(r"^sqlite\+aiosqlite:///([^?]+)", value)
        if path and path.group(1) != ":memory:" and not Path(path.group(1)).parent.is_dir():
            raise ValueError(f"the folder {str(Path(path.group(1)).parent)!r} does not exist "
                             "(SQLite creates the database file, not its folder)")
        return value

    @field_validator("telegram_api_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL such as https://api.telegram.org/bot")
        # PTB appends the token: ".../bot/" would make ".../bot/<token>", a 404 that PTB
        # reports as a rejected token.
        return value.rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not re.match(r"^https://[^\s/]+(/\S*)?$", value):
            raise ValueError("must be a public https:// URL (Telegram only posts to HTTPS)")
        return value

    @field_validator("webhook_secret_token")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        secret = value.get_secret_value().strip()
        if not WEBHOOK_SECRET_RE.match(secret):
            raise ValueError("must be 16-256 characters of A-Z, a-z, 0-9, _ and - "
                             "(e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        return SecretStr(secret)

    def require_webhook(self) -> None:
        """Raise ConfigError naming every webhook setting that is missing."""
        missing = [name for name, value in (("WEBHOOK_URL", self.webhook_url),
                                            ("WEBHOOK_SECRET_TOKEN", self.webhook_secret_token))
                   if value is None]
        if missing:
            raise ConfigError(
                "Configuration error: webhook mode needs " + " and ".join(missing)
                + " (see README: Webhook mode), or run without --webhook to use polling"
            )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.clinic_timezone)

    def token(self) -> str:
        if self.bot_token is None:
            raise ConfigError(
                "BOT_TOKEN is not set: put the token from @BotFather in .env "
                "(or run `python run_bot.py sandbox` to try the bot without one)"
            )
        return self.bot_token.get_secret_value()

    def encryption_key_list(self) -> list[str]:
        """The configured keys; a missing setting is a clear ConfigError (health data needs it)."""
        if self.encryption_keys is None:
            raise ConfigError(
                "ENCRYPTION_KEYS is not set: health answers are encrypted at rest. Generate a key "
                "with `python run_bot.py new-key` and put ENCRYPTION_KEYS=<key> in .env"
            )
        from bot.crypto import parse_keys

        return parse_keys(self.encryption_keys.get_secret_value())

    def is_staff(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.staff_ids


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning pydantic's multi-line report into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name} {msg}")
        raise ConfigError("Configuration error: " + "; ".join(problems)) from None
