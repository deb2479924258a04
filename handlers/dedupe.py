"""Drop an update Telegram delivered twice (to this or another instance) before any handler runs.

Group -100 runs before every feature group (-1 free-text routing, 0 menus and fallback). The
claim fails open: if the database cannot be reached, the update is still handled (menus work
without the database; handlers that need it answer "try again shortly"), because a patient must
never be left unanswered for the sake of duplicate protection.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, ContextTypes, TypeHandler

from bot.db import processed_updates
from bot.services import Services
from handlers.common import services

log = logging.getLogger(__name__)

GROUP = -100
PRUNE_EVERY_SECONDS = 3600


async def claim_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    try:
        first = await svc.update_claims.claim(update.update_id, svc.clock.now())
    except Exception as exc:  # noqa: BLE001 - fail open, see the module docstring
        log.warning("update %s not claimed (%s); handling it anyway", update.update_id,
                    type(exc).__name__)
        return
    if not first:
        log.info("update %s was already processed; duplicate dropped", update.update_id)
        raise ApplicationHandlerStop


async def prune_claims(context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    try:
        removed = await processed_updates.prune(svc.db, svc.clock.now())
    except Exception as exc:  # noqa: BLE001 - retried at the next run
        log.warning("processed_updates not pruned (%s)", type(exc).__name__)
        return
    if removed:
        log.info("pruned %d processed-update claims", removed)


def register(application: Application, svc: Services) -> None:
    application.add_handler(TypeHandler(Update, claim_update), group=GROUP)
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            prune_claims, interval=PRUNE_EVERY_SECONDS, first=60, name="prune-processed-updates",
            job_kwargs={"misfire_grace_time": None, "coalesce": True})
