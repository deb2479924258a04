"""The clinic's words as data: treatment documents (content/*.md) and UI texts (messages.yaml).

Loaded and validated once at start. Any problem raises ContentError naming file:line, so a
clinic that edits content sees exactly what to fix and the bot never starts half-broken.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot import telegram_html

log = logging.getLogger(__name__)

REQUIRED_MESSAGES = (
    "greeting", "greeting_anonymous", "main_menu", "treatments_menu", "section_prompt",
    "page_indicator", "button_back", "button_main_menu", "button_next_page", "button_prev_page",
    "button_read_all", "button_disclaimer", "disclaimer_title", "disclaimer", "help", "commands",
    "unknown_command", "unknown_text", "unsupported_message", "stale_button", "error",
    "db_unavailable", "intake_unavailable", "contact_line",
)
PLAIN_TEXT = ("clinic_name", "clinic_contact")  # the clinic's own words, escaped where used
CONTACT_MISSING = ("messages.yaml clinic_contact is empty: advice to contact the clinic (the urgent "
                   "\"get help now\" message first) cannot say how")
BUTTON_LIMIT = 64  # Telegram shows long labels cut off; keep them readable
# Telegram refuses a message over 4096 characters (a caption over 1024) once its HTML is
# parsed; a template's filled-in {placeholders} (names, dates, a patient's words) need room.
TEXT_BUDGET = 3500
CAPTION_BUDGET = 900
# The {placeholders} the code fills in for the texts of each message file (Messages.get always
# gives clinic_name and clinic_contact; the rest are the names handlers/*.py pass to
# messages.get(key, name=...)). Any other name would reach patients as written.
_ALWAYS = frozenset({"clinic_name", "clinic_contact"})
PLACEHOLDERS = {
    "messages.yaml": _ALWAYS | {"first_name", "command", "page", "pages"},
    "privacy.yaml": _ALWAYS,
    "staff.yaml": _ALWAYS | {"timezone", "label", "value"},
    "console.yaml": _ALWAYS | {
        "appt", "area", "audience", "confirmation", "count", "day", "end", "error", "id", "kind",
        "label", "length", "limit", "note", "patient", "quiet", "reminders", "staff", "staff_id",
        "start", "status", "text", "time", "when", "who"},
}


class ContentError(Exception):
    """A content file is invalid. str() is 'path:line: problem'."""

    def __init__(self, path: Path | str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


@dataclass
class Block:
    """A paragraph, or a bullet list, of plain text from the document."""

    kind: str  # "para" | "bullets" | "numbered" (each line keeps its "1.")
    lines: list[str]

    def html(self) -> str:
        if self.kind == "bullets":
            return "\n".join("• " + html.escape(x, quote=False) for x in self.lines)
        if self.kind == "numbered":
            return "\n".join(html.escape(x, quote=False) for x in self.lines)
        return html.escape(" ".join(self.lines), quote=False)

    def plain(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Node:
    """One screen of the menu tree: a title, body blocks, and children to navigate to."""

    key: str  # the path of titles; its hash is the node id in callback data
    title: str
    label: str
    blocks: list[Block] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None
    source: str = ""
    line: int = 0

    @property
    def id(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:10]

    def walk(self) -> list[Node]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass
class Document:
    doc_id: str
    menu_label: str
    about_label: str
    root: Node  # title + intro blocks; children are the sections
    path: Path


class _KeepUnknown(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, values: Mapping[str, object], source: str) -> str:
    """`template` with its placeholders filled. A placeholder the code does not provide for
    this text (a content edit, e.g. {name} where only {first_name} exists) stays as written
    and is logged with `source` (file and key): the message still goes, rather than failing
    with the update it answers."""
    try:
        return template.format_map(values)
    except KeyError as exc:
        log.error("content %s: unknown placeholder {%s}", source, exc.args[0])
        return template.format_map(_KeepUnknown(values))


class Messages:
    """UI templates. Placeholder values are HTML-escaped; the templates are trusted HTML."""

    def __init__(self, data: dict[str, Any], path: Path) -> None:
        self._data = data
        self.path = path

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> Any:
        return self._data[key]

    def get(self, key: str, **params: object) -> str:
        template = self._data[key]
        values = {"clinic_name": html.escape(str(self._data.get("clinic_name", "the clinic"))),
                  "clinic_contact": html.escape(self.clinic_contact)}
        values.update({k: html.escape(str(v), quote=False) for k, v in params.items()})
        return fill(template, values, f"{self.path.name}:{key}")

    @property
    def clinic_contact(self) -> str:
        return str(self._data.get("clinic_contact") or "").strip()

    def contact_line(self) -> str:
        """How to reach the clinic, as a line to put under advice to contact it ("" until the
        clinic fills in clinic_contact: the advice then cannot say how)."""
        return self.get("contact_line") if self.clinic_contact else ""

    def with_contact(self, text: str, gap: str = "\n") -> str:
        """Advice to contact the clinic, with how once clinic_contact is set."""
        line = self.contact_line()
        return f"{text}{gap}{line}" if line else text

    def add(self, extra: Any, path: Path, required: tuple[str, ...] = ()) -> None:
        """Merge a feature's message file (e.g. privacy.yaml): validated, with every key the
        feature uses (`required`), and no key defined twice."""
        if not isinstance(extra, dict):
            raise ContentError(path, 1, "must be a mapping of message keys to texts")
        for key in required:
            if key not in extra:
                raise ContentError(path, 1, f"missing message {key!r}")
        validate_templates(extra, path)
        for key in extra:
            if key in self._data:
                raise ContentError(path, 1, f"message key {key!r} is already defined")
        self._data.update(extra)


@dataclass
class Content:
    documents: list[Document]
    messages: Messages
    root: Node
    nodes: dict[str, Node]

    def node(self, node_id: str) -> Node | None:
        return self.nodes.get(node_id)


# ----------------------------------------------------------------------------------- loading

_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)
_HEADING = re.compile(r"^(#{1,3})\s+(.*\S)\s*$")
_BULLET = re.compile(r"^[-*•]\s+(.*\S)\s*$")  # "•": pasted from Word
_NUMBERED = re.compile(r"^\d{1,2}[.)]\s+\S")  # "1. Avoid the sun": its own line, as numbered


def _yaml_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None)
    return (mark.line + 1) if mark is not None else 1


class ContentLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: plain YAML silently keeps
    the last one, so an edit made to the first copy would never show."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *defaults" may be overridden on purpose
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: the base constructor reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice (first on line {first}); YAML would "
                    "silently use only the last one: keep one of them", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContentError(path, 0, f"cannot read: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=ContentLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ContentError(path, _yaml_line(exc), problem) from None


def _line_of_key(path: Path, key: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(f"{key}:"):
            return i
    return 1


def not_a_text(key: str, value: Any) -> str | None:
    """Why a YAML value is not the text the clinic meant, or None if it is text. Unquoted,
    +442079460000 is read as the number 442079460000 and `yes` as true."""
    if isinstance(value, str):
        return None
    if value is None:
        return f"{key} is empty: write its text after the colon, in quotes"
    kind = ("yes/no value" if isinstance(value, bool) else "number"
            if isinstance(value, int | float) else type(value).__name__)
    return (f"{key}: YAML reads this as a {kind} ({value}), not as text: put it in quotes, "
            f'e.g. {key}: "..."')


def check_text(path: Path | str, line: int, what: str, template: str,
               names: frozenset[str] | set[str] | None, caption: bool = False) -> str:
    """Check a template: sound {placeholders}, each one the code fills in for it (`names`;
    None: not checked), valid Telegram HTML, and room under Telegram's length limit.
    Returns the visible text, each placeholder shown as "x"."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ContentError(path, line, f"{what}: bad placeholder ({exc})") from None
    for name in fields:
        if names is not None and name not in names:
            known = ", ".join(f"{{{n}}}" for n in sorted(names)) or "none"
            raise ContentError(path, line, f"{what}: the bot does not fill in {{{name}}}, so "
                               f"patients would see it as written (placeholders here: {known}; "
                               "write {{ and }} for a brace)")
    try:
        sample = template.format(**{n: "x" for n in fields if n})
    except (ValueError, IndexError, KeyError) as exc:
        raise ContentError(path, line, f"{what}: bad placeholder ({exc})") from None
    try:
        plain = telegram_html.check(sample)
    except telegram_html.HTMLError as exc:
        raise ContentError(path, line, f"{what}: {exc}") from None
    budget, limit = (CAPTION_BUDGET, 1024) if caption else (TEXT_BUDGET, 4096)
    shown = len(plain.encode("utf-16-le")) // 2  # as Telegram counts: an emoji may count twice
    if shown > budget:
        raise ContentError(path, line, f"{what}: {shown} characters as shown, at most {budget} "
                           f"(Telegram refuses more than {limit}, and filled-in placeholders "
                           "need room): shorten it or split it")
    return plain


