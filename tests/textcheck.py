"""Helpers to compare what the bot shows with the clinic's document, sentence by sentence."""

from __future__ import annotations

import re
from pathlib import Path

from bot import telegram_html
from bot.content import Messages

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT.parent / "shared" / "seed" / "mesotherapy.txt"


def norm(text: str) -> str:
    text = text.replace("’", "'").lower()
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text).split())


def seed_sentences(text: str) -> list[str]:
    """Sentences and headings of the source document, numbering and bullet glyphs removed."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        line = re.sub(r"^[A-Z]\.\d+\.\s*", "", line)        # "B.4." document reference
        line = re.sub(r"^(\d+\.|[-o\uf0b7\u2022•])\s+", "", line)  # numbering and bullets
        line = line.lstrip("\uf0b7").strip()
        if not line:
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", line):
            sentence = sentence.rstrip(":").strip()
            if norm(sentence):
                out.append(sentence)
    return out


def ui_line_patterns(messages: Messages, keys: list[str]) -> list[re.Pattern[str]]:
    """A regex per visible line of each UI template; placeholders match anything."""
    patterns = []
    for key in keys:
        template = messages.raw(key)
        if not isinstance(template, str):
            continue
        filled = re.sub(r"\{[a-z_]+\}", "\x00", template)
        visible = telegram_html.plain(filled)
        for line in visible.splitlines():
            n = norm(line.replace("\x00", " PLACEHOLDER "))
            if not n:
                continue
            parts = [p.strip() for p in n.split("placeholder")]
            if not re.search(r"[a-z0-9]", "".join(parts)):
                continue  # only placeholders ("{text}"): it would explain any line at all
            patterns.append(re.compile(r"^" + r".*".join(map(re.escape, parts)) + r"$"))
    return patterns
