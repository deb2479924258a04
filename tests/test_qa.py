"""QA engine without Telegram: the evaluation set's targets, lay words, red flags, content errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.content import ContentError, load_content
from bot.qa import build_qa, load_qa_config
from tests.qa_eval import evaluate, load_eval, resolve
from tests.textcheck import norm

CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"
CONTENT = load_content(CONTENT_DIR)
ENGINE = build_qa(CONTENT, CONTENT_DIR)
DOCUMENT = norm((CONTENT_DIR / "mesotherapy.md").read_text(encoding="utf-8"))


def test_evaluation_set_meets_the_targets():
    data = load_eval(CONTENT)
    assert len(data.answerable) >= 60 and len(data.out_of_scope) >= 20 and len(data.red_flags) >= 15
    report = evaluate(ENGINE, data)
    detail = "\n".join(report.misses)
    assert report.top1 >= 0.90, detail
    assert report.handoff >= 0.90, detail
    assert report.red_flag_recall == 1.0, detail
    assert report.false_alarms == 0, detail
    assert len(data.expect_kind) >= 15 and report.kinds == 1.0, detail


@pytest.mark.parametrize(("question", "expected"), [
    ("will it be numb", "The Mesotherapy Procedure/2. Preparation"),
    ("can it shrink my belly", "Uses of Mesotherapy/2. Fat Reduction"),
    ("orange peel skin on my thighs", "Uses of Mesotherapy/3. Cellulite Treatment"),
    ("what about striae", "Uses of Mesotherapy/5. Stretch Mark Reduction"),
    ("thinning hair", "Uses of Mesotherapy/4. Hair Restoration"),
    ("does it hurt", "The Mesotherapy Procedure/2. Preparation"),
    ("can I go to the gym", "Recovery After Mesotherapy/Downtime"),
    ("celullite", "Uses of Mesotherapy/3. Cellulite Treatment"),              # typo
    ("how many sesions do I need", "Recovery After Mesotherapy/Follow-Up Sessions"),  # typo
    ("is there an anaesthetic", "The Mesotherapy Procedure/2. Preparation"),  # British spelling
])
def test_lay_words_synonyms_and_typos(question, expected):
    result = ENGINE.ask(question)
    assert result.kind == "answer", (question, result)
    assert result.best.node is resolve(CONTENT, expected)


@pytest.mark.parametrize(("question", "category"), [
    ("I've had a fever since yesterday", "infection"),
    ("it's hot to the touch", "infection"),
    ("there is pus", "infection"),
    ("the redness is spreading", "infection"),
    ("swelling of my lips", "allergic_reaction"),
    ("my throat is swollen", "allergic_reaction"),
    ("I cant breathe", "allergic_reaction"),
    ("severe pain", "severe_pain"),
    ("i have a feaver", "infection"),  # typo
])
def test_red_flags_by_category(question, category):
    result = ENGINE.ask(question)
    assert result.kind == "red_flag"
    assert result.red_flag.category == category
    assert result.matches == []  # nothing from the brochure is offered


@pytest.mark.parametrize("question", [
    "how long does the swelling last", "is some redness normal", "can it get infected",
    "does it hurt", "what about allergic reactions", "is it painful afterwards",
    # Questions about a risk, and history given in the questionnaire, are not emergencies.
    "will I have a reaction", "what are the chances of having a reaction",
    "can it affect my vision", "is there a risk of going blind",
    "can it treat eyes swollen in the morning", "I have poor vision and wear glasses",
    "history of heavy bleeding during periods",
    # "severe" alone asks about a risk; its stem is also "several"'s.
    "what are the severe side effects", "are severe reactions possible",
    "do I need several sessions",
])
def test_ordinary_questions_about_risks_are_not_red_flags(question):
    assert ENGINE.ask(question).kind != "red_flag"


def test_the_not_covered_list_holds_only_words():
    """It is one folded YAML text: a "# comment" line inside it would become vocabulary."""
    import yaml

    data = yaml.safe_load((CONTENT_DIR / "qa.yaml").read_text(encoding="utf-8"))
    assert "#" not in data["not_covered"] and "#" not in data["stopwords"]


@pytest.mark.parametrize(("text", "kind"), [
    ("", "empty"), ("???", "empty"), ("the", "empty"), ("Hello!", "greeting"), ("thanks", "thanks"),
])
def test_non_questions(text, kind):
    assert ENGINE.ask(text).kind == kind


def test_every_answer_is_a_node_with_document_text():
    data = load_eval(CONTENT)
    for question, _ in data.answerable:
        result = ENGINE.ask(question)
        if result.kind != "answer":
            continue
        node = result.best.node
        assert CONTENT.nodes[node.id] == node and node.blocks  # a whole section stands in for its node
        for block in node.blocks:
            assert norm(block.plain()) in DOCUMENT


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_any_text_gets_a_valid_result(text):
    result = ENGINE.ask(text)
    assert result.kind in {"answer", "unknown", "red_flag", "empty", "greeting", "thanks", "help",
                           "unreadable", "symptom", "booking"}
    assert 0.0 <= result.confidence <= 1.0 + 1e-9
    for match in result.matches:
        assert CONTENT.nodes.get(match.node.id) is match.node
    if result.kind == "answer":
        assert result.confidence >= ENGINE.config.threshold


# ------------------------------------------------------------------ content validation

@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    shutil.copytree(CONTENT_DIR, tmp_path / "content")
    return tmp_path / "content" / "qa.yaml"


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_synonym_to_a_word_not_in_the_document_fails_with_its_line(qa_file: Path):
    _replace(qa_file, "  belly: abdomen", "  belly: abdomenn")
    with pytest.raises(ContentError) as err:
        build_qa(load_content(qa_file.parent), qa_file.parent)
    assert f"qa.yaml:{_line(qa_file, '  belly:')}:" in str(err.value)
    assert "not in the document" in str(err.value)


def test_broken_html_in_a_text_fails_with_its_line(qa_file: Path):
    _replace(qa_file, '  thanks: "You', '  thanks: "<b>You')
    with pytest.raises(ContentError) as err:
        load_qa_config(qa_file)
    assert f"qa.yaml:{_line(qa_file, '  thanks:')}:" in str(err.value)


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("confidence_threshold: 0.45", "confidence_threshold: 2", "between 0 and 1"),
    ("  gym: strenuous", "  like: strenuous", "stems like a stop word"),
    ("  thanks: [", "  bye: [", "smalltalk.bye"),
    ("red_flags:\n  infection:", "red_flags:\n  infection: []\n  other:", "expected a list"),
])
def test_invalid_settings_fail_with_a_clear_message(qa_file: Path, old, new, problem):
    _replace(qa_file, old, new)
    with pytest.raises(ContentError, match=problem):
        load_qa_config(qa_file)


def test_qa_texts_make_no_medical_claims():
    from tests.test_content import MEDICAL_TERMS

    # "price" and "cost" may be named: the texts say they are NOT in the information.
    terms = [t for t in MEDICAL_TERMS if t not in {"price", "cost"}]
    offenders = [(k, t) for k, v in ENGINE.config.texts.items() for t in terms if t in v.lower()]
    assert offenders == []


def test_history_answers_alert_only_on_urgent_phrases():
    """Intake's history questions (allergies): one-word flags name the past, phrases the present."""
    assert ENGINE.red_flag_in("penicillin: anaphylaxis in 2019, hives") is not None
    assert ENGINE.red_flag_in("penicillin: anaphylaxis in 2019, hives", history=True) is None
    flag = ENGINE.red_flag_in("latex, and now my lips are swelling", history=True)
    assert flag is not None and flag.category == "allergic_reaction"


@pytest.mark.parametrize("text", [
    "Peanuts: swollen lips and difficulty breathing as a child",
    "Shellfish, my throat swelled and I had trouble breathing, carry an epipen",
    "latex, rash all over", "ibuprofen makes me short of breath",
    "I get chest pain sometimes (angina)", "eczema, sometimes blisters",
])
def test_allergy_and_health_history_is_not_an_emergency(text):
    assert ENGINE.red_flag_in(text) is not None  # the same words typed as a message would be
    assert ENGINE.red_flag_in(text, history=True) is None


@pytest.mark.parametrize("text", [
    "nuts - my throat is closing up", "peanuts, I am having a reaction", "I can't breathe",
    "my lips are swelling right now",
])
def test_history_that_is_happening_now_is_an_emergency(text):
    assert ENGINE.red_flag_in(text, history=True) is not None