def validate_templates(data: dict[str, Any], path: Path) -> None:
    """Every text must be a string with placeholders the bot fills in, be valid Telegram HTML
    and fit Telegram's limits."""
    names = PLACEHOLDERS.get(path.name)  # None: a file this table does not know, unchecked
    for key, value in data.items():
        key = str(key)
        line = _line_of_key(path, key)
        if key in ("commands", "staff_commands"):
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and re.fullmatch(r"[a-z0-9_]{1,32}", k) and isinstance(v, str)
                and 1 <= len(v) <= 256 for k, v in value.items()
            ):
                raise ContentError(path, line, f"{key}: each is name (a-z, 0-9, _) -> description")
            continue
        if isinstance(value, dict | list):
            continue  # feature sections (lists, mappings) are validated by their owners
        if key == "clinic_contact" and value is None:
            continue  # left empty, as shipped: check-content and the start say so
        problem = not_a_text(key, value)
        if problem:
            raise ContentError(path, line, problem)
        if key in PLAIN_TEXT:
            continue  # plain text, escaped wherever it is used: "Smith & Jones" as written
        sample = check_text(path, line, key, value, names, caption=key.endswith("_caption"))
        if key.startswith("button_") and len(sample) > BUTTON_LIMIT:
            raise ContentError(path, line, f"{key}: button label longer than {BUTTON_LIMIT}")


