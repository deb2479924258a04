"""What every handler needs, built once per Application and kept in bot_data."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.db.engine import Database
from bot.menu import MenuRenderer
from bot.privacy import PrivacyRegistry
from bot.stats import StatProvider, patient_stats


@dataclass
class Services:
    settings: Settings
    db: Database
    content: Content
    clock: Clock
    menu: MenuRenderer
    privacy: PrivacyRegistry = field(default_factory=PrivacyRegistry)
    # Staff console entries (label, callback_data) and /stats providers, added by features.
    staff_menu: list[tuple[str, str]] = field(default_factory=list)
    stat_providers: list[StatProvider] = field(default_factory=lambda: [patient_stats])

    @property
    def messages(self):  # noqa: ANN201 - a Messages; kept short for handlers
        return self.content.messages
