"""Excel workbooks (.xlsx) whose every cell is typed: text is text, never a formula; times are Oslo times.

openpyxl reads a string that starts with "=" as a formula and one like "#N/A" as an error, so each string
cell is set to type "s" after its value: whatever a prospect typed arrives in Excel exactly as typed.
"""

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from flask import Response
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from .business_days import OSLO

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


def workbook_bytes(sheets: Iterable[Sheet]) -> bytes:
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    for sheet in sheets:
        worksheet = workbook.create_sheet(sheet_title(sheet.title))
        widths = sheet.column_widths or [max(12, min(40, len(title) + 4)) for title in sheet.header]
        for index, width in enumerate(widths):
            worksheet.column_dimensions[get_column_letter(index + 1)].width = width
        worksheet.freeze_panes = "A2"
        header = []
        for title in sheet.header:
            cell = typed_cell(worksheet, title)
            cell.font = bold
            header.append(cell)
        worksheet.append(header)
        for row in sheet.rows:
            worksheet.append([typed_cell(worksheet, value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsx_response(sheets: Iterable[Sheet], filename: str) -> Response:
    response = Response(workbook_bytes(sheets), mimetype=XLSX_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
