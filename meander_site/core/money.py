"""Amounts the Norwegian way, in one place: «kr 48 000» (pages, mail, the board); the .xlsx keeps typed numbers."""


def kroner(value: int | float | None) -> str:
    """«kr 48 000»: whole kroner, a space between groups of three; empty for no value."""
    if value is None:
        return ""
    return "kr " + f"{round(value):,}".replace(",", " ")