def load_messages(path: Path) -> Messages:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ContentError(path, 1, "must be a mapping of message keys to texts")
    for key in REQUIRED_MESSAGES:
        if key not in data:
            raise ContentError(path, 1, f"missing message {key!r}")
    validate_templates(data, path)
    return Messages(data, path)


_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")


def parse_document(path: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Notepad, Word) is not text
    except OSError as exc:
        raise ContentError(path, 0, f"cannot read: {exc.strerror}") from None
    text = text.replace("\r\n", "\n")
    meta: dict[str, Any] = {}
    offset = 0
    front = _FRONT.match(text)
    if front:
        try:
            meta = yaml.load(front.group(1), Loader=ContentLoader) or {}  # noqa: S506
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ContentError(path, _yaml_line(exc) + 1,
                               f"invalid front matter: {problem}") from None
        if not isinstance(meta, dict):
            raise ContentError(path, 2, "front matter must be a mapping")
        offset = front.group(0).count("\n")
        text = text[front.end():]
    doc_id = str(meta.get("id") or path.stem)
    if not re.fullmatch(r"[a-z0-9_-]{1,32}", doc_id):
        raise ContentError(path, 2, f"id {doc_id!r}: use 1-32 of a-z, 0-9, _ and -")

    root: Node | None = None
    stack: list[Node] = []  # stack[i] is the open heading of level i+1
    current: Node | None = None
    para: list[str] = []
    bullets: list[str] = []
    numbered = False  # the pending list is numbered ("1. ..."), not bulleted
    block_line = 0  # where the pending paragraph or list started, for error messages

    def flush(line_no: int) -> None:
        nonlocal para, bullets, numbered
        if (para or bullets) and current is None:
            raise ContentError(path, block_line, "text before the first '# ' heading")
        if para:
            current.blocks.append(Block("para", para))  # type: ignore[union-attr]
        if bullets:
            current.blocks.append(  # type: ignore[union-attr]
                Block("numbered" if numbered else "bullets", bullets))
        para, bullets, numbered = [], [], False

    lines = text.split("\n")
    for idx, raw in enumerate(lines):
        line_no = idx + 1 + offset
        line = raw.rstrip()
        heading = _HEADING.match(line)
        if heading:
            flush(line_no)
            level, title = len(heading.group(1)), heading.group(2).strip()
            if level == 1:
                if root is not None:
                    raise ContentError(path, line_no, "only one '# ' title per document")
                root = Node(key=doc_id, title=title, label=title, source=str(path), line=line_no)
                stack, current = [root], root
                continue
            if root is None or len(stack) < level - 1:
                raise ContentError(path, line_no, f"heading level {level} without a parent heading")
            parent = stack[level - 2]
            if any(c.title == title for c in parent.children):
                raise ContentError(path, line_no, f"duplicate heading {title!r}")
            if len(title) > BUTTON_LIMIT:
                raise ContentError(path, line_no, f"heading longer than {BUTTON_LIMIT} characters")
            node = Node(key=f"{parent.key}/{title}", title=title, label=title, parent=parent,
                        source=str(path), line=line_no)
            parent.children.append(node)
            del stack[level - 1:]
            stack.append(node)
            current = node
            continue
        if not line.strip():
            flush(line_no)
            continue
        if line.lstrip().startswith("<!--"):
            continue
        if not para and not bullets:
            block_line = line_no
        bullet = _BULLET.match(line.strip())
        number = None if bullet else _NUMBERED.match(line.strip())
        if (bullet or number) and bullets and numbered != bool(number):
            flush(line_no)  # a numbered list after a bulleted one, or the other way
        if bullet or number:
            if para:
                flush(line_no)
            bullets.append(bullet.group(1) if bullet else line.strip())
            numbered = bool(number)
        else:
            if bullets:
                flush(line_no)
            para.append(line.strip())
    flush(len(lines) + offset)
    if root is None:
        raise ContentError(path, 1 + offset, "no '# ' title heading")
    for node in root.walk():
        if node is not root and not node.blocks and not node.children:
            raise ContentError(path, node.line, f"section {node.title!r} has no text")
        for block in node.blocks:
            for item in block.lines:
                tag = _TAG.search(item)
                if tag:
                    # The document is plain text (escaped when shown, so "<18" or "->" are
                    # fine); an HTML tag is a paste from a web page or Word.
                    at = text.find(tag.group(0))
                    raise ContentError(path, text.count("\n", 0, at) + 1 if at >= 0 else node.line,
                                       f"HTML tag {tag.group(0)!r} in {node.title!r}: the "
                                       "document is plain text (pasted from a web page?)")
    return Document(
        doc_id=doc_id,
        menu_label=str(meta.get("menu_label") or root.title)[:BUTTON_LIMIT],
        about_label=str(meta.get("about_label") or root.title)[:BUTTON_LIMIT],
        root=root,
        path=path,
    )


