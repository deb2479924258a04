"""Free-text questions -> the best section of the clinic's document, with a confidence score.

No Telegram here. The engine only ever points at menu nodes of `Content`: the answer shown to a
patient is the node's own text, quoted, never generated.

Pipeline for one message (all offline; well under a millisecond for typical questions):
  1. normalise and tokenise (lower case, apostrophes dropped: "don't" -> dont);
  2. correct typos: a word the bot does not know is replaced by the closest known word
     (rapidfuzz ratio, only for words of 4+ letters, with a strict cut-off; two letters swapped;
     a red-flag or symptom word only from one letter too many or too few, never from a real
     word: a false alarm is made of "finding" -> fainting);
  3. red flags (content/qa.yaml): if any phrase matches, stop - the patient must get help now;
     then messages that are not questions for the document: text mostly in a script the bot
     cannot read or clearly in another language (unreadable), smalltalk, a patient reporting
     their own symptom (symptom), a request to book (booking);
  4. lay phrases -> the document's words (synonyms, longest phrase first), stop words dropped;
  5. BM25 over the nodes that have text (title and parent title count too), snowball stemming,
     and over sections made only of short items by their heading (answered whole: SectionAnswer);
  6. confidence = share of the question's weight (idf) that the best node explains; a word the
     document never uses (a price, a weekday, another treatment) weighs as much as the rarest
     document word. Below the threshold the bot does not answer but offers a handoff to staff.
"""

from __future__ import annotations

import html
import math
import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import snowballstemmer
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from bot import telegram_html
from bot.content import Block, Content, ContentError, Node, fill, load_yaml

QA_FILE = "qa.yaml"
REQUIRED_TEXTS = (
    "answer", "answer_more", "no_answer", "empty_question", "greeting", "thanks", "help",
    "red_flag", "red_flag_staff_alerted", "unreadable", "staff_unreadable", "symptom_report",
    "booking", "booking_handoff",
    "button_ask_clinic", "button_send_to_staff", "button_main_menu", "handoff_done",
    "handoff_already", "handoff_failed", "question_unknown", "reply_to_patient", "staff_question",
    "staff_red_flag", "button_reply", "button_cancel_reply", "staff_reply_prompt",
    "staff_reply_started", "staff_reply_placeholder", "staff_reply_expired",
    "staff_reply_sent", "staff_reply_undeliverable", "staff_reply_cancelled", "staff_reply_usage",
    "staff_question_not_found", "staff_reply_empty", "staff_console_button", "staff_open_title",
    "staff_open_empty", "staff_open_item", "staff_open_more", "staff_reply_followup", "button_reply_to", "stat_questions_week",
    "stat_questions_handed_off_week", "stat_red_flags_week",
)
BUTTON_LIMIT = 64
# A section answered whole must fit one answer uncut (handlers/questions.py QUOTE_BUDGET).
SECTION_QUOTE_LIMIT = 2000
SMALLTALK_KINDS = ("greeting", "thanks", "help", "empty")  # empty: "ok", shows the menu

_STEMMER = snowballstemmer.stemmer("english")


# Words the stemmer merges with another whose meaning differs: "effective" became "effect",
# and "how effective is it" was answered with the Side Effects section.
_OWN_STEMS = {"effective": "effective", "effectiveness": "effective", "effectively": "effective",
              "ineffective": "ineffective"}


@lru_cache(maxsize=20000)
def stem(word: str) -> str:
    return _OWN_STEMS.get(word) or _STEMMER.stemWord(word)


def flag_stem(word: str) -> str:
    """Stemming for red flags: short words stay as typed ("its" must not become "it")."""
    return stem(word) if len(word) > 3 else word


_TOKEN = re.compile(r"[a-z0-9]+")
_ACCENT = re.compile("[\u0300-\u036f]")


def tokenize(text: str) -> list[str]:
    """Lower-case words; apostrophes of contractions vanish so "can't" is one token (cant);
    accents too, so "están" is one word (estan), not "est" and "n"."""
    text = unicodedata.normalize("NFKC", text).lower()
    # An English contraction joins ("can't" -> cant); any other apostrophe parts words, as in
    # "un'emergenza" or "j'ai".
    text = re.sub(r"['’`´](?=(?:t|s|re|ve|ll|d|m)\b)", "", text)
    text = re.sub(r"['’`´]", " ", text)
    if not text.isascii():
        text = _ACCENT.sub("", unicodedata.normalize("NFKD", text.replace("ß", "ss")))
    return _TOKEN.findall(text)


