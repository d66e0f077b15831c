"""Excel workbooks (.xlsx) whose every cell is typed: text is text, never a formula; times are Oslo times.

openpyxl reads a string that starts with "=" as a formula and one like "#N/A" as an error, so each string
cell is set to type "s" after its value: whatever a prospect typed arrives in Excel exactly as typed.
"""

import io
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from flask import Response
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from ..business_days import OSLO

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DATETIME_FORMAT = "dd.mm.yyyy hh:mm"
DATE_FORMAT = "dd.mm.yyyy"
PERCENT_FORMAT = "0.0 %"
# Excel's limit on a sheet name, and characters it refuses there.
MAX_SHEET_TITLE = 31
SHEET_TITLE_FORBIDDEN = str.maketrans({character: " " for character in "[]:*?/\\"})


class Percent(float):
    """A share (0.25) that Excel should show as 25,0 %."""


@dataclass
class Sheet:
    title: str
    header: list[str]
    rows: Iterable[Iterable[object]]
    column_widths: list[int] | None = None
    autofilter: bool = True


def typed_cell(sheet, value: object) -> WriteOnlyCell:
    if isinstance(value, datetime):
        # Excel has no time zones: the wall-clock time in Oslo, which is what the team reads.
        local = value.astimezone(OSLO).replace(tzinfo=None) if value.tzinfo else value
        cell = WriteOnlyCell(sheet, value=local)
        cell.number_format = DATETIME_FORMAT
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = DATE_FORMAT
        return cell
    if isinstance(value, bool) or value is None:
        return WriteOnlyCell(sheet, value=value)
    if isinstance(value, Percent):
        cell = WriteOnlyCell(sheet, value=float(value))
        cell.number_format = PERCENT_FORMAT
        return cell
    if isinstance(value, int | float):
        return WriteOnlyCell(sheet, value=value)
    cell = WriteOnlyCell(sheet, value=str(value))
    cell.data_type = "s"  # never "f" (formula) or "e" (error), whatever the text starts with
    return cell


def sheet_title(title: str) -> str:
    return title.translate(SHEET_TITLE_FORBIDDEN)[:MAX_SHEET_TITLE] or "Ark"


# Column widths are read from the header and the first rows (a streamed sheet is written before its end is known).
WIDTH_SAMPLE_ROWS = 200
MIN_WIDTH, MAX_WIDTH = 8, 50


def _shown_length(value: object) -> int:
    if isinstance(value, datetime):
        return len("01.01.2026 10:00")
    if isinstance(value, date):
        return len("01.01.2026")
    if isinstance(value, Percent):
        return len("100,0 %")
    if value is None:
        return 0
    return max((len(line) for line in str(value).splitlines()), default=0)


def column_widths(header: list[str], rows: list[list[object]]) -> list[int]:
    """Wide enough for the header and the longest sampled value of each column (+2), within sensible bounds."""
    widths = [len(title) + 4 for title in header]  # the autofilter's arrow sits beside the header
    for row in rows:
        for index, value in enumerate(row[: len(widths)]):
            widths[index] = max(widths[index], _shown_length(value) + 2)
    return [max(MIN_WIDTH, min(MAX_WIDTH, width)) for width in widths]


def workbook_bytes(sheets: Iterable[Sheet]) -> bytes:
    """Each sheet with a bold, frozen header row, an autofilter over its table, and widths that fit its values."""
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    for sheet in sheets:
        worksheet = workbook.create_sheet(sheet_title(sheet.title))
        rows = iter(sheet.rows)
        sample = [list(row) for row in itertools.islice(rows, WIDTH_SAMPLE_ROWS)]
        widths = sheet.column_widths or column_widths(sheet.header, sample)
        for index, width in enumerate(widths):
            worksheet.column_dimensions[get_column_letter(index + 1)].width = width
        worksheet.freeze_panes = "A2"
        header = []
        for title in sheet.header:
            cell = typed_cell(worksheet, title)
            cell.font = bold
            header.append(cell)
        worksheet.append(header)
        written = 1
        for row in itertools.chain(sample, rows):
            worksheet.append([typed_cell(worksheet, value) for value in row])
            written += 1
        if sheet.header and sheet.autofilter:
            worksheet.auto_filter.ref = f"A1:{get_column_letter(len(sheet.header))}{written}"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsx_response(sheets: Iterable[Sheet], filename: str) -> Response:
    response = Response(workbook_bytes(sheets), mimetype=XLSX_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
