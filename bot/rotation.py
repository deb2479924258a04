"""`run_bot.py rotate-keys`: re-encrypt every encrypted field under the first ENCRYPTION_KEYS key.

One transaction: either every table is re-encrypted or none is (the old key keeps working until
it is removed from ENCRYPTION_KEYS, so a failed run can simply be repeated).
"""

from __future__ import annotations

from bot import questions
from bot.intake.flow import intakes_under_old_keys, rotate_intake_keys
from bot.services import Services

LEFT = "left under an old key"  # written meanwhile by a bot still on the old key list
UNREADABLE = "readable with none of the keys"  # under a key removed before rotation finished


async def rotate_all(svc: Services) -> dict[str, int]:
    """{what: how many re-encrypted}; with LEFT when some are still under an old key after it
    (a running bot wrote them meanwhile, encrypting with its own first key): run again, after
    restarting the bot with the new key list, before removing the old key."""
    if svc.crypto is None:
        raise RuntimeError("ENCRYPTION_KEYS is not set")
    counts: dict[str, int] = {}
    async with svc.db.session() as session:
        counts["questionnaires"] = await rotate_intake_keys(session, svc.crypto)
        counts["question fields"] = await questions.rotate_keys(session, svc.crypto)
    async with svc.db.session() as session:
        intakes = await intakes_under_old_keys(session, svc.crypto)
        fields = await questions.fields_under_old_keys(session, svc.crypto)
    # One row no key reads no longer stops the rest (it did: rotation could never finish).
    for key, n in ((LEFT, intakes[0] + fields[0]), (UNREADABLE, intakes[1] + fields[1])):
        if n:
            counts[key] = n
    return counts
