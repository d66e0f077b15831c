"""The conversion report (GET /pipeline/report), its .xlsx, and the board's «Last ned Excel».

Sign-in and no-store come from the blueprint (views.py). The numbers come from reports.build; this module
only turns them into chart geometry for the server-rendered SVG.
"""

from dataclasses import dataclass

from flask import render_template, request
from flask_login import current_user

from .. import attribution, exports, follow_up, reports, sales
from ..models import LeadSource, OrganizationSize, utcnow
from ..xlsx_export import Sheet, xlsx_response
from . import bp
from .views import current_filter

CHART_WIDTH = 640
BAR_HEIGHT = 28
BAR_GAP = 10
LABEL_WIDTH = 130
LINE_HEIGHT = 220
LINE_PADDING = 36

bp.add_app_template_global(reports.campaign_choices, "campaign_choices")
bp.add_app_template_global(attribution.LABELS, "attribution_labels")


@dataclass
class Bar:
    label: str
    value: int
    y: int
    width: float


def funnel_bars(report: reports.Report) -> list[Bar]:
    largest = max((step.count for step in report.funnel), default=0) or 1
    usable = CHART_WIDTH - LABEL_WIDTH - 60
    return [
        Bar(
            label=step.status.label,
            value=step.count,
            y=index * (BAR_HEIGHT + BAR_GAP),
            width=usable * step.count / largest,
        )
        for index, step in enumerate(report.funnel)
    ]


def week_lines(report: reports.Report) -> dict:
    """Polyline points for new leads and bookings per week, with a y scale of round numbers."""
    weeks = report.weeks
    top = max([week.new_leads for week in weeks] + [week.bookings for week in weeks] + [1])
    step = _nice_step(top)
    top = step * -(-top // step)
    inner_width = CHART_WIDTH - 2 * LINE_PADDING
    inner_height = LINE_HEIGHT - 2 * LINE_PADDING

    def x(index: int) -> float:
        return LINE_PADDING + inner_width * index / max(1, len(weeks) - 1)

    def y(value: int) -> float:
        return LINE_PADDING + inner_height * (1 - value / top)

    def points(values: list[int]) -> str:
        return " ".join(f"{x(index):.1f},{y(value):.1f}" for index, value in enumerate(values))

    return {
        "new_leads": points([week.new_leads for week in weeks]),
        "bookings": points([week.bookings for week in weeks]),
        "ticks": [{"value": value, "y": y(value)} for value in range(0, top + 1, step)],
        "labels": [
            {"x": x(index), "week": week}
            for index, week in enumerate(weeks)
            if index % 4 == 0 or index == len(weeks) - 1
        ],
        "left": LINE_PADDING,
        "right": CHART_WIDTH - LINE_PADDING,
        "bottom": LINE_HEIGHT - LINE_PADDING,
    }


def _nice_step(top: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000):
        if top / step <= 5:
            return step
    return 10 ** len(str(top))


def current_report_filter() -> reports.ReportFilter:
    return reports.ReportFilter.from_args(request.args, viewer_id=current_user.id)


@bp.get("/report")
def report():
    report_filter = current_report_filter()
    built = reports.cached_build(report_filter)
    return render_template(
        "pipeline/report.html",
        report=built,
        report_filter=report_filter,
        board_filter=report_filter.board_filter,
        periods=reports.PERIODS,
        source_choices=LeadSource.choices(),
        size_choices=OrganizationSize.choices(),
        owner_filters=sales.OWNER_FILTERS,
        staff=follow_up.active_staff(),
        bars=funnel_bars(built),
        lines=week_lines(built),
        chart_width=CHART_WIDTH,
        bar_height=BAR_HEIGHT,
        label_width=LABEL_WIDTH,
        line_height=LINE_HEIGHT,
    )


@bp.get("/report.xlsx")
def report_xlsx():
    built = reports.cached_build(current_report_filter())
    return xlsx_response(exports.report_sheets(built), filename=f"rapport-{utcnow():%Y-%m-%d}.xlsx")


@bp.get("/leads.xlsx")
def export_xlsx():
    board_filter = current_filter()
    sheet = Sheet("Leads", exports.LEAD_HEADER, exports.lead_rows(board_filter))
    return xlsx_response([sheet], filename=f"leads-{utcnow():%Y-%m-%d}.xlsx")