# Common words of Spanish, German, French, Italian and Portuguese that English does not use
# (so not "die", "per", "con", "la", "no"). Two or more, outnumbering English function words:
# the message is not in English, whatever a few of its words look like to the typo corrector.
_FOREIGN = frozenset("""
    el los las del que por para una unos unas mis tengo puedo estoy esta estan muy pero como
    cuanto cuanta cuantos cuantas cuesta necesito tratamiento hola gracias donde cuando porque
    tambien despues puede sesiones duele usted
    ich und nicht ist das der dem mein meine meiner kann habe mit auf wie viele wir
    sie sind ein eine einen auch nach bitte danke brauche kosten kostet sehr noch oder
    aber wieviel behandlung sitzungen
    je est ce les des une mon mes suis pas ai avec pour ca quoi combien bonjour merci oui vous
    nous elle sont fait peux dans seances traitement
    il che sono ho mio mia quanto quanta costa grazie trattamento sedute dopo della delle nel
    molto posso
    eu nao meu minha estou tenho com uma os quantas quantos sessoes preciso obrigado obrigada
    voce isso doi ola muito
""".split())
_ENGLISH = frozenset("""
    the a an is are am i im you it its my me do does did can will what whats how and to of in
    on for with have has had be this that after before not yes please thanks hello hi when
    where why which who if or but so dont cant your we they he she was would should could
""".split())


def unreadable(text: str) -> bool:
    """Mostly letters of a script the bot cannot read (Cyrillic, Chinese, ...), or Latin
    letters clearly in another language (_FOREIGN): the tokenizer sees nothing or only a stray
    English word in them, so they must not pass for "empty" or be answered as English."""
    if not text.isascii():
        latin = other = 0
        for char in text[:4096]:
            if char.isalpha():
                base = unicodedata.normalize("NFKD", char)[0].lower()  # é -> e: still readable
                if "a" <= base <= "z":
                    latin += 1
                else:
                    other += 1
        if other > latin:
            return True
    words = tokenize(text[:4096])
    foreign, english = sum(w in _FOREIGN for w in words), sum(w in _ENGLISH for w in words)
    # Two such words with no English one, or clearly more: "Mia and Elle want botox" and
    # "Costa del Sol trip after filler?" are English with names in them.
    return (foreign >= 2 and english == 0) or (foreign >= 4 and foreign > 2 * english)


# Emoji variants that change nothing for a thumbs-up: variation selector, skin tones, joiner.
_EMOJI_MODIFIERS = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]")


def _symbols(text: str) -> set[str]:
    """The symbols of a message without words (emoji), spaces and punctuation left out."""
    return {c for c in _EMOJI_MODIFIERS.sub("", text[:200])
            if not c.isspace() and not unicodedata.category(c).startswith("P")}


_CLAUSE = re.compile(r"[.,;:!?()\n]+")


def _phrase_index(phrases: list[tuple[str, ...]]) -> dict[str, list[tuple[str, ...]]]:
    index: dict[str, list[tuple[str, ...]]] = {}
    for phrase in phrases:
        index.setdefault(phrase[0], []).append(phrase)
    return index


def _find(tokens: list[str], index: dict[str, list[tuple[str, ...]]]) -> list[int]:
    """Where phrases of `index` occur in `tokens`, as written and in order (start positions)."""
    return [i for i, t in enumerate(tokens) for p in index.get(t, ())
            if tuple(tokens[i:i + len(p)]) == p]


# --------------------------------------------------------------------------------- config

@dataclass
class SymptomRules:
    """When a clause is the patient reporting their own symptom ("I have a rash after the
    injection", "still swollen after 2 weeks"), not asking about one ("how long does swelling
    last?"): a symptom word, and a marker of a report in the same clause. A quote of the
    document would read as reassurance; staff should see it."""

    symptoms: frozenset[str]  # flag stems
    acute: frozenset[str]  # flag stems: never a goal ("my throat hurts"), no `context` needed
    reports: dict[str, list[tuple[str, ...]]]  # "i have", "still", "it is": a report
    personal: dict[str, list[tuple[str, ...]]]  # "my", "im": a report unless hypothetical
    unless: dict[str, list[tuple[str, ...]]]  # "if", "prone": never a report
    unless_personal: dict[str, list[tuple[str, ...]]]  # "will", "scared of": not for personal
    questions: frozenset[str]  # "will I have bruising?": a marker after these asks
    context: dict[str, list[tuple[str, ...]]]  # "after", "since the injections": after a visit


