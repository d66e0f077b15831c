"""The conversion report (GET /pipeline/report), its .xlsx, and the board's «Last ned Excel» and «Last ned CSV».

Staff only, never cached. The figures come from cache.cached_build; charts.py turns them into SVG geometry.
"""

from flask import Blueprint, render_template, request
from flask_login import current_user

from ..accounts import users
from ..accounts.access import staff_only
from ..core.clock import utcnow
from ..leads import attribution
from ..leads.models import LeadSource, OrganizationSize
from ..pipeline.board import OWNER_FILTERS, BoardFilter
from . import cache, exports, filters, no_shows, queries, speed
from .charts import BAR_HEIGHT, CHART_WIDTH, LABEL_WIDTH, LINE_HEIGHT, funnel_bars, month_bars, week_lines
from .csv_export import csv_response
from .xlsx_export import Sheet, xlsx_response

bp = Blueprint("reporting", __name__, url_prefix="/pipeline")
staff_only(bp)
bp.add_app_template_global(queries.campaign_choices, "campaign_choices")
bp.add_app_template_global(attribution.LABELS, "attribution_labels")


def current_board_filter() -> BoardFilter:
    return BoardFilter.from_args(request.values, viewer_id=current_user.id)


def current_report_filter() -> filters.ReportFilter:
    return filters.ReportFilter.from_args(request.args, viewer_id=current_user.id)


@bp.get("/report")
def report():
    report_filter = current_report_filter()
    built = cache.cached_build(report_filter)
    return render_template(
        "reporting/report.html",
        report=built,
        speed=speed.speed_report(built.speed),
        report_filter=report_filter,
        board_filter=report_filter.board_filter,
        periods=filters.PERIODS,
        source_choices=LeadSource.choices(),
        size_choices=OrganizationSize.choices(),
        owner_filters=OWNER_FILTERS,
        staff=users.active_staff(),
        no_shows=no_shows.rates(built.no_show_counts),
        bars=funnel_bars(built),
        lines=week_lines(built),
        months=month_bars(built),
        touches=filters.TOUCHES,
        chart_width=CHART_WIDTH,
        bar_height=BAR_HEIGHT,
        label_width=LABEL_WIDTH,
        line_height=LINE_HEIGHT,
    )


@bp.get("/report.xlsx")
def report_xlsx():
    built = cache.cached_build(current_report_filter())
    return xlsx_response(exports.report_sheets(built), filename=exports.report_filename(built))


@bp.get("/leads.xlsx")
def export_xlsx():
    board_filter = current_board_filter()
    sheet = Sheet("Leads", exports.LEAD_HEADER, exports.lead_rows(board_filter))
    return xlsx_response([sheet], filename=f"leads-{utcnow():%Y-%m-%d}.xlsx")


@bp.get("/leads.csv")
def export_csv():
    board_filter = current_board_filter()
    return csv_response(exports.lead_table(board_filter), filename=f"leads-{utcnow():%Y-%m-%d}.csv")