def _build_tree(documents: list[Document], messages: Messages) -> Node:
    """The menu: one document shows its sections at the top; several get a treatment list."""
    top = Node(key="", title=messages.raw("main_menu"), label="")

    def about(doc: Document, parent: Node) -> Node:
        return Node(key=f"{doc.doc_id}#about", title=doc.root.title, label=doc.about_label,
                    blocks=doc.root.blocks, parent=parent, source=str(doc.path), line=doc.root.line)

    def adopt(node: Node, parent: Node) -> Node:
        node.parent = parent
        return node

    if len(documents) == 1:
        doc = documents[0]
        top.children = [about(doc, top)] + [adopt(s, top) for s in doc.root.children]
    else:
        for doc in documents:
            entry = Node(key=doc.doc_id, title=doc.root.title, label=doc.menu_label, parent=top)
            entry.children = [about(doc, entry)] + [adopt(s, entry) for s in doc.root.children]
            top.children.append(entry)
    disclaimer = Node(key="#disclaimer", title=messages.raw("disclaimer_title"),
                      label=messages.get("button_disclaimer"), parent=top)
    top.children.append(disclaimer)
    return top


def load_content(content_dir: Path) -> Content:
    content_dir = Path(content_dir)
    if not content_dir.is_dir():
        raise ContentError(content_dir, 0, "content folder not found")
    messages = load_messages(content_dir / "messages.yaml")
    documents = [parse_document(p) for p in sorted(content_dir.glob("*.md"))]
    if not documents:
        raise ContentError(content_dir, 0, "no treatment document (*.md)")
    seen: dict[str, Path] = {}
    for doc in documents:
        if doc.doc_id in seen:
            raise ContentError(doc.path, 2, f"id {doc.doc_id!r} is also used by {seen[doc.doc_id]}")
        seen[doc.doc_id] = doc.path
    root = _build_tree(documents, messages)
    nodes: dict[str, Node] = {}
    for node in root.walk():
        if node.id in nodes:  # a 40-bit hash collision: vanishingly rare, but never silent
            raise ContentError(node.source, node.line, f"menu id clash for {node.title!r}")
        nodes[node.id] = node
    return Content(documents=documents, messages=messages, root=root, nodes=nodes)
