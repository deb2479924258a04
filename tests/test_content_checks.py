"""Content mistakes that once passed check-content and then broke the bot or reached patients:
each now stops it at start with file:line, the key, and what to do."""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot import telegram_html
from bot.content import ContentError, fill, load_content, load_yaml
from bot.intake.spec import load_intake
from bot.menu import PAGE_BUDGET, MenuRenderer, paginate
from bot.reminders.plans import content_from_messages, load_reminder_content

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(CONTENT, target)
    return target


def edit(path: Path, old: str, new: str) -> int:
    """Replace `old` (once) in a content file; the line where `new` begins."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return text[:text.index(new)].count("\n") + 1


def line_of(path: Path, start: str, nth: int = 0) -> int:
    lines = [i for i, x in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if x.strip().startswith(start)]
    return lines[nth]


def fails(load, path: Path, line: int, *words: str) -> ContentError:
    with pytest.raises(ContentError) as info:
        load()
    err = info.value
    assert err.path.endswith(path.name) and err.line == line, str(err)
    for word in words:
        assert word in str(err), str(err)
    return err


def add_feature_file(content_dir: Path, name: str) -> None:
    """What handlers/privacy.py and handlers/console.py do at start with their file."""
    messages = load_content(content_dir).messages
    path = content_dir / name
    messages.add(load_yaml(path), path)


# ------------------------------------------------------------------ 1. Telegram's length limits
def test_a_message_text_too_long_for_telegram_fails_with_the_limit(content_dir: Path):
    path = content_dir / "messages.yaml"
    long = "Tap a button. " * 260  # 3640 characters
    line = edit(path, "help: |-\n", f'help: "{long}"\nold_help: |-\n')
    fails(lambda: load_content(content_dir), path, line, "help", "3500", "4096")


def test_length_counts_what_telegram_shows_not_the_html(content_dir: Path):
    """Telegram's limit is on the text after its HTML is parsed: tags do not count."""
    path = content_dir / "messages.yaml"
    text = "<b>Tap</b> <i>a</i> button. " * 200  # 2800 shown, 5600 with the tags
    edit(path, "help: |-\n", f'help: "{text}"\nold_help: |-\n')
    assert len(text) > 4096
    assert load_content(content_dir).messages.raw("help") == text


def test_a_long_privacy_text_fails(content_dir: Path):
    path = content_dir / "privacy.yaml"
    line = edit(path, 'forget_done: "', 'forget_done: "' + "Erased. " * 450)
    fails(lambda: add_feature_file(content_dir, "privacy.yaml"), path, line, "forget_done",
          "3500")


def test_a_long_reminder_and_a_long_caption_fail(content_dir: Path):
    path = content_dir / "reminders.yaml"
    text = path.read_text(encoding="utf-8")
    edit(path, "    You can confirm, ask", "    " + "Please come. " * 300 + "You can confirm, ask")
    fails(lambda: load_reminder_content(content_dir), path, line_of(path, "reminder_confirmation:"),
          "reminder_confirmation", "3500")
    path.write_text(text, encoding="utf-8")
    line = edit(path, 'calendar_caption: "Your appointment: {when}',
                'calendar_caption: "Your appointment: {when}' + " See you." * 120)
    fails(lambda: load_reminder_content(content_dir), path, line, "calendar_caption", "1024")


def test_a_long_intake_question_and_consent_fail(tmp_path: Path):
    path = tmp_path / "intake.yaml"
    source = (CONTENT / "intake.yaml").read_text(encoding="utf-8")
    path.write_text(source.replace(
        '<b>Which areas would you like treated?</b>',
        "<b>Which areas would you like treated?</b> " + "Tell us. " * 400, 1), encoding="utf-8")
    fails(lambda: load_intake(path), path, line_of(path, "- id: areas"), "question 'areas'",
          "3500")
    path.write_text(source.replace(
        "<b>Before we start: your consent</b>",
        "<b>Before we start: your consent</b> " + "Please read. " * 300, 1), encoding="utf-8")
    fails(lambda: load_intake(path), path, line_of(path, "version:"), "consent", "3500")


