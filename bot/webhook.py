"""Webhook mode: a small aiohttp server in front of the PTB Application.

This follows python-telegram-bot's documented custom-webhook-server pattern (the Application runs
without its Updater; the server decodes each POST into an `Update` and puts it on
`application.update_queue`), because a custom server lets us add the load balancer's health
endpoint next to the webhook:

  POST <path of WEBHOOK_URL>  Telegram's updates. The X-Telegram-Bot-Api-Secret-Token header must
                              equal WEBHOOK_SECRET_TOKEN (constant-time compare) or the request is
                              answered 403 and dropped.
  GET  /healthz               200 when the application runs and the database answers `SELECT 1`
                              within HEALTH_TIMEOUT seconds, else 503 (the balancer stops routing).

Instances keep no state in memory (the database is the source of truth), so any number of them
can sit behind one balancer; a duplicate delivery is dropped by the processed_updates claim.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from contextlib import suppress
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.config import ConfigError, Settings
from bot.db.engine import Database

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_PATH = "/healthz"
HEALTH_TIMEOUT = 2.0
MAX_UPDATE_BYTES = 1024 * 1024  # an update is a few KB; refuse anything absurd


def webhook_path(url: str) -> str:
    path = urlsplit(url).path or "/"
    if path == HEALTH_PATH:
        raise ConfigError(f"Configuration error: WEBHOOK_URL must not use the path {HEALTH_PATH}")
    return path


async def database_ok(db: Database, limit: float = HEALTH_TIMEOUT) -> bool:
    try:
        async with asyncio.timeout(limit):
            await db.answers()
        return True
    except Exception as exc:  # any failure means "do not route traffic here"
        log.warning("health check: database unavailable (%s)", type(exc).__name__)
        return False


class WebhookServer:
    """Receives Telegram's POSTs for one Application and serves /healthz."""

    def __init__(self, application: Application, db: Database, *, secret_token: str, path: str,
                 listen: str = "127.0.0.1", port: int = 8443) -> None:
        self.application = application
        self.db = db
        self._secret = secret_token.encode()
        self.path = path
        self.listen = listen
        self.port = port
        self._runner: web.AppRunner | None = None
        self.rejected = 0  # requests refused for a missing or wrong secret

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_UPDATE_BYTES)
        app.router.add_post(self.path, self._telegram)
        app.router.add_get(HEALTH_PATH, self._healthz)
        self._runner = web.AppRunner(app, access_log=None)  # access logs would carry nothing useful
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.listen, self.port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        if sockets:
            self.port = sockets[0].getsockname()[1]  # resolves port 0 in tests
        log.info("webhook server listening on %s:%s%s", self.listen, self.port, self.path)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.listen}:{self.port}{self.path}"

    async def _telegram(self, request: web.Request) -> web.Response:
        # Header bytes that are not UTF-8 come as surrogates: not the secret, and no 500.
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._secret):
            self.rejected += 1
            log.warning("webhook request refused: %s secret token",
                        "wrong" if given else "missing")
            return web.json_response({"ok": False, "error": "forbidden"}, status=403)
        try:
            data = await request.json(loads=json.loads)
            update = Update.de_json(data, self.application.bot)
        except web.HTTPRequestEntityTooLarge:
            log.warning("webhook request refused: over %d bytes", MAX_UPDATE_BYTES)
            return web.json_response({"ok": False, "error": "too large"}, status=413)
        except Exception as exc:
            log.warning("webhook request refused: undecodable update (%s)", type(exc).__name__)
            return web.json_response({"ok": False, "error": "bad update"}, status=400)
        if update is None:
            return web.json_response({"ok": False, "error": "bad update"}, status=400)
        await self.application.update_queue.put(update)
        return web.json_response({"ok": True})

    async def _healthz(self, request: web.Request) -> web.Response:
        running = self.application.running
        db_ok = await database_ok(self.db) if running else False
        healthy = running and db_ok
        body = {"status": "ok" if healthy else "unavailable",
                "application": "running" if running else "stopped",
                "database": "ok" if db_ok else "unavailable"}
        return web.json_response(body, status=200 if healthy else 503)


async def set_webhook(application: Application, settings: Settings) -> None:
    assert settings.webhook_url and settings.webhook_secret_token
    await application.bot.set_webhook(
        url=settings.webhook_url,
        secret_token=settings.webhook_secret_token.get_secret_value(),
        allowed_updates=Update.ALL_TYPES,
        max_connections=settings.webhook_max_connections,
        drop_pending_updates=False,
    )


async def run_webhook(application: Application, settings: Settings, db: Database,
                      stop: asyncio.Event | None = None,
                      started: asyncio.Future[WebhookServer] | None = None) -> None:
    """Run `application` in webhook mode until `stop` is set (or SIGINT/SIGTERM arrives).

    The webhook is registered on every start (idempotent, so several instances may do it) and
    deliberately not deleted on stop: another instance may still be serving it.
    """
    settings.require_webhook()
    assert settings.webhook_url and settings.webhook_secret_token
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    server = WebhookServer(application, db, secret_token=settings.webhook_secret_token.get_secret_value(),
                           path=webhook_path(settings.webhook_url), listen=settings.webhook_listen,
                           port=settings.webhook_port)
    await application.initialize()
    try:
        if application.post_init:
            await application.post_init(application)
        await application.start()
        await server.start()
        await set_webhook(application, settings)
        if started is not None and not started.done():
            started.set_result(server)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.stop()
        if application.running:
            await application.stop()
        if application.post_stop:
            await application.post_stop(application)
        await application.shutdown()
        if application.post_shutdown:
            await application.post_shutdown(application)
