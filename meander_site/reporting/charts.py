"""The report's charts as geometry for the server-rendered SVG: bars for the funnel, lines for the weeks."""

from dataclasses import dataclass

from .queries import Report

CHART_WIDTH = 640
BAR_HEIGHT = 28
BAR_GAP = 10
LABEL_WIDTH = 130
LINE_HEIGHT = 220
LINE_PADDING = 36


@dataclass
class Bar:
    label: str
    value: int
    y: int
    width: float


def funnel_bars(report: Report) -> list[Bar]:
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


def week_lines(report: Report) -> dict:
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


@dataclass
class MonthBars:
    label: str
    y: int
    open_width: float
    weighted_width: float
    open_value: int
    weighted_value: float


MONTH_BAR_HEIGHT = 14


def month_bars(report: Report) -> list[MonthBars]:
    """Expected value per close month: the open value and, under it, the weighted value, to one scale."""
    months = report.value.months if report.value else []
    largest = max((month.open_value for month in months), default=0) or 1
    usable = CHART_WIDTH - LABEL_WIDTH - 110
    return [
        MonthBars(
            label=month.label,
            y=index * (2 * MONTH_BAR_HEIGHT + BAR_GAP),
            open_width=usable * month.open_value / largest,
            weighted_width=usable * month.weighted_value / largest,
            open_value=month.open_value,
            weighted_value=month.weighted_value,
        )
        for index, month in enumerate(months)
    ]
