"""Menu screens built from the content tree; pure functions, no Telegram objects.

Callback data (always <= 64 bytes, always re-validated on press):
  n:<node>[:<page>]   open a node (a section list, or an item's text) at a page
  r:<node>[:<page>]   read a whole section, all its items, paged
  home                the main menu
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape

from bot.content import Content, Node

TEXT_LIMIT = 4096
SCREEN_CACHE_SIZE = 4096
PAGE_BUDGET = 3800  # leaves room for the title, page indicator and any escaping slack

Button = tuple[str, str]  # (label, callback_data)


@dataclass
class Screen:
    text: str
    rows: list[list[Button]] = field(default_factory=list)


@dataclass(frozen=True)
class Nav:
    kind: str  # "node" | "read" | "home"
    node_id: str = ""
    page: int = 0


_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)[^>]*>")
_OUTSIDE_TAG = r"(?![^<>]*>)"  # a split point not inside <a href="...">
_NAV = re.compile(r"^(?:(n|r):([0-9a-f]{10})(?::(\d{1,3}))?|home)$")


def parse_callback(data: str | None) -> Nav | None:
    match = _NAV.match(data or "")
    if not match:
        return None
    if data == "home":
        return Nav("home")
    kind = "node" if match.group(1) == "n" else "read"
    return Nav(kind, match.group(2), int(match.group(3) or 0))


def _balance(pieces: list[str]) -> list[str]:
    """Each piece valid HTML on its own: tags open at a cut are closed at its end and opened
    again at the start of the next piece (Telegram refuses a page with an unclosed <i>)."""
    out: list[str] = []
    stack: list[re.Match[str]] = []  # the opening tags in force
    for piece in pieces:
        prefix = "".join(m.group(0) for m in stack)
        for tag in _TAG.finditer(piece):
            if not tag.group(1):
                stack.append(tag)
            elif stack:
                stack.pop()
        out.append(prefix + piece + "".join(f"</{m.group(2)}>" for m in reversed(stack)))
    return out


def _split_long(text: str, budget: int) -> list[str]:
    """Split one long HTML fragment at sentence, then word, boundaries outside tags."""
    if len(text) <= budget:
        return [text]
    outside = ""
    if "<" in text:  # room for the tags _balance closes and reopens at each cut
        outside = _OUTSIDE_TAG
        budget = max(budget - 2 * sum(len(m.group(0)) for m in _TAG.finditer(text)), budget // 2)
    pieces: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[.!?])\s+" + outside, text):
        for word in ([sentence] if len(sentence) <= budget else re.split(" " + outside, sentence)):
            if len(word) > budget and current:  # what came before goes first
                pieces.append(current)
                current = ""
            while len(word) > budget:  # a single enormous token: hard cut, not in an entity or tag
                cut = budget
                amp = word.rfind("&", 0, cut)
                if amp > 0 and ";" not in word[amp:cut]:
                    cut = amp
                lt = word.rfind("<", 0, cut)
                if lt > 0 and ">" not in word[lt:cut]:
                    cut = lt
                pieces.append(word[:cut])
                word = word[cut:]
            joined = f"{current} {word}" if current else word
            if len(joined) > budget:
                pieces.append(current)
                current = word
            else:
                current = joined
    if current:
        pieces.append(current)
    return _balance([p for p in pieces if p])


def _split_lines(text: str, budget: int) -> list[str]:
    """A list (an item a line) cut between items, its line breaks kept."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        for part in _split_long(line, budget):
            joined = f"{current}\n{part}" if current else part
            if len(joined) > budget and current:
                pieces.append(current)
                current = part
            else:
                current = joined
    if current:
        pieces.append(current)
    return pieces


def paginate(fragments: list[str], budget: int = PAGE_BUDGET) -> list[str]:
    """Pack HTML fragments (paragraphs) into pages no longer than budget characters."""
    pages: list[str] = []
    current = ""
    for fragment in fragments:
        # A long list of the document (escaped text, an item a line) is cut between items.
        is_list = "\n" in fragment and "<" not in fragment and len(fragment) > budget
        parts = _split_lines(fragment, budget) if is_list else _split_long(fragment, budget)
        for i, part in enumerate(parts):
            # A cut paragraph continues on the same page as one; a cut list, a line further.
            gap = ("\n" if is_list else " ") if i else "\n\n"
            joined = f"{current}{gap}{part}" if current else part
            if len(joined) > budget:
                pages.append(current)
                current = part
            else:
                current = joined
    if current or not pages:
        pages.append(current)
    return pages