def test_a_page_cut_inside_a_tag_closes_and_reopens_it():
    fragment = ("Before. <i>" + "An italic sentence of the clinic's text. " * 200
                + '</i> After, a <a href="https://example.org/a b">link</a>. ' + "The end. " * 3)
    pages = paginate([fragment, "Next paragraph."], 1000)
    assert len(pages) >= 8
    for page in pages:
        telegram_html.check(page)  # each page valid on its own: no unclosed <i>
        assert len(page) <= 1000
    shown = "".join(telegram_html.plain(p) for p in pages)
    assert "".join(shown.split()) == "".join((telegram_html.plain(fragment)
                                              + "Next paragraph.").split())


def test_a_long_disclaimer_with_markup_is_paged_as_valid_html(content_dir: Path):
    """A menu page (the disclaimer screen) over a page's budget, italic across the cut."""
    path = content_dir / "messages.yaml"
    link = '<a href="https://example.org/' + "x" * 900 + '">the clinic site</a>'
    body = "<i>" + "This is general information, not medical advice. " * 60 + "</i> " + link
    edit(path, "disclaimer: |-\n", f"disclaimer: '{body}'\nold_disclaimer: |-\n")
    assert len(body) > PAGE_BUDGET
    content = load_content(content_dir)
    node = next(n for n in content.root.children if n.key == "#disclaimer")
    menu = MenuRenderer(content)
    pages = int(re.search(r"Page 1 of (\d+)", menu.node(node, 0).text).group(1))
    texts = [menu.node(node, page).text for page in range(pages)]
    for text in texts:
        telegram_html.check(text)  # no page left with an unclosed <i>
    shown = "".join(telegram_html.plain(t) for t in texts)
    assert shown.count("not medical advice") == 60 and "the clinic site" in shown


# ------------------------------------------------------------------ 2. unknown placeholders
def test_a_misspelt_placeholder_in_messages_fails(content_dir: Path):
    path = content_dir / "messages.yaml"
    edit(path, "Hello, {first_name}!", "Hello, {first_nme}!")
    fails(lambda: load_content(content_dir), path, line_of(path, "greeting:"), "greeting",
          "{first_nme}", "{first_name}")


def test_a_misspelt_placeholder_in_intake_fails(tmp_path: Path):
    path = tmp_path / "intake.yaml"
    path.write_text((CONTENT / "intake.yaml").read_text(encoding="utf-8").replace(
        "contact you on {phone}", "contact you on {phon}", 1), encoding="utf-8")
    fails(lambda: load_intake(path), path, line_of(path, "submitted:"), "submitted", "{phon}")


def test_a_placeholder_in_a_question_text_fails(tmp_path: Path):
    """Question texts are sent as written: {clinic_name} there would reach patients as is."""
    path = tmp_path / "intake.yaml"
    path.write_text((CONTENT / "intake.yaml").read_text(encoding="utf-8").replace(
        "<b>Which areas would you like treated?</b>",
        "<b>Which areas would you like {clinic_name} to treat?</b>", 1), encoding="utf-8")
    fails(lambda: load_intake(path), path, line_of(path, "- id: areas"), "question 'areas'",
          "placeholders")


def test_a_misspelt_placeholder_in_privacy_and_console_fails(content_dir: Path):
    path = content_dir / "privacy.yaml"
    line = edit(path, "everything {clinic_name} stores", "everything {nme} stores")
    fails(lambda: add_feature_file(content_dir, "privacy.yaml"), path, line, "mydata_caption",
          "{nme}")
    path = content_dir / "console.yaml"
    line = edit(path, "<b>{quiet}</b>", "<b>{quite}</b>")
    fails(lambda: add_feature_file(content_dir, "console.yaml"), path, line, "settings_quiet",
          "{quite}")