@dataclass
class BookingRules:
    phrases: list[tuple[str, ...]]  # flag stems, matched like red flags (near, any order)
    unless: frozenset[str]  # flag stems: cancel, reschedule (staff), not a new booking


@dataclass
class RedFlag:
    category: str
    phrase: str
    stems: tuple[str, ...]
    symbols: frozenset[str] = frozenset()  # an emoji flag ("🆘"): no words, found anywhere


@dataclass
class QAConfig:
    texts: dict[str, str]
    threshold: float
    unknown_word_weight: float
    not_covered_weight: float
    reply_window_minutes: int
    stopwords: frozenset[str]
    not_covered: frozenset[str]
    synonyms: dict[tuple[str, ...], tuple[str, ...]]  # stemmed phrase -> stemmed document words
    synonym_source: dict[tuple[str, ...], str]  # stemmed phrase -> as written, for errors
    red_flags: list[RedFlag]
    smalltalk: dict[str, str]  # normalised whole message -> kind
    smalltalk_symbols: dict[str, frozenset[str]] = field(default_factory=dict)  # kind -> emoji
    symptoms: SymptomRules | None = None
    booking: BookingRules | None = None
    raw_words: frozenset[str] = frozenset()  # every word the config itself knows, for typos
    # Words a typo may become only by one plain slip (red-flag and symptom words): a real word
    # one letter away ("fait", "finding") must not raise an alarm.
    guarded: frozenset[str] = frozenset()
    exact: frozenset[str] = frozenset()  # other languages' flag words: matched as typed only
    real_words: frozenset[str] = frozenset()  # never corrected, never a correction either
    path: Path = Path(QA_FILE)

    def text(self, key: str, **params: object) -> str:
        import html

        values = {k: html.escape(str(v), quote=False) for k, v in params.items()}
        return fill(self.texts[key], values, f"qa.yaml:{key}")


def _line_of(path: Path, needle: str) -> int:
    try:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if needle in line:
                return i
    except OSError:
        pass
    return 1


def _words(value: Any, path: Path, key: str) -> list[str]:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    if not isinstance(value, str):
        raise ContentError(path, _line_of(path, f"{key}:"), f"{key}: expected words")
    return tokenize(value)


