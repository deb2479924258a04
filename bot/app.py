"""build_application(settings): the one place the Telegram Application is assembled."""

from __future__ import annotations

import logging

from telegram import BotCommand, BotCommandScopeChat, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, Defaults
from telegram.request import BaseRequest

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.content import CONTACT_MISSING, Content, load_content
from bot.crypto import CryptoBox
from bot.db.engine import Database
from bot.db.migrate import upgrade
from bot.intake.flow import IntakeFlow
from bot.intake.spec import load_intake
from bot.menu import MenuRenderer
from bot.qa import build_qa
from bot.services import Services
from bot.transport import AiohttpRequest
from bot.update_processor import PerChatOrderedProcessor

log = logging.getLogger(__name__)


def feature_modules() -> list:
    """Handler modules in registration order; the fallback (never-silence) goes last."""
    from handlers import (
        appointments,
        console,
        dedupe,
        errors,
        fallback,
        intake,
        menu,
        privacy,
        questions,
        staff,
    )

    return [dedupe, menu, intake, privacy, staff, appointments, console, errors, questions,
            fallback]


def build_services(
    settings: Settings, *, clock: Clock | None = None, content: Content | None = None,
    db: Database | None = None,
) -> Services:
    content = content or load_content(settings.content_dir)
    intake_file = settings.content_dir / "intake.yaml"
    # A broken intake.yaml stops the start (ContentError file:line); a missing one disables it.
    spec = load_intake(intake_file, clinic_name=str(content.messages.raw("clinic_name"))) \
        if intake_file.exists() else None
    crypto = CryptoBox(settings.encryption_key_list()) if settings.encryption_keys else None
    if spec is None:
        log.warning("%s not found: the consultation questionnaire is disabled", intake_file)
    elif crypto is None:
        log.warning("ENCRYPTION_KEYS is not set: the consultation questionnaire is disabled")
    if not content.messages.clinic_contact:
        log.warning(CONTACT_MISSING)
    return Services(
        settings=settings,
        db=db or Database(settings.database_url),
        content=content,
        clock=clock or SystemClock(),
        menu=MenuRenderer(content),
        qa=build_qa(content, settings.content_dir),
        crypto=crypto,
        intake=IntakeFlow(spec, crypto, settings.tz) if crypto and spec else None,
    )


def build_application(
    settings: Settings,
    request: BaseRequest | None = None,
    *,
    token: str | None = None,
    clock: Clock | None = None,
    services: Services | None = None,
    migrate: bool = True,
    application_class: type[Application] | None = None,
) -> Application:
    svc = services or build_services(settings, clock=clock)
    builder: ApplicationBuilder = (
        Application.builder()
        .token(token or settings.token())
        .base_url(settings.telegram_api_base_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=settings.tz,
                           link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .concurrent_updates(PerChatOrderedProcessor(settings.max_concurrent_updates))
        .post_init(_post_init(svc, migrate))
        .post_shutdown(_post_shutdown(svc))
    )
    if application_class is not None:
        builder = builder.application_class(application_class)
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    else:  # aiohttp with JSON bodies: well under half of httpx's CPU (bot/transport.py)
        builder = builder.request(AiohttpRequest(256)).get_updates_request(AiohttpRequest(1))
    if settings.rate_limiter:
        # Replies to patients wait out a 429 (twice at most) rather than fail, and so do the
        # reminder dispatcher's sends (it paces itself too); a 429 beyond those retries the
        # dispatcher records as RetryAfter.
        builder = builder.rate_limiter(AIORateLimiter(max_retries=2))
    application = builder.build()
    application.bot_data["services"] = svc
    for module in feature_modules():
        module.register(application, svc)
    return application


def _post_init(svc: Services, migrate: bool):
    async def post_init(application: Application) -> None:
        if migrate:
            await upgrade(svc.db)
        commands = [BotCommand(k, v) for k, v in svc.messages.raw("commands").items()]
        await application.bot.set_my_commands(commands)
        await _staff_command_menus(application, svc, commands)
        log.info("bot ready: %d menu screens", len(svc.content.nodes))

    return post_init


async def _staff_command_menus(application: Application, svc: Services,
                               commands: list[BotCommand]) -> None:
    """Staff see their commands too in the menu beside the text box: in their private chats
    and the staff group. A chat Telegram refuses (a staff member who never opened the bot)
    is skipped: the menu is a convenience, /help lists them as well."""
    staff = [BotCommand(k, v) for k, v in svc.messages.raw("staff_commands").items()]
    chats = sorted(svc.settings.staff_ids) + (
        [svc.settings.staff_chat_id] if svc.settings.staff_chat_id is not None else [])
    for chat_id in chats:
        try:
            await application.bot.set_my_commands(commands + staff,
                                                  scope=BotCommandScopeChat(chat_id))
        except TelegramError as exc:
            log.warning("staff command menu not set for chat %s: %s", chat_id,
                        type(exc).__name__)


def _post_shutdown(svc: Services):
    async def post_shutdown(application: Application) -> None:
        # When start-up failed at getMe (a revoked token, Telegram unreachable), PTB shuts
        # nothing down: the Bot API sessions would be reported unclosed under the one-line
        # error. Closes them then; after a normal run they are closed already (a no-op).
        await application.bot.shutdown()
        await svc.db.dispose()

    return post_shutdown