class MenuRenderer:
    def __init__(self, content: Content, extra_main_buttons: list[Button] | None = None) -> None:
        self.content = content
        self.msg = content.messages
        self.extra_main_buttons = list(extra_main_buttons or [])
        self._screens: dict[tuple[Nav, tuple[Button, ...]], Screen] = {}

    # -- screens ---------------------------------------------------------------------------
    def main(self, intro: str | None = None) -> Screen:
        root = self.content.root
        text = self.msg.get("main_menu") if len(self.content.documents) == 1 else self.msg.get(
            "treatments_menu")
        if intro:
            text = f"{intro}\n\n{text}"
        rows = [[(child.label, f"n:{child.id}")] for child in root.children]
        rows[-1:-1] = [[b] for b in self.extra_main_buttons]  # features before the disclaimer
        return Screen(text, rows)

    def _body_fragments(self, node: Node) -> list[str]:
        if node.key == "#disclaimer":
            return [self.msg.get("disclaimer")]
        return [b.html() for b in node.blocks]

    def _nav_row(self, node: Node) -> list[Button]:
        row: list[Button] = []
        parent = node.parent
        if parent is not None and parent is not self.content.root:
            row.append((self.msg.get("button_back"), f"n:{parent.id}"))
        elif parent is not None:
            row.append((self.msg.get("button_back"), "home"))
        row.append((self.msg.get("button_main_menu"), "home"))
        return row

    def _paged(self, title: str, fragments: list[str], page: int, cb_prefix: str) -> tuple[str, list[Button], int]:
        pages = paginate(fragments)
        page = max(0, min(page, len(pages) - 1))
        text = f"<b>{title}</b>"
        if pages[page]:
            text += f"\n\n{pages[page]}"
        pager: list[Button] = []
        if len(pages) > 1:
            text += "\n\n<i>" + self.msg.get("page_indicator", page=page + 1, pages=len(pages)) + "</i>"
            if page > 0:
                pager.append((self.msg.get("button_prev_page"), f"{cb_prefix}:{page - 1}"))
            if page < len(pages) - 1:
                pager.append((self.msg.get("button_next_page"), f"{cb_prefix}:{page + 1}"))
        return text, pager, page

    def node(self, node: Node, page: int = 0) -> Screen:
        if node is self.content.root:
            return self.main()
        title = escape(node.title, quote=False)
        text, pager, page = self._paged(title, self._body_fragments(node), page, f"n:{node.id}")
        rows: list[list[Button]] = []
        if node.children:
            text += "\n\n" + self.msg.get("section_prompt")
            rows.extend([(c.label, f"n:{c.id}")] for c in node.children)
            # Only over items (a section's): a treatment's sections have items of their own,
            # which "read all" would show as bare titles.
            if any(c.blocks for c in node.children) and not any(c.children for c in node.children):
                rows.append([(self.msg.get("button_read_all"), f"r:{node.id}")])
        if pager:
            rows.append(pager)
        rows.append(self._nav_row(node))
        return Screen(text, rows)

    def read_all(self, node: Node, page: int = 0) -> Screen:
        fragments = self._body_fragments(node)
        for child in node.children:
            fragments.append(f"<b>{escape(child.title, quote=False)}</b>")
            fragments.extend(b.html() for b in child.blocks)
        text, pager, page = self._paged(escape(node.title, quote=False), fragments, page, f"r:{node.id}")
        rows = [pager] if pager else []
        rows.append([(self.msg.get("button_back"), f"n:{node.id}"),
                     (self.msg.get("button_main_menu"), "home")])
        return Screen(text, rows)

    def resolve(self, nav: Nav) -> Screen | None:
        """The screen a (validated) callback asks for, or None if the node no longer exists.

        Menu screens depend only on the content, loaded once at start: each is rendered (and
        paginated) on its first press, then served from memory. The key holds the features'
        main-menu buttons, so a button added later is never missing from a cached main menu.
        """
        key = (nav, tuple(self.extra_main_buttons))
        screen = self._screens.get(key)
        if screen is None:
            screen = self._render(nav)
            if screen is None:
                return None
            if len(self._screens) >= SCREEN_CACHE_SIZE:
                self._screens.clear()  # page numbers come from untrusted callback data
            self._screens[key] = screen
        return Screen(screen.text, list(screen.rows))  # callers may edit their copy

    def _render(self, nav: Nav) -> Screen | None:
        if nav.kind == "home":
            return self.main()
        node = self.content.node(nav.node_id)
        if node is None:
            return None
        return self.node(node, nav.page) if nav.kind == "node" else self.read_all(node, nav.page)