def test_clinic_contact_in_a_reminder_fails(content_dir: Path):
    """Reminders get {contact_line}, not messages.yaml's {clinic_contact}."""
    path = content_dir / "reminders.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, x in enumerate(lines) if "{contact_line}" in x)
    key = next(re.match(r"  (\w+):", x).group(1) for x in reversed(lines[:at + 1])
               if re.match(r"  (\w+):", x))
    edit(path, "{contact_line}", "{clinic_contact}")
    fails(lambda: load_reminder_content(content_dir), path, line_of(path, f"{key}:"), key,
          "{clinic_contact}", "{contact_line}")


def test_check_content_stops_at_a_misspelt_placeholder(content_dir: Path, tmp_path: Path):
    """End to end: console.yaml is loaded only as the bot is built, and check-content builds it."""
    path = content_dir / "console.yaml"
    line = edit(path, "<b>{quiet}</b>", "<b>{quite}</b>")
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in {"BOT_TOKEN", "DATABASE_URL", "ENCRYPTION_KEYS"}}
    env.update(PYTHONPATH=str(ROOT), CONTENT_DIR=str(content_dir))
    done = subprocess.run([sys.executable, str(ROOT / "run_bot.py"), "check-content"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"console.yaml:{line}: settings_quiet" in done.stderr + done.stdout
    assert "{quite}" in done.stderr + done.stdout


def test_escaped_braces_still_show_one_brace(content_dir: Path):
    path = content_dir / "messages.yaml"
    edit(path, 'section_prompt: "Choose a topic:"', 'section_prompt: "Choose a topic {{or ask}}:"')
    assert load_content(content_dir).messages.get("section_prompt") == "Choose a topic {or ask}:"


def test_fill_still_sends_an_unknown_placeholder_as_written(caplog):
    """The runtime fallback stays for anything check-content cannot see."""
    with caplog.at_level(logging.ERROR):
        assert fill("Hi {name}, {x}", {"x": "1"}, "messages.yaml:greeting") == "Hi {name}, 1"
    assert "messages.yaml:greeting: unknown placeholder {name}" in caplog.text


# ------------------------------------------------------------------ 3. texts YAML reads as numbers
def test_an_unquoted_phone_number_must_be_put_in_quotes(content_dir: Path):
    path = content_dir / "messages.yaml"
    line = edit(path, 'clinic_contact: ""', "clinic_contact: +442079460000")
    fails(lambda: load_content(content_dir), path, line, "clinic_contact", "442079460000",
          "put it in quotes")


def test_an_empty_clinic_contact_is_still_allowed(content_dir: Path):
    edit(content_dir / "messages.yaml", 'clinic_contact: ""', "clinic_contact:")
    assert load_content(content_dir).messages.clinic_contact == ""


def test_texts_yaml_reads_as_numbers_or_yes_no_must_be_quoted(content_dir: Path, tmp_path: Path):
    path = content_dir / "messages.yaml"
    text = path.read_text(encoding="utf-8")
    line = edit(path, 'clinic_name: "the clinic"', "clinic_name: 2020")
    fails(lambda: load_content(content_dir), path, line, "clinic_name", "put it in quotes")
    path.write_text(text, encoding="utf-8")

    path = content_dir / "reminders.yaml"
    line = edit(path, 'button_confirm: "', "button_confirm: 12\n  old_button_confirm: \"")
    fails(lambda: content_from_messages(content_dir, load_content(content_dir).messages), path,
          line, "button_confirm", "put it in quotes")

    path = tmp_path / "intake.yaml"
    source = (CONTENT / "intake.yaml").read_text(encoding="utf-8")
    path.write_text(re.sub(r'(?m)^  button_yes: .*$', "  button_yes: Yes", source, count=1),
                    encoding="utf-8")
    fails(lambda: load_intake(path), path, line_of(path, "button_yes:"), "button_yes",
          "yes/no value", "put it in quotes")


# ------------------------------------------------------------------ 4. reminder plans
def test_a_misspelt_plan_field_fails_instead_of_dropping_its_rule(content_dir: Path):
    path = content_dir / "reminders.yaml"
    line = edit(path, "only_if_course_incomplete: true", "only_if_course_incomplte: true")
    fails(lambda: load_reminder_content(content_dir), path, line, "next_session",
          "only_if_course_incomplte", "only_if_course_incomplete")


def test_unknown_fields_of_expires_engine_and_the_file_fail(content_dir: Path):
    path = content_dir / "reminders.yaml"
    text = path.read_text(encoding="utf-8")
    edit(path, 'expires: {anchor: start, offset: "-2h"}', 'expires: {anchor: start, ofset: "-2h"}')
    fails(lambda: load_reminder_content(content_dir), path, line_of(path, "preparation:"),
          "preparation", "ofset")
    path.write_text(text, encoding="utf-8")
    line = edit(path, "  max_per_second: 28", "  max_per_secnd: 5")
    fails(lambda: load_reminder_content(content_dir), path, line, "max_per_secnd")
    path.write_text(text, encoding="utf-8")
    line = edit(path, 'push_valid_for: "1h"', 'push_valid_fr: "10m"')
    fails(lambda: load_reminder_content(content_dir), path, line, "push_valid_fr")


def test_a_plan_that_expires_before_its_moment_fails(content_dir: Path):
    """The planner writes nothing when expiry is not after the moment: e.g. preparation moved
    to +1d after the start but still expiring 2 h before it is never sent."""
    path = content_dir / "reminders.yaml"
    edit(path, 'offset: "-1d"\n    expires: {anchor: start, offset: "-2h"}',
         'offset: "+1d"\n    expires: {anchor: start, offset: "-2h"}')
    fails(lambda: load_reminder_content(content_dir), path, line_of(path, "preparation:"),
          "preparation", "never be sent")


# ------------------------------------------------------------------ 5. duplicate YAML keys
def test_a_key_given_twice_fails_at_the_second(content_dir: Path):
    path = content_dir / "messages.yaml"
    first = line_of(path, "main_menu:")
    line = edit(path, "section_prompt:", 'main_menu: "<b>Menu</b>"\nsection_prompt:')
    fails(lambda: load_content(content_dir), path, line, "'main_menu'", f"line {first}")


def test_duplicate_keys_fail_in_intake_reminders_and_qa(content_dir: Path, tmp_path: Path):
    path = tmp_path / "intake.yaml"
    source = (CONTENT / "intake.yaml").read_text(encoding="utf-8")
    path.write_text(source.replace("  progress:", '  staff_only: "Staff only."\n  progress:', 1),
                    encoding="utf-8")
    fails(lambda: load_intake(path), path, line_of(path, "staff_only:", 1), "'staff_only'")

    path = content_dir / "reminders.yaml"
    line = edit(path, "    quiet_hours: send\n", "    quiet_hours: send\n    quiet_hours: defer\n")
    fails(lambda: load_reminder_content(content_dir), path, line + 1, "'quiet_hours'")

    from bot.qa import build_qa

    path = content_dir / "qa.yaml"
    text = path.read_text(encoding="utf-8")
    key = re.search(r"^(\w+):", text, re.M).group(1)
    path.write_text(text + f"\n{key}: null\n", encoding="utf-8")
    line = len(path.read_text(encoding="utf-8").splitlines())
    content = load_content(CONTENT)
    fails(lambda: build_qa(content, content_dir), path, line, repr(key))


def test_the_shipped_content_passes_every_check():
    content = load_content(CONTENT)
    for name in ("privacy.yaml", "console.yaml", "staff.yaml"):
        content.messages.add(load_yaml(CONTENT / name), CONTENT / name)
    load_intake(CONTENT / "intake.yaml")
    content_from_messages(CONTENT, content.messages)
    assert html.unescape(content.messages.get("greeting", first_name="A")).startswith("Hello, A")
