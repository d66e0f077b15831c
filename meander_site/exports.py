"""What the exports contain: the board's leads and the report's tables, with Norwegian headers and labels.

Rows carry typed Python values (datetimes in UTC, ints, text); csv_export and xlsx_export decide how each
type is written. Leads are streamed in batches, never all loaded at once.
"""

from collections.abc import Iterator

import sqlalchemy as sa

from .extensions import db
from .models import Lead, LeadSource, LeadStatus, OrganizationSize, User
from .reports import Report
from .sales import BoardFilter
from .xlsx_export import Percent, Sheet

STATUS_LABELS = dict(LeadStatus.choices())
SOURCE_LABELS = dict(LeadSource.choices())
SIZE_LABELS = dict(OrganizationSize.choices())


def _label(labels: dict[str, str]):
    return lambda value: labels.get(value, value) if value else None


# (header, column, how its value reads); the order is the spreadsheet's.
LEAD_COLUMNS = (
    ("Id", Lead.id, str),
    ("Fornavn", Lead.first_name, None),
    ("Etternavn", Lead.last_name, None),
    ("E-post", Lead.email, None),
    ("Telefon", Lead.phone, None),
    ("Organisasjon", Lead.organization_name, None),
    ("Rolle", Lead.role_title, None),
    ("Størrelse", Lead.organization_size, _label(SIZE_LABELS)),
    ("Bruker i dag", Lead.current_solution, None),
    ("Ønsket tidspunkt", Lead.preferred_demo_timing, None),
    ("Notater", Lead.notes, None),
    ("Status", Lead.status, _label(STATUS_LABELS)),
    ("Kilde", Lead.source, _label(SOURCE_LABELS)),
    ("Eier", User.name, None),
    ("Neste steg", Lead.next_step, None),
    ("Frist for neste steg", Lead.next_step_due_at, None),
    ("Bookinger", Lead.booking_count, None),
    ("Bekreftelse sendt", Lead.confirmation_sent_at, None),
    ("Opprettet", Lead.created_at, None),
    ("Sist endret", Lead.updated_at, None),
    ("Status endret", Lead.status_changed_at, None),
    ("Kampanje", Lead.first_utm_campaign, None),
    ("utm_source", Lead.first_utm_source, None),
    ("utm_medium", Lead.first_utm_medium, None),
    ("Henvisende nettsted", Lead.first_referrer_host, None),
    ("Siste kampanje", Lead.latest_utm_campaign, None),
    ("Referanse", Lead.masked_ref, None),
)
LEAD_HEADER = [header for header, _, _ in LEAD_COLUMNS]


def lead_rows(board_filter: BoardFilter) -> Iterator[list]:
    """Every lead the board's filter matches, newest first, as the board shows them."""
    query = (
        sa.select(*(column for _, column, _ in LEAD_COLUMNS))
        .select_from(Lead)
        .outerjoin(User, User.id == Lead.owner_id)
        .where(*board_filter.conditions())
        .order_by(Lead.created_at.desc(), Lead.id)
    )
    readers = [reader for _, _, reader in LEAD_COLUMNS]
    for row in db.session.execute(query.execution_options(yield_per=1000)):
        yield [
            reader(value) if reader and value is not None else value for reader, value in zip(readers, row, strict=True)
        ]


def lead_table(board_filter: BoardFilter) -> Iterator[list]:
    yield LEAD_HEADER
    yield from lead_rows(board_filter)


def _share(value: float | None):
    return Percent(value) if value is not None else None


def _days(value: float | None):
    return round(value, 1) if value is not None else None


def report_sheets(report: Report) -> list[Sheet]:
    """The report page's tables, one sheet each, with the same headings."""
    segment_header = ["Leads", "Kunder", "Konvertering", "Tapt", "Andel tapt"]

    def segment_rows(segments):
        return [
            [
                segment.label,
                segment.leads,
                segment.converted,
                _share(segment.conversion_rate),
                segment.lost,
                _share(segment.lost_rate),
            ]
            for segment in segments
        ]

    return [
        Sheet(
            "Trakt",
            ["Steg", "Leads", "Andel av steget før", "Andel av alle"],
            [
                [step.status.label, step.count, _share(step.step_rate), _share(step.overall_rate)]
                for step in report.funnel
            ],
        ),
        Sheet("Kilde", ["Kilde", *segment_header], segment_rows(report.by_source)),
        Sheet("Kampanje", ["Kampanje", *segment_header], segment_rows(report.by_campaign)),
        Sheet("Størrelse", ["Størrelse", *segment_header], segment_rows(report.by_size)),
        Sheet(
            "Tid",
            ["Måling", "Median (dager)", "75. persentil (dager)"],
            [[timing.label, _days(timing.median_days), _days(timing.p75_days)] for timing in report.timings]
            + [[f"I «{stage.label}»", _days(stage.median_days), None] for stage in report.stage_medians],
        ),
        Sheet(
            "Svartid",
            ["Besvart innen én arbeidsdag", "Avgjort", "Andel"],
            [[report.promise_kept, report.promise_due, _share(report.promise_rate)]],
        ),
        Sheet("Tapt", ["Årsak", "Leads"], [[reason, count] for reason, count in report.lost_reasons]),
        Sheet(
            "Uker",
            ["Uke som starter", "Nye leads", "Bookinger"],
            [[week.starts_on, week.new_leads, week.bookings] for week in report.weeks],
        ),
    ]