def load_qa_config(path: Path) -> QAConfig:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ContentError(path, 1, "must be a mapping (texts, synonyms, red_flags, ...)")
    for key in ("texts", "confidence_threshold", "stopwords", "synonyms", "red_flags"):
        if key not in data:
            raise ContentError(path, 1, f"missing {key!r}")

    texts = data["texts"]
    if not isinstance(texts, dict):
        raise ContentError(path, _line_of(path, "texts:"), "texts: expected a mapping")
    formatter = string.Formatter()
    for key in REQUIRED_TEXTS:
        if key not in texts:
            raise ContentError(path, _line_of(path, "texts:"), f"missing text {key!r}")
    for key, value in texts.items():
        line = _line_of(path, f"  {key}:")
        if not isinstance(value, str) or not value.strip():
            raise ContentError(path, line, f"{key}: expected a text")
        try:
            names = [f for _, f, _, _ in formatter.parse(value) if f]
            sample = value.format(**{n: "x" for n in names})
            telegram_html.check(sample)
        except (ValueError, IndexError) as exc:
            raise ContentError(path, line, f"{key}: {exc}") from None
        if key.startswith("button_") and len(sample) > BUTTON_LIMIT:
            raise ContentError(path, line, f"{key}: button label longer than {BUTTON_LIMIT}")

    threshold = data["confidence_threshold"]
    if not isinstance(threshold, int | float) or not 0 < threshold < 1:
        raise ContentError(path, _line_of(path, "confidence_threshold:"),
                           "confidence_threshold: a number between 0 and 1")
    weights = {}
    for key, default, top in (("unknown_word_weight", 0.5, 1.0), ("not_covered_weight", 1.5, 5.0)):
        value = data.get(key, default)
        if not isinstance(value, int | float) or not 0 < value <= top:
            raise ContentError(path, _line_of(path, f"{key}:"), f"{key}: a number in (0, {top}]")
        weights[key] = float(value)
    window = data.get("reply_window_minutes", 30)
    if not isinstance(window, int) or not 1 <= window <= 24 * 60:
        raise ContentError(path, _line_of(path, "reply_window_minutes:"),
                           "reply_window_minutes: whole minutes, 1 to 1440")

    stopwords = frozenset(_words(data["stopwords"], path, "stopwords"))
    not_covered = frozenset(_words(data.get("not_covered", ""), path, "not_covered"))
    raw_words: set[str] = set(stopwords) | set(not_covered)
    real_words = frozenset(_words(data.get("real_words") or "", path, "real_words"))
    stopword_stems = {stem(w) for w in stopwords}

    synonyms: dict[tuple[str, ...], tuple[str, ...]] = {}
    synonym_source: dict[tuple[str, ...], str] = {}
    if not isinstance(data["synonyms"], dict):
        raise ContentError(path, _line_of(path, "synonyms:"), "synonyms: expected a mapping")
    for lay, doc_words in data["synonyms"].items():
        line = _line_of(path, f"  {lay}:")
        lay_tokens = tokenize(str(lay))
        target = _words(doc_words, path, str(lay)) if doc_words is not None else []
        if not lay_tokens or not target:
            raise ContentError(path, line, f"synonym {lay!r}: both sides need words")
        raw_words.update(lay_tokens)
        key = tuple(stem(t) for t in lay_tokens)
        if len(key) == 1 and key[0] in stopword_stems:
            raise ContentError(path, line, f"synonym {lay!r} stems like a stop word")
        if key in synonyms:
            raise ContentError(path, line, f"synonym {lay!r} is given twice")
        synonyms[key] = tuple(stem(t) for t in target if t not in stopwords)
        synonym_source[key] = str(lay)
        if not synonyms[key]:
            raise ContentError(path, line, f"synonym {lay!r}: only stop words on the right")

    red_flags = _red_flags(data["red_flags"], "red_flags", path)
    english_words = {t for f in red_flags for t in tokenize(f.phrase)}
    other = data.get("red_flags_other_languages")
    foreign = _red_flags(other, "red_flags_other_languages", path) if other is not None else []
    exact = {t for f in foreign for t in tokenize(f.phrase)} - english_words
    raw_words.update(english_words)
    red_flags += foreign

    smalltalk: dict[str, str] = {}
    symbols: dict[str, set[str]] = {}
    for kind, phrases in (data.get("smalltalk") or {}).items():
        if kind not in SMALLTALK_KINDS or not isinstance(phrases, list):
            raise ContentError(path, _line_of(path, f"  {kind}:"),
                               f"smalltalk.{kind}: use {', '.join(SMALLTALK_KINDS)} with a list")
        for phrase in phrases:
            words = " ".join(tokenize(str(phrase)))
            if words:
                smalltalk[words] = str(kind)
            elif _symbols(str(phrase)):  # an emoji: it has no words to match
                symbols.setdefault(str(kind), set()).update(_symbols(str(phrase)))

    symptoms = _symptom_rules(data.get("symptom_reports"), path, raw_words)
    booking = _booking_rules(data.get("booking_requests"), path, raw_words)
    guarded = set(english_words)
    if symptoms is not None:
        for key in ("symptoms", "acute"):
            guarded.update(_words(data["symptom_reports"].get(key) or [], path, key))

    return QAConfig(
        texts={str(k): v for k, v in texts.items()}, threshold=float(threshold), **weights,
        reply_window_minutes=window, stopwords=stopwords, not_covered=not_covered,
        synonyms=synonyms, synonym_source=synonym_source, red_flags=red_flags, smalltalk=smalltalk,
        smalltalk_symbols={k: frozenset(v) for k, v in symbols.items()},
        symptoms=symptoms, booking=booking, raw_words=frozenset(raw_words),
        guarded=frozenset(guarded), exact=frozenset(exact), real_words=real_words, path=path,
    )


def _red_flags(section: Any, name: str, path: Path) -> list[RedFlag]:
    if not isinstance(section, dict) or not section:
        raise ContentError(path, _line_of(path, f"{name}:"),
                           f"{name}: a mapping of category -> list of phrases")
    out: list[RedFlag] = []
    for category, phrases in section.items():
        line = _line_of(path, f"  {category}:")
        if not isinstance(phrases, list) or not phrases:
            raise ContentError(path, line, f"{name}.{category}: expected a list of phrases")
        for phrase in phrases:
            tokens = tokenize(str(phrase))
            symbols = frozenset() if tokens else frozenset(_symbols(str(phrase)))
            if not tokens and not symbols:
                raise ContentError(path, _line_of(path, f"- {phrase}"), "empty red-flag phrase")
            out.append(RedFlag(str(category), str(phrase), tuple(flag_stem(t) for t in tokens),
                               symbols))
    return out


