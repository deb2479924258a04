"""Different chats are handled at once; one chat's updates keep their order."""

from __future__ import annotations

import asyncio

from telegram import Update

from bot.update_processor import PerChatOrderedProcessor


def _update(update_id: int, chat_id: int) -> Update:
    return Update.de_json({"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "text": "x",
        "chat": {"id": chat_id, "type": "private"}}}, None)


async def test_same_chat_in_order_other_chats_concurrently():
    processor = PerChatOrderedProcessor(8)
    log: list[tuple[str, int]] = []
    release_a = asyncio.Event()

    async def work(update_id: int, wait: asyncio.Event | None = None) -> None:
        log.append(("start", update_id))
        if wait is not None:
            await wait.wait()
        log.append(("end", update_id))

    tasks = [
        asyncio.create_task(processor.process_update(_update(1, 100), work(1, release_a))),
        asyncio.create_task(processor.process_update(_update(2, 100), work(2))),
        asyncio.create_task(processor.process_update(_update(3, 200), work(3))),
    ]
    await asyncio.sleep(0.01)
    # Chat 200 finished while chat 100's first update still waits; chat 100's second has not started.
    assert ("end", 3) in log and ("start", 2) not in log
    release_a.set()
    await asyncio.gather(*tasks)
    assert log.index(("end", 1)) < log.index(("start", 2))
    assert processor._locks == {}  # nothing kept for quiet chats
