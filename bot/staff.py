"""Who staff are, and where staff notifications go."""

from __future__ import annotations

from bot.config import Settings


def notification_chats(settings: Settings) -> list[int]:
    """The staff group chat if one is configured, otherwise each staff member's private chat."""
    if settings.staff_chat_id is not None:
        return [settings.staff_chat_id]
    return sorted(settings.staff_ids)


def is_staff(settings: Settings, user_id: int | None) -> bool:
    """Checked on every staff command and every staff button press, never cached."""
    return settings.is_staff(user_id)


def staff_place(settings: Settings, chat_id: int, chat_type: str) -> bool:
    """Where staff commands may show patients' data: a private chat with the bot, or the staff
    group (STAFF_CHAT_ID). Any other group would post it to all its members."""
    return chat_type == "private" or chat_id == settings.staff_chat_id
