"""What every handler needs, built once per Application and kept in bot_data."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.db.engine import Database
from bot.menu import MenuRenderer
from bot.privacy import PrivacyRegistry


@dataclass
class Services:
    settings: Settings
    db: Database
    content: Content
    clock: Clock
    menu: MenuRenderer
    privacy: PrivacyRegistry = field(default_factory=PrivacyRegistry)

    @property
    def messages(self):  # noqa: ANN201 - a Messages; kept short for handlers
        return self.content.messages
