"""What every handler needs, built once per Application and kept in bot_data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.db.engine import Database
from bot.db.processed_updates import UpdateClaims
from bot.menu import MenuRenderer
from bot.privacy import PrivacyRegistry
from bot.qa import QAEngine
from bot.stats import StatProvider, patient_stats

if TYPE_CHECKING:
    from bot.crypto import CryptoBox
    from bot.intake.flow import IntakeFlow


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
    qa: QAEngine | None = None  # questions in the patient's own words (content/qa.yaml)
    crypto: CryptoBox | None = None  # None when ENCRYPTION_KEYS is unset (run mode refuses that)
    intake: IntakeFlow | None = None  # None without a crypto box: no health data unencrypted
    update_claims: UpdateClaims = field(init=False)  # the once-only claim of every update

    def __post_init__(self) -> None:
        self.update_claims = UpdateClaims(self.db)

    @property
    def messages(self):  # noqa: ANN201 - a Messages; kept short for handlers
        return self.content.messages
