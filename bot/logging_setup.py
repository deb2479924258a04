"""Logging that never carries the bot token or patients' words.

httpx logs every request URL at INFO, and the URL contains the token: its logger is raised
to WARNING, and a filter redacts the token from any record that still mentions it.
python-telegram-bot logs every Bot API call's parameters and result at DEBUG: patients'
messages, their answers echoed back, staff summaries. Its loggers stay at INFO whatever
LOG_LEVEL says, so DEBUG never writes health data.
"""

from __future__ import annotations

import logging
import re

_TOKEN_IN_TEXT = re.compile(r"\d{3,}:[A-Za-z0-9_-]{30,}")


def redact_token(text: str) -> str:
    """`text` with anything shaped like a bot token replaced."""
    return _TOKEN_IN_TEXT.sub("<redacted>", text)


class RedactTokenFilter(logging.Filter):
    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self._secrets = [s for s in (secrets or []) if s]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact_token(text)
        for secret in self._secrets:
            clean = clean.replace(secret, "<redacted>")
        if clean != text:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            exc_text = str(exc)
            if _TOKEN_IN_TEXT.search(exc_text) or any(s in exc_text for s in self._secrets):
                # Keep the type and traceback shape, drop a message that carried a secret.
                record.exc_text = f"{type(exc).__name__}: <redacted>"
                record.exc_info = None
        return True


class RedactingFormatter(logging.Formatter):
    """Redacts the whole line as written, traceback included: an exception's chained cause
    (aiohttp's "Connection timeout to host .../bot<token>/getMe" under a clean TimedOut) is
    printed by the formatter, past what the filter sees."""

    def __init__(self, fmt: str, secrets: list[str] | None = None) -> None:
        super().__init__(fmt)
        self._secrets = [s for s in (secrets or []) if s]

    def format(self, record: logging.LogRecord) -> str:
        text = redact_token(super().format(record))
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text


def setup_logging(level: str = "INFO", secrets: list[str] | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                            secrets))
    handler.addFilter(RedactTokenFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(max(root.level, logging.INFO))
