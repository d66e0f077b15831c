"""CSV that Excel opens correctly and that cannot run formulas in it."""

import csv
import io
from collections.abc import Iterable, Iterator

from flask import Response, stream_with_context

# A cell starting with one of these is a formula to a spreadsheet (OWASP: CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
UTF8_BOM = "\ufeff"


def neutralize(value: object) -> str:
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    yield UTF8_BOM
    for row in rows:
        writer.writerow([neutralize(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_response(rows: Iterable[Iterable[object]], filename: str) -> Response:
    response = Response(stream_with_context(csv_lines(rows)), mimetype="text/csv")
    response.charset = "utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
