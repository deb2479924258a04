"""Small checks of what people type, shared by every parser."""


def is_number(text: str) -> bool:
    """ASCII digits only: "²".isdigit() is True, yet int("²") raises."""
    return text.isascii() and text.isdigit()
