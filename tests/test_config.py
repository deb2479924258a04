"""Configuration: sane defaults, one clear line for every bad setting, the token never shown."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent
GOOD_TOKEN = "123456789:AAH-good-token-value-abcdefghijklmnop"


def test_defaults_need_nothing(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.database_url.startswith("sqlite+aiosqlite://")
    assert settings.staff_ids == frozenset()
    assert str(settings.tz) == "Europe/London"
    with pytest.raises(ConfigError, match="BOT_TOKEN is not set"):
        settings.token()


def test_env_file_is_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"BOT_TOKEN={GOOD_TOKEN}\nSTAFF_IDS=1, 2 3\nCLINIC_TIMEZONE=Europe/Paris\n")
    settings = load_settings()
    assert settings.token() == GOOD_TOKEN
    assert settings.staff_ids == {1, 2, 3}
    assert settings.is_staff(2) and not settings.is_staff(4) and not settings.is_staff(None)
    assert GOOD_TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"BOT_TOKEN": "not-a-token"}, "BOT_TOKEN does not look like a bot token"),
        ({"STAFF_IDS": "12,abc"}, "STAFF_IDS must be Telegram user ids"),
        ({"CLINIC_TIMEZONE": "Mars/Olympus"}, "CLINIC_TIMEZONE unknown time zone"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must start with"),
        ({"QUIET_HOURS_START": "25:00"}, "QUIET_HOURS_START"),
        ({"QUIET_HOURS_START": "21:00Z"}, "QUIET_HOURS_START 21:00+00:00 must be a clock time"),
        ({"QUIET_HOURS_END": "08:00+01:00"}, "QUIET_HOURS_END 08:00+01:00 must be a clock time"),
        ({"STAFF_CHAT_ID": "group"}, "STAFF_CHAT_ID"),
        ({"TELEGRAM_API_BASE_URL": "ftp://x"}, "TELEGRAM_API_BASE_URL must be an http"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL unknown level"),
    ],
)
def test_malformed_settings_give_one_clear_line(monkeypatch, tmp_path, env, expected):
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert expected in message
    assert "\n" not in message
    assert "not-a-token" not in message


def _run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in {"BOT_TOKEN", "DATABASE_URL"}}
    clean.update(env)
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, str(ROOT / "run_bot.py"), *args], env=clean, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_stops_with_one_line_on_a_bad_token(tmp_path):
    secretish = "99:short-but-secret"
    result = _run_cli(["run"], {"BOT_TOKEN": secretish}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "BOT_TOKEN does not look like a bot token" in result.stderr
    assert secretish not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_cli_without_a_token_points_to_the_sandbox(tmp_path):
    result = _run_cli(["run"], {}, tmp_path)
    assert result.returncode == 2
    assert "BOT_TOKEN is not set" in result.stderr and "sandbox" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reports_broken_content_with_file_and_line(tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    (content / "messages.yaml").write_text("greeting: [unclosed\n")
    result = _run_cli(["check-content"], {"CONTENT_DIR": str(content)}, tmp_path)
    assert result.returncode == 2
    assert "messages.yaml:" in result.stderr and "Traceback" not in result.stderr


def test_cli_check_content_and_migrate(tmp_path):
    result = _run_cli(["check-content"], {}, tmp_path)
    assert result.returncode == 0 and "content OK" in result.stdout
    assert "note: messages.yaml clinic_contact is empty" in result.stdout  # shipped without one
    db = tmp_path / "x.db"
    result = _run_cli(["migrate"], {"DATABASE_URL": f"sqlite+aiosqlite:///{db}"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert db.exists()


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    ("privacy.yaml", "<b>", "<b", "privacy.yaml:"),  # broken HTML in a feature's own file
    ("staff.yaml", "button_staff_back:", "button_back_to_staff:",
     "staff.yaml:1: missing message 'button_staff_back'"),
])
def test_check_content_checks_every_file_the_bot_loads(tmp_path, file, old, new, expected):
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    text = (content / file).read_text(encoding="utf-8")
    assert old in text
    (content / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    result = _run_cli(["check-content"], {"CONTENT_DIR": str(content)}, tmp_path)
    assert result.returncode == 2, result.stdout
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_a_base_url_with_a_trailing_slash_still_reaches_the_bot_api(monkeypatch, tmp_path):
    """PTB appends the token: ".../bot/" made ".../bot/<token>", a 404 read as a bad token."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", "http://127.0.0.1:8081/bot/")
    assert load_settings().telegram_api_base_url == "http://127.0.0.1:8081/bot"
