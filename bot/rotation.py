"""`run_bot.py rotate-keys`: re-encrypt every encrypted field under the first ENCRYPTION_KEYS key.

One transaction: either every table is re-encrypted or none is (the old key keeps working until
it is removed from ENCRYPTION_KEYS, so a failed run can simply be repeated).
"""

from __future__ import annotations

from bot import questions
from bot.intake.flow import rotate_intake_keys
from bot.services import Services


async def rotate_all(svc: Services) -> dict[str, int]:
    if svc.crypto is None:
        raise RuntimeError("ENCRYPTION_KEYS is not set")
    counts: dict[str, int] = {}
    async with svc.db.session() as session:
        counts["questionnaires"] = await rotate_intake_keys(session, svc.crypto)
        counts["question fields"] = await questions.rotate_keys(session, svc.crypto)
    return counts
