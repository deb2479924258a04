"""Small checks of what people type, shared by every parser."""


def is_number(text: str) -> bool:
    """ASCII digits only: "²".isdigit() is True, yet int("²") raises."""
    return text.isascii() and text.isdigit()


MAX_ROW_ID = 2**31 - 1  # row ids are 32-bit integers in PostgreSQL


def row_id(text: str) -> int:
    """A row id typed or carried in a button; 0 (no row has it) when it is not digits or is
    beyond PostgreSQL's integer range, where the query itself would fail."""
    value = int(text) if is_number(text) else 0
    return value if value <= MAX_ROW_ID else 0