def _phrases(section: dict, name: str, key: str, path: Path,
             raw_words: set[str]) -> list[tuple[str, ...]]:
    """`name`.`key`: a list of phrases (tokenized), its words added to the known words."""
    value = section.get(key)
    line = _line_of(path, f"{name}:")
    line += next((i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines()[line:])
                  if text.startswith(f"  {key}:")), 0) + 1  # the key inside its own section
    if not isinstance(value, list) or not value:
        raise ContentError(path, line, f"{name}.{key}: expected a list of phrases")
    out = []
    for phrase in value:
        tokens = tokenize(str(phrase))
        if not tokens:
            raise ContentError(path, line, f"{name}.{key}: empty phrase {phrase!r}")
        raw_words.update(tokens)  # known words: a typo is corrected to them, never away
        out.append(tuple(tokens))
    return out


def _symptom_rules(section: Any, path: Path, raw_words: set[str]) -> SymptomRules | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ContentError(path, _line_of(path, "symptom_reports:"),
                           "symptom_reports: expected a mapping")
    # "acute" came later: a clinic's qa.yaml from before it still loads (none are acute).
    lists = {k: _phrases(section, "symptom_reports", k, path, raw_words)
             if k != "acute" or "acute" in section else []
             for k in ("symptoms", "acute", "reports", "personal", "unless", "unless_personal",
                       "questions", "context")}
    return SymptomRules(
        symptoms=frozenset(flag_stem(w) for p in lists["symptoms"] + lists["acute"] for w in p),
        acute=frozenset(flag_stem(w) for p in lists["acute"] for w in p),
        reports=_phrase_index(lists["reports"]), personal=_phrase_index(lists["personal"]),
        unless=_phrase_index(lists["unless"]),
        unless_personal=_phrase_index(lists["unless_personal"]),
        questions=frozenset(w for p in lists["questions"] for w in p),
        context=_phrase_index(lists["context"]))


def _booking_rules(section: Any, path: Path, raw_words: set[str]) -> BookingRules | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ContentError(path, _line_of(path, "booking_requests:"),
                           "booking_requests: expected a mapping")
    phrases = _phrases(section, "booking_requests", "phrases", path, raw_words)
    unless = _phrases(section, "booking_requests", "unless", path, raw_words)
    return BookingRules([tuple(flag_stem(t) for t in p) for p in phrases],
                        frozenset(flag_stem(t) for p in unless for t in p))


# --------------------------------------------------------------------------------- engine

class _Heading(Block):
    """An item's heading inside a section answered whole, bold as in the menu's "read all"."""

    def html(self) -> str:
        return f"<b>{html.escape(self.plain(), quote=False)}</b>"


