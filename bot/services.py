"""What every handler needs, built once per Application and kept in bot_data."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.db.engine import Database
from bot.menu import MenuRenderer
from bot.qa import QAEngine


@dataclass
class Services:
    settings: Settings
    db: Database
    content: Content
    clock: Clock
    menu: MenuRenderer
    qa: QAEngine | None = None  # questions in the patient's own words (content/qa.yaml)

    @property
    def messages(self):  # noqa: ANN201 - a Messages; kept short for handlers
        return self.content.messages
