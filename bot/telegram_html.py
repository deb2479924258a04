"""Telegram's HTML parse mode: the subset it accepts, checked before anything is sent.

Used by content validation at start (a bad template fails with file:line) and by the test
fake of the Bot API, which rejects malformed HTML the way Telegram does.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

ALLOWED = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "code", "pre", "blockquote", "tg-emoji", "tg-time",
}
NAMED_ENTITIES = {"lt", "gt", "amp", "quot"}
_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);")


class HTMLError(ValueError):
    pass


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED:
            raise HTMLError(f"unsupported tag <{tag}>")
        if tag == "a" and not any(k == "href" for k, _ in attrs):
            raise HTMLError("<a> without href")
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise HTMLError(f"self-closing <{tag}/> is not allowed")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise HTMLError(f"unexpected </{tag}>")
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            raise HTMLError("unescaped < or >")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in NAMED_ENTITIES:
            raise HTMLError(f"unsupported entity &{name};")
        self.text.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.text.append(html.unescape(f"&#{name};"))

    def handle_comment(self, data: str) -> None:
        raise HTMLError("comments are not allowed")

    def handle_decl(self, decl: str) -> None:
        raise HTMLError("declarations are not allowed")

    def unknown_decl(self, data: str) -> None:
        raise HTMLError("declarations are not allowed")


def check(text: str) -> str:
    """Validate Telegram HTML; return the plain text Telegram would show. Raises HTMLError."""
    # A bare '&' (not starting an entity) is rejected by Telegram; HTMLParser would pass it.
    for match in re.finditer(r"&", text):
        if not _ENTITY.match(text, match.start()):
            raise HTMLError("unescaped &")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    if checker.rawdata:
        raise HTMLError("unterminated tag or unescaped <")
    if checker.stack:
        raise HTMLError(f"unclosed <{checker.stack[-1]}>")
    return "".join(checker.text)


def plain(text: str) -> str:
    """The visible text of (valid) Telegram HTML."""
    return check(text)


def label(text: str) -> str:
    """A button label as Telegram shows it. Labels in content/ are written like every other text
    (HTML: "&amp;" for "&", placeholders escaped), but a button shows plain text. A label that is
    plain already (a document heading, a questionnaire option) is not valid HTML when it has a
    bare "&", and stays as it is."""
    try:
        return check(text)
    except HTMLError:
        return text