class SectionAnswer(Node):
    """A section whose text is all in its short items ("Risks and Considerations": Side
    Effects, Allergic Reactions, ...), as the answer to a question about the section as a whole:
    every item's heading and text, quoted as written. It stands for the menu node itself (same
    key, id and buttons), so it compares equal to it."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.key == self.key

    __hash__ = None  # type: ignore[assignment]  # like Node

    @classmethod
    def of(cls, section: Node) -> SectionAnswer | None:
        items = section.children
        if section.blocks or len(items) < 2 or any(i.children or not i.blocks for i in items):
            return None  # has text of its own (answered as it is), or is not a list of items
        blocks: list[Block] = []
        for item in items:
            blocks += [_Heading("heading", [item.title]), *item.blocks]
        if sum(len(b.html()) + 2 for b in blocks) > SECTION_QUOTE_LIMIT:
            return None
        return cls(key=section.key, title=section.title, label=section.label, blocks=blocks,
                   children=section.children, parent=section.parent, source=section.source,
                   line=section.line)


@dataclass
class Match:
    node: Node
    score: float
    confidence: float


@dataclass
class Result:
    """kind: answer | unknown (below threshold) | red_flag | greeting | thanks | help | empty |
    unreadable (a script the bot cannot read) | symptom (the patient reports their own
    symptom) | booking (asks to book)."""

    kind: str
    matches: list[Match] = field(default_factory=list)
    red_flag: RedFlag | None = None
    confidence: float = 0.0

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None


@dataclass
class _Concept:
    """One idea in the question: a word, or the document words a lay phrase stands for."""

    stems: tuple[str, ...]
    known: bool  # False: a word the document never uses
    not_covered: bool = False


class QAEngine:
    K1 = 1.2
    B = 0.5  # short nodes: length normalisation halved (measured: 0.75 ranks the intro lower)
    TITLE_BOOST = 2  # a node's own title counts this many times

    def __init__(self, content: Content, config: QAConfig) -> None:
        self.content = content
        self.config = config
        items = [n for n in content.root.walk() if n.blocks and n.key != "#disclaimer"]
        # A section is found by its heading only, so it wins when the question is about the
        # heading's topic ("what are the risks?") more than about any one item's text; and
        # without the document's name, which says nothing of the topic ("Uses of Mesotherapy"
        # must not answer "what is mesotherapy?").
        sections: list[tuple[SectionAnswer, list[str]]] = []
        for doc in content.documents:
            name = set(tokenize(doc.root.title))
            for node in doc.root.walk()[1:]:
                section = SectionAnswer.of(node)
                if section is not None:
                    sections.append((section, [w for w in self._heading_words(node)
                                               if w not in name]))
        self.nodes: list[Node] = items + [s for s, _ in sections]  # a tie goes to the item
        # A question naming one of a section's items ("recovery time": Initial Recovery) gets
        # that item, not the whole section: doc index -> stems of its items' own headings.
        self.item_words = {len(items) + k: frozenset(
            stem(w) for i in s.children for w in self._heading_words(i) if w not in config.stopwords)
            for k, (s, _) in enumerate(sections)}
        docs: list[Counter[str]] = []
        surface: set[str] = set()
        for words in [self._node_words(n) for n in items] + [w for _, w in sections]:
            surface.update(words)
            docs.append(Counter(stem(w) for w in words if w not in config.stopwords))
        self.docs = docs
        self.doc_len = [sum(d.values()) for d in docs]
        # Word statistics from the items alone: the sections repeat their words.
        n = len(items)
        self.avg_len = sum(self.doc_len[:n]) / max(1, n)
        df: Counter[str] = Counter()
        for d in docs[:n]:
            df.update(d.keys())
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.max_idf = max(self.idf.values(), default=1.0)
        self._check_synonyms()
        # Words a typo may be corrected to: the document's and the config's own words.
        self.vocabulary = sorted(surface | set(config.raw_words))
        self._known = frozenset(self.vocabulary) | config.exact | config.real_words
        self._targets = frozenset(self.vocabulary)
        self._plain = [w for w in self.vocabulary if w not in config.guarded]
        self._guarded = [w for w in self.vocabulary if w in config.guarded]
        self._symbol_flags = [f for f in config.red_flags if f.symbols]
        self._word_flags = [f for f in config.red_flags if f.stems]
        self._typo_cache: dict[str, str] = {}
        self._max_phrase = max((len(k) for k in config.synonyms), default=1)

    @staticmethod
    def _heading_words(node: Node) -> list[str]:
        words = tokenize(re.sub(r"^\d+\.\s*", "", node.title)) * QAEngine.TITLE_BOOST
        if node.label and node.label != node.title:
            words += tokenize(node.label)
        return words

    @staticmethod
    def _node_words(node: Node) -> list[str]:
        words = QAEngine._heading_words(node)
        if node.parent is not None and node.parent.title and node.parent.parent is not None:
            words += tokenize(node.parent.title)
        for block in node.blocks:
            words += tokenize(block.plain())
        return words

    def _check_synonyms(self) -> None:
        """A synonym pointing at a word the document never uses is dead: fail at start."""
        path = self.config.path
        for lay, target in self.config.synonyms.items():
            missing = [t for t in target if t not in self.idf]
            if missing:
                written = self.config.synonym_source[lay]
                raise ContentError(path, _line_of(path, f"  {written}:"),
                                   f"synonym {written!r}: {missing} not in the document")

    # -- steps -------------------------------------------------------------------------------
    def correct(self, token: str) -> str:
        if token in self._known or len(token) < 4 or token.isdigit():
            return token
        cached = self._typo_cache.get(token)
        if cached is not None:
            return cached
        fixed = self._swapped(token) or self._closest(token)
        if len(self._typo_cache) < 10000:
            self._typo_cache[token] = fixed
        return fixed

    def _swapped(self, token: str) -> str | None:
        """Two letters typed the wrong way round ("cnat", "mnay"): the commonest slip, which
        the ratio below scores too low for short words."""
        for i in range(len(token) - 1):
            word = token[:i] + token[i + 1] + token[i] + token[i + 2:]
            if word in self._targets:
                return word
        return None

    def _closest(self, token: str) -> str:
        cutoff = 85 if len(token) <= 5 else 80
        found = process.extractOne(token, self._plain, scorer=fuzz.ratio, score_cutoff=cutoff)
        fixed, score = (found[0], found[1]) if found else (token, 0.0)
        # A red-flag or symptom word only from one slip in a longer word, first letter kept:
        # a letter too many, too few or mistyped ("feaver", "swollwn", "bleedinf"). A real word
        # one letter away ("fait", "finding", "smelling") is listed in qa.yaml real_words and
        # never corrected.
        if len(token) >= 5:
            for word, _, _ in process.extract(token, self._guarded, scorer=fuzz.ratio,
                                              score_cutoff=max(cutoff - 10, score + 0.01),
                                              limit=5):
                if word[0] == token[0] and Levenshtein.distance(token, word) == 1:
                    return word
        return fixed

    def red_flag(self, stems: list[str]) -> RedFlag | None:
        present = set(stems)
        for flag in self._word_flags:
            # The superset test inline: most flags fail it, and this runs for every message.
            if present.issuperset(flag.stems) and _near(stems, present, flag.stems):
                return flag
        return None

    def symptom_report(self, text: str, tokens: list[str]) -> bool:
        """Does a clause of the message report the patient's own symptom (SymptomRules)?
        `tokens`: the whole message's (corrected); without a symptom word, no clause is read."""
        rules = self.config.symptoms
        if rules is None or not any(flag_stem(t) in rules.symptoms for t in tokens):
            return False
        # A goal ("I have puffy eyes, can it help?") needs a word of after-treatment; pain,
        # numbness, a reaction are never goals ("my throat hurts").
        if not _find(tokens, rules.context) and not any(flag_stem(t) in rules.acute for t in tokens):
            return False
        budget = 400
        for clause in _CLAUSE.split(text[:4096]):
            words = [self.correct(t) for t in tokenize(clause)[:budget]]
            if self._reports_symptom(words):
                return True
            budget -= len(words)
            if budget <= 0:
                break
        return False

    def _reports_symptom(self, tokens: list[str]) -> bool:
        rules = self.config.symptoms
        assert rules is not None
        if not any(flag_stem(t) in rules.symptoms for t in tokens) or _find(tokens, rules.unless):
            return False
        # "I have a rash", "still swollen"; not "will I have bruising?" (asked, not told).
        if any(not rules.questions.intersection(tokens[max(0, i - 2):i])
               for i in _find(tokens, rules.reports)):
            return True
        # "my face is swollen"; not "will my face be swollen?", "I'm scared of pain".
        return bool(_find(tokens, rules.personal)) and not _find(tokens, rules.unless_personal)

    def booking(self, tokens: list[str]) -> bool:
        rules = self.config.booking
        if rules is None:
            return False
        stems = [flag_stem(t) for t in tokens]
        present = set(stems)
        return not present & rules.unless and any(_near(stems, present, p) for p in rules.phrases)

    def concepts(self, tokens: list[str]) -> list[_Concept]:
        cfg = self.config
        stems = [stem(t) for t in tokens]
        out: list[_Concept] = []
        i = 0
        while i < len(tokens):
            for size in range(min(self._max_phrase, len(tokens) - i), 0, -1):
                target = cfg.synonyms.get(tuple(stems[i:i + size]))
                if target is not None:
                    out.append(_Concept(target, True))
                    i += size
                    break
            else:
                token = tokens[i]
                i += 1
                if token in cfg.stopwords or token.isdigit():
                    continue
                if token in cfg.not_covered:
                    out.append(_Concept((stems[i - 1],), False, not_covered=True))
                else:
                    out.append(_Concept((stems[i - 1],), stems[i - 1] in self.idf))
        return out

    def _term(self, doc: int, term: str) -> float:
        """BM25 contribution of one stem to one node."""
        tf = self.docs[doc].get(term)
        if not tf:
            return 0.0
        norm = self.K1 * (1 - self.B + self.B * self.doc_len[doc] / self.avg_len)
        return self.idf[term] * tf * (self.K1 + 1) / (tf + norm)

    def _score(self, doc: int, concepts: list[_Concept]) -> tuple[float, float]:
        """(BM25, explained weight): each concept counts once, by its best-matching stem."""
        score = explained = 0.0
        d = self.docs[doc]
        for c in concepts:
            if not c.known:
                continue
            score += max(self._term(doc, s) for s in c.stems)
            explained += max((self.idf[s] for s in c.stems if s in d), default=0.0)
        return score, explained

    def _weight(self, concept: _Concept) -> float:
        if concept.not_covered:
            return self.max_idf * self.config.not_covered_weight
        if not concept.known:
            return self.max_idf * self.config.unknown_word_weight
        return max(self.idf.get(s, 0.0) for s in concept.stems)

    # -- the question --------------------------------------------------------------------------
    def red_flag_in(self, text: str, *, history: bool = False) -> RedFlag | None:
        """Red flags anywhere in the text, however long (an urgent line can end a long message).
        history: the text tells the past (intake's allergy history): "swollen lips and
        difficulty breathing as a child" is what happened then; a flag counts only with a sign
        of now ("now", "my lips are swelling", "my lips are swollen")."""
        for flag in self._symbol_flags:  # "🆘" means now, even in a history answer
            if not flag.symbols.isdisjoint(text):
                return flag
        words = tokenize(text)
        head = [self.correct(t) for t in words[:400]]  # typo correction only where it is cheap
        flag = self.red_flag([flag_stem(t) for t in head + words[400:]])
        if flag is None or not history or _happening_now(head + words[400:]):
            return flag
        return flag if _is_now_of(head + words[400:], flag) else None

    def ask(self, text: str, limit: int = 3) -> Result:
        words = tokenize(text)[:400]
        tokens = [self.correct(t) for t in words]
        flag = self.red_flag_in(text)
        if flag is not None:
            return Result("red_flag", red_flag=flag)
        if unreadable(text):
            # Not "empty": it may be anything, an emergency too (handlers/questions.py).
            return Result("unreadable")
        if not tokens:
            return Result(self._emoji_smalltalk(text) or "empty")
        # As typed first: typo correction would turn "thank you" into "thanks you".
        small = self.config.smalltalk.get(" ".join(words)) \
            or self.config.smalltalk.get(" ".join(tokens))
        if small is not None:
            return Result(small)
        if self.symptom_report(text, tokens):
            return Result("symptom")
        if self.booking(tokens):
            return Result("booking")
        concepts = self.concepts(tokens)
        if not concepts:
            # Only small words: "ok?" shows the menu, but "how much is it" is a real question.
            return Result("unknown" if len(tokens) >= 3 else "empty")
        total = sum(self._weight(c) for c in concepts)
        asked = {s for c in concepts for s in c.stems}
        scored = sorted(((*self._score(i, concepts), i) for i in range(len(self.docs))
                         if not asked & self.item_words.get(i, frozenset())),
                        key=lambda x: (-x[0], x[2]))
        matches = [Match(self.nodes[i], score, explained / total if total else 0.0)
                   for score, explained, i in scored[:limit] if score > 0]
        if not matches:
            return Result("unknown")
        confidence = matches[0].confidence
        kind = "answer" if confidence >= self.config.threshold else "unknown"
        return Result(kind, matches=matches, confidence=confidence)

    def _emoji_smalltalk(self, text: str) -> str | None:
        """👍 or 🙏 alone is thanks (qa.yaml smalltalk); other symbols stay "empty"."""
        symbols = _symbols(text)
        for kind, known in self.config.smalltalk_symbols.items():
            if symbols and symbols <= known:
                return kind
        return None


