"""The dispatcher's pacer: evenly spaced sends, and Telegram's RetryAfter honoured at once."""

from __future__ import annotations

import pytest

from bot.reminders.dispatcher import PacedLimiter


async def test_the_pacer_spaces_sends_and_a_pause_reaches_a_send_already_waiting():
    t = [100.0]
    slept: list[float] = []
    limiter: PacedLimiter

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        if len(slept) == 2:  # Telegram answers 429 while the third send waits for its slot
            limiter.pause(5)
        t[0] += seconds

    limiter = PacedLimiter(4, lambda: t[0], sleep)  # a slot every 0.25 s
    starts = []
    for _ in range(4):
        await limiter.acquire()
        starts.append(t[0])
    assert starts[:2] == [100.0, 100.25]
    # The 429 came at 100.25, while the third waited for its slot at 100.5: it then waited out
    # the rest of the pause instead of going at 100.5.
    assert starts[2] == pytest.approx(100.25 + 5) and slept[:2] == [0.25, 0.25]
    assert max(slept) <= 0.5  # the pause is waited out in naps (a stopping bot looks up)
    assert starts[3] == pytest.approx(starts[2] + 0.25)


async def test_a_send_waiting_out_a_pause_gives_up_when_the_bot_stops():
    t, running = [100.0], [True]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        t[0] += seconds
        if t[0] == pytest.approx(102):
            running[0] = False  # the application begins to stop two seconds into the pause

    limiter = PacedLimiter(4, lambda: t[0], sleep, running=lambda: running[0])
    limiter.pause(30)
    assert await limiter.acquire() is False
    assert t[0] == pytest.approx(102) and max(slept) <= 0.5  # naps, not the whole pause
    running[0] = True
    assert await limiter.acquire() is True and t[0] == pytest.approx(130)
