"""Safety gaps found by review of typed questions (QAEngine level): emergencies missed, false
alarms made by typo correction, a patient's own symptoms quoted at, core questions handed off,
wrong sections, "ok" thanked, and emergencies in other languages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

from bot.content import load_content
from bot.qa import build_qa, tokenize, unreadable
from tests.qa_eval import resolve

CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"
CONTENT = load_content(CONTENT_DIR)
ENGINE = build_qa(CONTENT, CONTENT_DIR)

INITIAL_RECOVERY = "Recovery After Mesotherapy/Initial Recovery"
DOWNTIME = "Recovery After Mesotherapy/Downtime"
POST_CARE = "The Mesotherapy Procedure/4. Post-Treatment Care"


def answered_from(text: str, *expected: str) -> None:
    result = ENGINE.ask(text)
    assert result.kind == "answer", (text, result)
    assert result.best.node in [resolve(CONTENT, e) for e in expected], (text, result.best.node.key)


# ------------------------------------------------------------------ 1. emergencies missed

@pytest.mark.parametrize("text", [
    "i can not breathe", "I'm struggling breathing", "this is an emergency", "call an ambulance",
    "I need a doctor now", "my lips are huge", "my face blew up after the injection",
    "my mouth and tongue are getting big after the injection", "my eyes are puffy and closing",
    "i passed out", "I threw up", "im allergic, my face is swelling", "the area turned dark blue",
    "the skin is going white and painful", "cnat breathe", "🆘", "🆘 please",
])
def test_emergencies_in_plain_words_are_red_flags(text):
    result = ENGINE.ask(text)
    assert result.kind == "red_flag", (text, result)
    assert result.matches == []


def test_an_sos_emoji_is_found_anywhere_in_the_text():
    assert ENGINE.red_flag_in("help 🆘") is not None


@pytest.mark.parametrize("question", [
    # Before treatment these ask; they must stay answered or handed off, not alarmed.
    "can I close my eyes during the treatment", "will it make my lips bigger",
    "how long is the recovery", "is it done in a clinic",
])
def test_new_emergency_phrases_leave_ordinary_questions_alone(question):
    assert ENGINE.ask(question).kind != "red_flag"


# ------------------------------------------------------------------ 2. false alarms from typos

@pytest.mark.parametrize("text", [
    "Est-ce que ça fait mal ?", "I'm finding it hard to decide which area",
    "finding a good time is hard", "what's the temperature in the room",
    "is the fibre in the solution natural", "is the room chilly", "do fewer sessions work",
])
def test_typo_correction_never_turns_a_word_into_an_emergency(text):
    assert ENGINE.ask(text).kind != "red_flag", text


@pytest.mark.parametrize(("typed", "flag_word"), [
    ("fait", "faint"), ("finding", "fainting"), ("fibre", "fiebre"), ("chilly", "chills"),
    ("cruise", "bruise"), ("rush", "rash"),
])
def test_a_real_word_is_not_corrected_into_a_red_flag_or_symptom_word(typed, flag_word):
    assert ENGINE.correct(typed) != flag_word


def _alarm_words() -> set[str]:
    """Words of English red flags and of symptoms (qa.yaml): what typos must not invent."""
    data = yaml.safe_load((CONTENT_DIR / "qa.yaml").read_text(encoding="utf-8"))
    symptoms = data["symptom_reports"]
    return ({w for phrases in data["red_flags"].values() for p in phrases for w in tokenize(str(p))}
            | {w for key in ("symptoms", "acute") for p in symptoms.get(key, [])
               for w in tokenize(p)})


ALARM_WORDS = _alarm_words()


def _near_misses():
    """An alarm word with one letter replaced, added or dropped: often another real word."""
    words = st.sampled_from(sorted(w for w in ALARM_WORDS if len(w) >= 4))
    letters = st.sampled_from("abcdefghiklmnoprstuvwy")
    return st.tuples(words, st.integers(0, 20), letters, st.sampled_from("rid")).map(
        lambda t: {"r": t[0][:t[1]] + t[2] + t[0][t[1] + 1:], "i": t[0][:t[1]] + t[2] + t[0][t[1]:],
                   "d": t[0][:t[1]] + t[0][t[1] + 1:]}[t[3]])


@settings(max_examples=500, deadline=None)
@given(_near_misses())
def test_a_red_flag_or_symptom_word_comes_only_from_a_plain_slip(typed):
    fixed = ENGINE.correct(typed)
    if fixed == typed or fixed not in ALARM_WORDS:
        return
    swapped = any(typed[:i] + typed[i + 1] + typed[i] + typed[i + 2:] == fixed
                  for i in range(len(typed) - 1))
    # A letter too many, too few, or mistyped, in a longer word, the first kept.
    one_letter = (len(typed) >= 5 and fixed[0] == typed[0]
                  and Levenshtein.distance(typed, fixed) == 1)
    assert swapped or one_letter, (typed, fixed)


def test_listed_real_words_are_never_corrected():
    real = yaml.safe_load((CONTENT_DIR / "qa.yaml").read_text(encoding="utf-8")).get("real_words")
    assert real and [w for w in real.split() if ENGINE.correct(w) != w] == []


@pytest.mark.parametrize(("typed", "fixed"), [
    ("feaver", "fever"), ("cnat", "cant"), ("sweling", "swelling"), ("mnay", "many"),
])
def test_a_plain_typo_of_a_red_flag_or_symptom_word_is_still_corrected(typed, fixed):
    assert ENGINE.correct(typed) == fixed


@pytest.mark.parametrize("text", [
    "I have a temperature", "I've got a high temperature", "running a temperature since yesterday",
    "i have a feaver",
])
def test_a_fever_is_a_red_flag_a_room_temperature_is_not(text):
    assert ENGINE.ask(text).kind == "red_flag", text


# ------------------------------------------------------------------ 3. the patient's own symptoms

@pytest.mark.parametrize("text", [
    "the pain is really bad", "my face is numb", "my throat hurts", "i got a reaction",
])
def test_first_person_symptoms_go_to_staff_without_a_word_of_time(text):
    result = ENGINE.ask(text)
    assert result.kind == "symptom", (text, result)
    assert result.matches == []


@pytest.mark.parametrize("text", ["I have a cold sore", "I have herpes"])
def test_conditions_the_document_does_not_cover_are_not_quoted(text):
    assert ENGINE.ask(text).kind in ("symptom", "unknown"), text


def test_sore_is_no_longer_a_synonym_of_discomfort():
    assert ("sore",) not in ENGINE.config.synonyms


@pytest.mark.parametrize("text", [
    # Still questions or goals, not reports.
    "I am very sensitive to pain, what can I do?", "will my face be numb",
    "will I have a reaction", "I have puffy eyes, can mesotherapy help?",
    "I'm scared of pain, is there an anaesthtic",
])
def test_questions_about_symptoms_are_still_not_reports(text):
    assert ENGINE.ask(text).kind not in ("symptom", "red_flag"), text


# ------------------------------------------------------------------ 4. core questions

@pytest.mark.parametrize("text", [
    "how long does recovery take", "how long is the recovery",
    "how long till the sweling goes down", "how long till the swelling goes down",
])
def test_questions_about_recovery_are_answered(text):
    answered_from(text, INITIAL_RECOVERY, DOWNTIME)


def test_a_typo_laden_question_about_sessions_is_answered():
    answered_from("how mnay sesions do i ned", "Recovery After Mesotherapy/Follow-Up Sessions")


def test_a_swelling_that_is_still_there_is_a_report():
    assert ENGINE.ask("my face is still swollen after 5 days").kind == "symptom"


# ------------------------------------------------------------------ 5. wrong sections

@pytest.mark.parametrize("text", ["can i go to the gym after", "can i go in the sun after"])
def test_activity_after_treatment_quotes_the_post_treatment_care(text):
    answered_from(text, POST_CARE)


@pytest.mark.parametrize("text", ["can I do it while on my period", "I'm fine thanks"])
def test_a_word_of_the_document_used_otherwise_gets_no_quote(text):
    assert ENGINE.ask(text).kind != "answer", text


def test_what_is_in_the_solution_quotes_what_is_injected():
    answered_from("what is in the solution", "about", "The Mesotherapy Procedure/3. Injection")


# ------------------------------------------------------------------ 6. ok is not thanks

@pytest.mark.parametrize("text", ["👍", "ok", "okay", "👌", "got it"])
def test_an_acknowledgement_is_not_thanked(text):
    assert ENGINE.ask(text).kind == "empty", text


@pytest.mark.parametrize("text", ["thanks", "thank you", "ok thanks", "🙏"])
def test_thanks_is_still_thanks(text):
    assert ENGINE.ask(text).kind == "thanks", text


# ------------------------------------------------------------------ 7. other languages

@pytest.mark.parametrize("text", [
    "no puedo respirar, mis labios están hinchados", "ich kann nicht atmen",
    "je ne peux pas respirer", "mes lèvres sont gonflées", "meine Lippen sind geschwollen",
    "non riesco a respirare", "não consigo respirar", "tengo fiebre", "ich habe Fieber",
    "j'ai de la fièvre", "è un'emergenza", "Notfall!", "socorro",
])
def test_emergency_words_of_other_languages_are_red_flags(text):
    assert ENGINE.ask(text).kind == "red_flag", text


@pytest.mark.parametrize("text", [
    "ho la febbre", "estoy mareada", "sangra mucho", "mi sento male", "me duele mucho",
    "Mir ist schwindelig", "j'ai des vertiges", "blutet stark", "tengo un dolor fuerte",
])
def test_short_urgent_messages_in_other_languages_are_red_flags(text):
    """Too short to count as another language (two foreign words): they were "unknown", and
    the patient got the English offer to pass the question on, staff nothing."""
    assert ENGINE.ask(text).kind == "red_flag", text


@pytest.mark.parametrize("text", ["me siento muy bien", "mi sento bene, grazie", "mucho gusto"])
def test_feeling_well_in_another_language_is_no_emergency(text):
    assert ENGINE.ask(text).kind != "red_flag", text


@pytest.mark.parametrize("text", [
    "Est-ce que ça fait mal ?", "¿Cuánto cuesta el tratamiento?", "Wie viele Sitzungen brauche ich?",
    "Quanto costa il trattamento?", "Quantas sessões eu preciso?", "Qu'est-ce que la mésothérapie ?",
])
def test_a_message_clearly_in_another_language_goes_to_staff(text):
    assert unreadable(text), text
    assert ENGINE.ask(text).kind == "unreadable", text


@pytest.mark.parametrize("text", [
    "is it ok if I'm breastfeeding", "can I have it while pregnant", "que sera sera, does it hurt",
    "café au lait spots, can it help?", "I have a rash after the injection", "Hello!",
])
def test_english_with_a_foreign_word_is_still_read(text):
    assert not unreadable(text), text


# ------------------------------------------------------------------ the questionnaire's history

@pytest.mark.parametrize("text", [
    "after my last session my lips are swollen and my throat is tight",
    "my lips are swollen since the injection", "my throat is tight now",
])
def test_a_history_answer_telling_the_present_is_a_red_flag(text):
    """The allergy history ("what happened?") can tell what is happening now."""
    assert ENGINE.red_flag_in(text, history=True) is not None


@pytest.mark.parametrize("text", [
    "penicillin gave me hives years ago", "my lips were swollen as a child",
    "I am allergic to nuts, my lips swell", "I had anaphylaxis in 2019",
    "I am allergic to latex and I get hives", "Penicillin: I had a rash",
    "Penicillin. The reaction is hives", "nuts - reaction is swollen lips",
    "latex, symptoms are hives and itching", "I am allergic: hives",
])
def test_a_history_answer_telling_the_past_is_not(text):
    assert ENGINE.red_flag_in(text, history=True) is None


@pytest.mark.parametrize("text", ["Is it urgent to book?", "not urgent, just curious",
                                  "nothing urgent: when are you open?"])
def test_urgent_alone_is_no_emergency(text):
    """"Not urgent" would alert staff and tell the patient to get help now."""
    assert ENGINE.red_flag_in(text) is None


@pytest.mark.parametrize("text", [
    "I think Im having anaphylaxia", "my lip is bleedinf heavily", "my lips are swollwn",
    "theres an absxess", "i am vomiying", "im feinting",
])
def test_a_mistyped_letter_in_an_emergency_word_is_still_a_red_flag(text):
    """A letter changed (not only added or dropped) is the commonest slip on a phone."""
    assert ENGINE.red_flag_in(text) is not None


@pytest.mark.parametrize("text", [
    "I had swelling for a month after", "it hides wrinkles", "I backed out of the appointment",
    "is it doable", "I was poked with a needle", "is the solution smelling strong?",
])
def test_real_words_a_letter_from_an_emergency_word_are_not_one(text):
    assert ENGINE.red_flag_in(text) is None


@pytest.mark.parametrize("text", ["Mia and Elle want botox", "Costa del Sol trip after filler?"])
def test_english_with_foreign_looking_names_is_read_as_english(text):
    """"Not in English" sends the message to staff at once, without asking the patient."""
    assert not unreadable(text)


def test_a_clinics_qa_file_from_before_acute_symptoms_still_loads(tmp_path):
    """symptom_reports.acute came this version: an edited qa.yaml without it must not stop
    the bot (nothing is acute then, as before)."""
    import re

    from bot.qa import load_qa_config

    text = (CONTENT_DIR / "qa.yaml").read_text(encoding="utf-8")
    acute = re.search(r"\n  acute:.*?(?=\n  [a-z_]+:)", text, re.S)
    assert acute is not None
    (tmp_path / "qa.yaml").write_text(text[:acute.start()] + text[acute.end():], encoding="utf-8")
    assert load_qa_config(tmp_path / "qa.yaml").symptoms.acute == frozenset()