def _near(stems: list[str], present: set[str], phrase: tuple[str, ...]) -> bool:
    """All words of `phrase` within a few words of each other, in any order."""
    if not present.issuperset(phrase):
        return False
    need = set(phrase)
    width = len(phrase) + 3
    return any(s in need and need.issubset(stems[i:i + width]) for i, s in enumerate(stems))


_NOW = frozenset({"now", "currently", "today", "tonight", "moment", "happening", "started",
                  "starting", "suddenly", "cant", "cannot"})
_BE = frozenset({"am", "is", "are", "im", "its", "theyre", "keeps", "keep"})


def _happening_now(words: list[str]) -> bool:
    """A sign the words tell the present: a word of now, or "is/are ...ing" ("are swelling")."""
    return bool(_NOW.intersection(words)) or any(
        w in _BE and any(n.endswith("ing") for n in words[i + 1:i + 3]) for i, w in enumerate(words))


def _is_now_of(words: list[str], flag: RedFlag) -> bool:
    """The flag's words in the present, about the patient: "my ... is/are" just before one
    ("my lips are swollen", "my throat is tight"), where a history says "were swollen", and an
    allergy's description "the reaction is hives" names no part of them."""
    return any(w in _BE and "my" in words[max(0, i - 3):i]
               and any(flag_stem(n) in flag.stems for n in words[i + 1:i + 3])
               for i, w in enumerate(words))


def build_qa(content: Content, content_dir: Path) -> QAEngine:
    return QAEngine(content, load_qa_config(Path(content_dir) / QA_FILE))
