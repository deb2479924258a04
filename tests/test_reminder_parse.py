"""Forgiving staff input: dates and times in the clinic's zone, /book arguments (hypothesis)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.reminders.parse import (
    InputError,
    parse_book,
    parse_date,
    parse_time,
    parse_when,
    parse_who,
    split_args,
)

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday
TODAY = date(2026, 11, 24)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@pytest.mark.parametrize("text,expected", [
    ("2026-12-03", date(2026, 12, 3)), ("3.12.2026", date(2026, 12, 3)),
    ("03/12/26", date(2026, 12, 3)), ("3/12", date(2026, 12, 3)), ("3.12.", date(2026, 12, 3)),
    ("3 Dec", date(2026, 12, 3)), ("Dec 3", date(2026, 12, 3)), ("3rd December 2026", date(2026, 12, 3)),
    ("today", TODAY), ("tomorrow", date(2026, 11, 25)), ("wed", date(2026, 11, 25)),
    ("Tuesday", date(2026, 12, 1)), ("5 Jan", date(2027, 1, 5)),
])
def test_dates(text, expected):
    assert parse_date(text.split(), TODAY)[0] == expected


@pytest.mark.parametrize("text,expected", [
    ("14:30", time(14, 30)), ("9:05", time(9, 5)), ("2pm", time(14, 0)), ("2:30pm", time(14, 30)),
    ("2:30 PM", time(14, 30)), ("12am", time(0, 0)), ("12pm", time(12, 0)), ("14.30", time(14, 30)),
    ("9h15", time(9, 15)),
])
def test_times(text, expected):
    assert parse_time(text.split())[0] == expected


@pytest.mark.parametrize("tokens", [
    ["31.2.2027", "10:00"], ["2026-13-01", "10:00"], ["soon", "10:00"], [],
    ["2026-12-03", "25:00"], ["2026-12-03", "14"], ["2026-12-03", "13pm"], ["2026-12-03"],
])
def test_bad_input_is_refused_with_a_reason(tokens):
    with pytest.raises(InputError) as err:
        parse_when(tokens, NOW, LONDON)
    assert str(err.value)


@pytest.mark.parametrize("text,today,expected", [
    ("23.11", TODAY, "23.11 has passed this year; for next year, give the year (23.11.2027)"),
    ("1 Sep", TODAY, "01.09 has passed this year"),
    ("29.2", TODAY, "29.02 is not a calendar date in 2026 or 2027"),
    ("Feb 29", date(2025, 3, 1), "29.02 is not a calendar date in 2025 or 2026"),
])
def test_a_yearless_date_that_just_passed_is_refused_not_moved_a_year(text, today, expected):
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_date(text.split(), today)


@pytest.mark.parametrize("text,today,expected", [
    ("31 Jul", TODAY, date(2027, 7, 31)),  # passed long ago: next year's, as before
    ("29.2", date(2027, 6, 1), date(2028, 2, 29)),  # the next leap day, within a year
    ("3.1", date(2026, 12, 30), date(2027, 1, 3)),
])
def test_a_yearless_date_is_the_next_one_within_a_year(text, today, expected):
    assert parse_date(text.split(), today)[0] == expected


def test_nonexistent_local_time_is_refused():
    with pytest.raises(InputError, match="does not exist"):
        parse_when(["2027-03-28", "01:30"], NOW, LONDON)


@pytest.mark.parametrize("typed", ["3:00", "3.30", "3h15", "1:05", "6:59", "6:00"])
def test_an_early_hour_without_am_or_pm_is_refused_as_ambiguous(typed):
    """"3:00" typed in haste for 3 pm would send every reminder at the wrong time."""
    with pytest.raises(InputError, match="could be morning or afternoon") as info:
        parse_time([typed])
    hour = int(typed[0])
    assert f"{hour + 12}:" in str(info.value) and f"0{hour}:" in str(info.value)


@pytest.mark.parametrize(("typed", "expected"), [
    (["03:00"], time(3, 0)), (["3am"], time(3, 0)), (["3:00", "pm"], time(15, 0)),
    (["3.30pm"], time(15, 30)), (["0:30"], time(0, 30)), (["7:00"], time(7, 0)),
    (["9.15"], time(9, 15)), (["15:00"], time(15, 0)),
])
def test_a_time_written_out_is_read_as_written(typed, expected):
    assert parse_time(typed) == (expected, len(typed))


@given(st.dates(min_value=date(2026, 11, 24), max_value=date(2030, 12, 31)),
       st.integers(0, 23), st.integers(0, 59),
       st.sampled_from(["iso", "dots", "slash", "dmy_words", "mdy_words"]))
def test_any_formatted_date_and_time_round_trips(day, hour, minute, style):
    text = {
        "iso": f"{day:%Y-%m-%d}", "dots": f"{day.day}.{day.month}.{day.year}",
        "slash": f"{day.day:02d}/{day.month:02d}/{day.year}",
        "dmy_words": f"{day.day} {MONTHS[day.month - 1]} {day.year}",
        "mdy_words": f"{MONTHS[day.month - 1]} {day.day} {day.year}",
    }[style]
    tokens = text.split() + [f"{hour:02d}:{minute:02d}", "60", "face"]
    naive = datetime(day.year, day.month, day.day, hour, minute)
    try:
        at, used = parse_when(tokens, NOW, LONDON)
    except InputError as exc:
        assert "does not exist" in str(exc)
        return
    assert used == len(tokens) - 2
    assert at.tzinfo is not None
    assert at.astimezone(LONDON).replace(tzinfo=None) == naive


@given(st.text(max_size=60))
def test_book_parser_never_crashes(text):
    try:
        parse_book(text.split(), NOW, LONDON)
    except InputError:
        pass


def test_book_example_from_the_issue():
    req = parse_book("5012 2026-12-03 14:30 60 face 1/4".split(), NOW, LONDON)
    assert req.who.telegram_id == 5012
    assert req.starts_at == datetime(2026, 12, 3, 14, 30, tzinfo=UTC)  # GMT in December
    assert (req.duration_min, req.area, req.session_no, req.course_size) == (60, "face", 1, 4)
    summer = parse_book(["+44 7700 900123", "1.6.2027", "9:00", "upper", "arms"], NOW, LONDON)
    assert summer.who.phone == "+447700900123"
    assert summer.starts_at == datetime(2027, 6, 1, 8, 0, tzinfo=UTC)  # BST
    assert summer.area == "upper arms" and summer.duration_min == 60
    assert parse_who("Jane Doe").name == "Jane Doe" and parse_who("#12").patient_id == 12
    with pytest.raises(InputError):
        parse_book("5012 2026-12-03 14:30 60 face 5/4".split(), NOW, LONDON)
    assert parse_book(["5012", "tomorrow", "9am"], NOW, LONDON).starts_at - NOW == timedelta(hours=21)


@pytest.mark.parametrize(("text", "minutes", "area"), [
    ("5012 2026-12-03 14:30 90 min face", 90, "face"),
    ("5012 2026-12-03 14:30 90mins face", 90, "face"),
    ("5012 2026-12-03 14:30 1h30 face", 90, "face"),
    ("5012 2026-12-03 14:30 2 hours upper arms", 120, "upper arms"),
    ("5012 2026-12-03 14:30 45 face", 45, "face"),
    ("5012 2026-12-03 14:30 face", 60, "face"),
])
def test_durations_are_read_in_the_ways_staff_write_them(text, minutes, area):
    """"90 min face" used to book 90 minutes of "min face"; "1h30" an hour of "1h30 face"."""
    req = parse_book(text.split(), NOW, LONDON)
    assert (req.duration_min, req.area) == (minutes, area)


@pytest.mark.parametrize(("text", "words"), [
    ("5012 tomorrow 14:30 60 crow's feet", ["5012", "tomorrow", "14:30", "60", "crow's", "feet"]),
    ('"Anna O\'Brien" 3.12 10:00', ["Anna O'Brien", "3.12", "10:00"]),
    ("\u201cAnna Smith\u201d 3.12 10:00", ["Anna Smith", "3.12", "10:00"]),  # a phone's quotes
    ("#12 3.12 10:00 # note", ["#12", "3.12", "10:00", "#", "note"]),
])
def test_staff_arguments_split_on_double_quotes_only(text, words):
    assert split_args(text) == words


def test_an_unclosed_quote_says_how_to_quote():
    with pytest.raises(InputError, match="a quote is not closed"):
        split_args('"Anna Smith 3.12 10:00')


@pytest.mark.parametrize(("typed", "area", "session"), [
    ("face 2/4", "face", (2, 4)), ("face 2 / 4", "face", (2, 4)), ("upper arms 2/ 4", "upper arms", (2, 4)),
    ("face 2 of 4", "face", (2, 4)), ("face 1of4", "face", (1, 4)), ("face", "face", (1, 1)),
])
def test_a_course_session_is_read_however_it_is_spaced(typed, area, session):
    """"2 / 4" read as part of the area set no course: no "book your next session" prompt."""
    request = parse_book(["5012", "2026-12-03", "14:30", "60", *typed.split()], NOW, LONDON)
    assert (request.area, (request.session_no, request.course_size)) == (area, session)


def test_minutes_typed_after_the_area_are_refused_not_kept_in_it():
    with pytest.raises(InputError, match=r"the area ends with a number \('face 60'\)"):
        parse_book(["5012", "2026-12-03", "14:30", "face", "60"], NOW, LONDON)


@pytest.mark.parametrize(("typed", "minutes"), [
    ("1h 30m face", 90), ("1 hour 30 min face", 90), ("1h 30 min face", 90), ("1.5h face", 90),
    ("1h face", 60), ("90 min face", 90), ("1h30 face", 90),
])
def test_book_reads_hours_and_minutes_however_they_are_written(typed, minutes):
    """"1h 30m" booked 60 minutes with "30m face" as the area: aftercare went out while the
    patient was still in the chair."""
    request = parse_book(["5012", "2026-12-03", "14:30", *typed.split()], NOW, LONDON)
    assert (request.duration_min, request.area) == (minutes, "face")


@pytest.mark.parametrize("typed", ["face 90min", "face 45 min", "face 1h", "full face 1.5h"])
def test_a_duration_typed_in_the_area_is_refused(typed):
    with pytest.raises(InputError, match=r"the area holds a duration .*right after the time"):
        parse_book(["5012", "2026-12-03", "14:30", *typed.split()], NOW, LONDON)


@pytest.mark.parametrize(("typed", "day"), [
    ("+44 7700 900123 2026-12-03", 3), ("07700 900123 2026-12-03", 3),
    ("+44 7700 900 123 3 Dec", 3),  # the "3" of the date is not the phone's
    ("+447700900123 4 Dec", 4),
])
def test_book_reads_a_phone_written_with_spaces(typed, day):
    request = parse_book([*typed.split(), "14:30", "60", "face"], NOW, LONDON)
    assert request.who.phone == "+447700900123"
    assert request.starts_at.astimezone(LONDON).day == day and request.area == "face"


@pytest.mark.parametrize(("typed", "minutes", "area", "session"), [
    ("2 / 4", 60, "treatment", (2, 4)),  # no minutes: the "2" is the session's, not minutes
    ("Morpheus 8", 60, "Morpheus 8", (1, 1)),  # a product's number is no duration
    ("90 min face 1 / 3", 90, "face", (1, 3)),
])
def test_numbers_after_the_time_are_read_for_what_they_are(typed, minutes, area, session):
    request = parse_book(["5012", "2026-12-03", "14:30", *typed.split()], NOW, LONDON)
    assert (request.duration_min, request.area, (request.session_no, request.course_size)) == (
        minutes, area, session)
