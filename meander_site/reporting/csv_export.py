"""CSV for a Norwegian Excel: `;` between fields, local times, decimal commas, and no cell read as a formula.

The formula guard is precise rather than blanket. Excel reads a cell as a formula when it starts with
"=" or "@" (and a tab or carriage return hides such a start), or with "+" or "-" unless the rest makes it a
plain number. So `=HYPERLINK(…)`, `@SUM(1)`, `+Leder` and `-2+3` get a leading apostrophe, while an E.164
phone number (`+4791234567`) or `-5` stays as it is: Excel reads those as numbers, never as formulas.
"""

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime

from flask import Response, stream_with_context

from ..business_days import OSLO

ALWAYS_FORMULA = ("=", "@", "\t", "\r")
SIGNS = ("+", "-")
# What Excel takes for a number after a sign: digits, with one decimal separator.
PLAIN_NUMBER = re.compile(r"[+-][0-9]+(?:[.,][0-9]+)?")
UTF8_BOM = "\ufeff"
SEPARATOR = ";"


def would_be_formula(text: str) -> bool:
    if text.startswith(ALWAYS_FORMULA):
        return True
    return text.startswith(SIGNS) and not PLAIN_NUMBER.fullmatch(text)


def neutralize(text: str) -> str:
    return "'" + text if would_be_formula(text) else text


def cell_text(value: object) -> str:
    """A value as a Norwegian Excel reads it: Oslo time, decimal comma, text guarded against formulas."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(OSLO).strftime("%d.%m.%Y %H:%M") if value.tzinfo else value.strftime("%d.%m.%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, bool):
        return "Ja" if value else "Nei"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".").replace(".", ",")
    return neutralize(str(value))


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=SEPARATOR, lineterminator="\r\n")
    yield UTF8_BOM
    for row in rows:
        writer.writerow([cell_text(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_response(rows: Iterable[Iterable[object]], filename: str) -> Response:
    response = Response(stream_with_context(csv_lines(rows)), mimetype="text/csv")
    response.charset = "utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
