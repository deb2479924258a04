"""Content loading: the document becomes the menu; broken content fails with file:line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot import telegram_html
from bot.content import ContentError, load_content
from bot.menu import TEXT_LIMIT, MenuRenderer, paginate, parse_callback

CONTENT = Path(__file__).resolve().parent.parent / "content"
MEDICAL_TERMS = [
    "inject", "needle", "fat", "cellulite", "anesthe", "infection", "swelling", "bruis", "redness",
    "recover", "downtime", "result", "session", "safe", "painless", "guarantee", "cure", "vitamin",
    "hormone", "mg", "ml", "price", "cost", "€", "$", "£", "side effect", "allerg", "pregnan",
]


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(CONTENT, target)
    return target


def test_real_content_loads_into_the_expected_menu():
    content = load_content(CONTENT)
    labels = [n.label for n in content.root.children]
    assert labels[:6] == ["What is mesotherapy?", "Uses of Mesotherapy", "The Mesotherapy Procedure",
                          "Benefits of Mesotherapy", "Recovery After Mesotherapy",
                          "Risks and Considerations"]
    uses = content.root.children[1]
    assert [c.title for c in uses.children] == [
        "1. Facial Rejuvenation", "2. Fat Reduction", "3. Cellulite Treatment",
        "4. Hair Restoration", "5. Stretch Mark Reduction"]


def test_ui_texts_make_no_medical_claims():
    content = load_content(CONTENT)
    offenders = []
    for key, value in content.messages._data.items():
        texts = value.values() if isinstance(value, dict) else [value]
        for text in texts:
            if not isinstance(text, str):
                continue
            low = text.lower()
            offenders += [(key, term) for term in MEDICAL_TERMS if re.search(r"\b" + re.escape(term), low)]
    assert offenders == []


def test_every_screen_fits_telegram_limits():
    content = load_content(CONTENT)
    menu = MenuRenderer(content)
    for node in content.nodes.values():
        for screen in (menu.node(node), menu.read_all(node)):
            assert len(telegram_html.check(screen.text)) <= TEXT_LIMIT
            for row in screen.rows:
                for label, data in row:
                    assert len(data.encode()) <= 64 and label
                    assert parse_callback(data) is not None


def test_a_saved_bom_and_comparison_signs_in_the_text_are_fine(content_dir: Path):
    """Notepad and Word save a BOM ("text before the first heading" pointed at a "---" line);
    "under 18 (<18)" and "->" are text, shown escaped ("markup" pointed at the heading)."""
    doc = content_dir / "mesotherapy.md"
    text = doc.read_text(encoding="utf-8") + "\n## Who It Is For\n\nAdults only (<18: no) -> ask us.\n"
    doc.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    content = load_content(content_dir)
    node = next(n for n in content.root.children if n.label == "Who It Is For")
    assert "Adults only (&lt;18: no) -&gt; ask us." in node.blocks[0].html()


def test_a_new_section_needs_only_content(content_dir: Path):
    doc = content_dir / "mesotherapy.md"
    doc.write_text(doc.read_text() + "\n## Aftercare Notes\n\n### Sun\n\nClinic text here.\n")
    content = load_content(content_dir)
    assert "Aftercare Notes" in [n.label for n in content.root.children]


def test_a_second_treatment_document_adds_a_treatment_list(content_dir: Path):
    (content_dir / "peels.md").write_text(
        "---\nid: peels\nmenu_label: Chemical peels\n---\n# Chemical Peels\n\nIntro.\n\n## Uses\n\nText.\n")
    content = load_content(content_dir)
    assert [n.label for n in content.root.children][:2] == ["Mesotherapy", "Chemical peels"]
    screen = MenuRenderer(content).main()
    assert screen.text.startswith("<b>Treatments</b>")
    # A treatment's screen lists its sections; "read all" would show their titles bare.
    meso = MenuRenderer(content).node(content.root.children[0])
    assert "📄 Read the whole section" not in [label for row in meso.rows for label, _ in row]
    uses = next(n for n in content.root.children[0].children if n.title == "Uses of Mesotherapy")
    assert "📄 Read the whole section" in [label for row in MenuRenderer(content).node(uses).rows
                                          for label, _ in row]


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("# T\n\n### Orphan\n\ntext\n", 3, "without a parent"),
        ("intro\n# T\n", 1, "before the first"),
        ("# T\n\n## A\n\ntext\n\n## A\n\nagain\n", 7, "duplicate heading"),
        ("# T\n\n## Empty\n\n## B\n\ntext\n", 3, "has no text"),
        ("## No title\n\ntext\n", 1, "without a parent"),
        ("# T\n\n## A\n\nFirst line.\n<b>bold</b>\n", 6, "HTML tag '<b>' in 'A'"),
        ("# T\n# U\n", 2, "only one"),
    ],
)
def test_broken_documents_fail_with_file_and_line(content_dir: Path, body: str, line: int, problem: str):
    (content_dir / "mesotherapy.md").write_text(body)
    with pytest.raises(ContentError) as err:
        load_content(content_dir)
    assert err.value.line == line
    assert problem in err.value.problem
    assert re.match(rf".*mesotherapy\.md:{line}: ", str(err.value))


def test_front_matter_lines_count_toward_the_reported_line(content_dir: Path):
    (content_dir / "mesotherapy.md").write_text("---\nid: x\n---\n\n# T\n\n### Orphan\n\ntext\n")
    with pytest.raises(ContentError) as err:
        load_content(content_dir)
    assert err.value.line == 7


@pytest.mark.parametrize(
    ("mutate", "line", "problem"),
    [
        (lambda t: t.replace('main_menu: "<b>Main menu</b>', 'main_menu: "<b>Main menu'), None, "unclosed"),
        (lambda t: t.replace("error:", "eror:"), 1, "missing message 'error'"),
        (lambda t: t + "\nbroken: [unclosed\n", None, "expected ','"),
        (lambda t: t.replace("{first_name}", "{first_name"), None, "placeholder"),
        (lambda t: t.replace("Tom & Co", "") + '\nbutton_long: "' + "x" * 80 + '"\n', None, "longer"),
    ],
)
def test_broken_messages_fail_with_file_and_line(content_dir: Path, mutate, line, problem):
    path = content_dir / "messages.yaml"
    path.write_text(mutate(path.read_text()))
    with pytest.raises(ContentError) as err:
        load_content(content_dir)
    assert "messages.yaml:" in str(err.value)
    assert err.value.line >= 1
    if line is not None:
        assert err.value.line == line
    assert problem in str(err.value)


def test_html_error_names_the_line_of_its_key(content_dir: Path):
    path = content_dir / "messages.yaml"
    text = path.read_text().replace('main_menu: "<b>Main menu</b>', 'main_menu: "<b>Main menu')
    path.write_text(text)
    expected = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("main_menu:"))
    with pytest.raises(ContentError) as err:
        load_content(content_dir)
    assert err.value.line == expected


def test_long_sections_are_paged_under_the_limit(content_dir: Path):
    sentences = " ".join(f"Sentence number {i} of the clinic's long text & more." for i in range(400))
    doc = content_dir / "mesotherapy.md"
    doc.write_text(doc.read_text() + f"\n## Long Section\n\n{sentences}\n\n{sentences}\n")
    content = load_content(content_dir)
    node = next(n for n in content.root.children if n.title == "Long Section")
    menu = MenuRenderer(content)
    first = menu.node(node, 0)
    assert "Page 1 of" in first.text
    pages = int(re.search(r"Page 1 of (\d+)", first.text).group(1))
    assert pages >= 6
    shown = []
    for page in range(pages):
        screen = menu.node(node, page)
        visible = telegram_html.check(screen.text)
        assert len(visible) <= TEXT_LIMIT and len(screen.text) <= TEXT_LIMIT
        shown.append(visible)
    joined = " ".join(shown)
    assert joined.count("of the clinic's long text & more.") == 800


def test_numbered_and_pasted_lists_keep_their_lines(content_dir: Path):
    """A numbered list and "•" bullets (pasted from Word) ran into one line; a long "-" list
    lost its line breaks where a page was cut."""
    items = "\n".join(f"- Aftercare point number {i} of the clinic's long list." for i in range(120))
    doc = content_dir / "mesotherapy.md"
    doc.write_text(doc.read_text() + "\n## Aftercare Steps\n\n1. Avoid strenuous activities.\n"
                   "2. Avoid sun exposure.\n\n• Keep the area clean\n• Drink water\n"
                   f"\n## Long List\n\n{items}\n")
    content = load_content(content_dir)
    menu = MenuRenderer(content)
    steps = next(n for n in content.root.children if n.title == "Aftercare Steps")
    text = menu.node(steps, 0).text
    assert "1. Avoid strenuous activities.\n2. Avoid sun exposure." in text
    assert "• Keep the area clean\n• Drink water" in text
    long_list = next(n for n in content.root.children if n.title == "Long List")
    pages = int(re.search(r"Page 1 of (\d+)", menu.node(long_list, 0).text).group(1))
    lines = [line for page in range(pages) for line in
             telegram_html.check(menu.node(long_list, page).text).splitlines()
             if "Aftercare point" in line]
    assert pages > 1 and len(lines) == 120  # each item on a line of its own, on every page
    assert all(line.startswith("• Aftercare point number") for line in lines)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=3000), min_size=0, max_size=8),
       st.integers(min_value=50, max_value=4000))
# A word longer than a page, after a short one: its cut pieces once went before the short word.
@example(fragments=["0 " + "0" * 49 + "10"], budget=50)
def test_paginate_keeps_every_word_and_respects_the_budget(fragments, budget):
    import html

    escaped = [html.escape(f, quote=False) for f in fragments]
    pages = paginate(escaped, budget)
    assert all(len(p) <= budget for p in pages)
    assert "".join("".join(pages).split()) == "".join("".join(escaped).split())
    for page in pages:
        telegram_html.check(page) if page.strip() else None


def test_cached_screens_cannot_be_changed_by_a_caller():
    from bot.menu import Nav

    content = load_content(CONTENT)
    menu = MenuRenderer(content)
    node = content.root.children[1]
    first = menu.resolve(Nav("node", node.id))
    first.rows.append([("tampered", "home")])
    first.text += "tampered"
    again = menu.resolve(Nav("node", node.id))
    assert "tampered" not in again.text and ["tampered"] not in [[b[0] for b in r] for r in again.rows]


def test_every_key_a_clinic_must_keep_is_required_at_start():
    """The lists checked at start cover each shipped message file: a key the bot uses that a
    clinic removed or renamed fails at start (and check-content), not when it is first used."""
    import yaml

    from bot.content import REQUIRED_MESSAGES
    from handlers.console import CONSOLE_MESSAGES
    from handlers.privacy import PRIVACY_MESSAGES
    from handlers.staff import STAFF_MESSAGES

    def keys(name: str) -> set[str]:
        return set(yaml.safe_load((CONTENT / name).read_text(encoding="utf-8")))

    assert keys("messages.yaml") - {"clinic_name", "clinic_contact"} == set(REQUIRED_MESSAGES)
    assert keys("staff.yaml") == set(STAFF_MESSAGES)
    assert keys("privacy.yaml") == set(PRIVACY_MESSAGES)
    assert keys("console.yaml") == set(CONSOLE_MESSAGES)

    from bot.intake.spec import REQUIRED_TEXTS as INTAKE
    from bot.qa import REQUIRED_TEXTS as QA
    from bot.reminders.plans import REQUIRED_TEXTS as REMINDERS

    def texts(name: str) -> set[str]:
        return set(yaml.safe_load((CONTENT / name).read_text(encoding="utf-8"))["texts"])

    assert texts("reminders.yaml") == set(REMINDERS)
    assert texts("qa.yaml") == set(QA)
    assert texts("intake.yaml") == set(INTAKE)


def test_an_unknown_placeholder_stops_the_content_loading(content_dir: Path):
    """{name} where the code gives {first_name}: refused at start with the file and key, not
    sent to patients as written (test_content_checks covers fill's runtime fallback)."""
    messages = content_dir / "messages.yaml"
    messages.write_text(messages.read_text(encoding="utf-8").replace(
        "Hello, {first_name}!", "Hello, {name}!", 1), encoding="utf-8")
    with pytest.raises(ContentError, match=r"messages\.yaml:\d+: greeting: .*\{name\}"):
        load_content(content_dir)


def test_a_clinic_name_with_an_ampersand_is_plain_text(content_dir: Path):
    messages = content_dir / "messages.yaml"
    messages.write_text(messages.read_text(encoding="utf-8").replace(
        'clinic_name: "the clinic"', 'clinic_name: "Smith & Jones"', 1), encoding="utf-8")
    text = load_content(content_dir).messages.get("greeting", first_name="Anna")
    assert "Smith &amp; Jones's assistant" in text
    assert "Smith & Jones's assistant" in telegram_html.plain(text)
