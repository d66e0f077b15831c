"""What the exports contain: the board's leads and the report's tables, with Norwegian headers and labels.

Rows carry typed Python values (datetimes in UTC, ints, text); csv_export and xlsx_export decide how each
type is written. Leads are streamed in batches, never all loaded at once.
"""

from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from ..accounts.models import User
from ..business_days import OSLO
from ..extensions import db
from ..leads.models import Lead, LeadSource, OrganizationSize
from ..leads.statuses import LOST_REASONS, LeadStatus
from ..pipeline.board import BoardFilter
from .filters import TOUCHES, ReportFilter
from .queries import Report
from .xlsx_export import Percent, Sheet

STATUS_LABELS = dict(LeadStatus.choices())
SOURCE_LABELS = dict(LeadSource.choices())
SIZE_LABELS = dict(OrganizationSize.choices())


def _label(labels: dict[str, str]):
    return lambda value: labels.get(value, value) if value else None


def _oslo_date(value):
    """A due instant (the end of its Oslo day) as the date it is due: «Frist» is a day, not 23:59."""
    return value.astimezone(OSLO).date()


DemoHost = aliased(User, name="demo_host")


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
    ("Opprinnelse", Lead.source, _label(SOURCE_LABELS)),
    ("Kanal", Lead.first_channel, None),
    ("Siste kanal", Lead.latest_channel, None),
    ("Runde", Lead.pass_number, None),
    ("Tapt-årsak", Lead.lost_reason, _label(LOST_REASONS)),
    ("Avtalt verdi (kr)", Lead.deal_value, None),
    ("Anslått verdi (kr)", Lead.estimated_value, None),
    ("Forventet avsluttet", Lead.expected_close_month, None),
    ("Demo", Lead.demo_at, None),
    ("Demovert", DemoHost.name, None),
    ("Eier", User.name, None),
    ("Neste steg", Lead.next_step, None),
    ("Frist", Lead.next_step_due_at, _oslo_date),
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
        .outerjoin(DemoHost, DemoHost.id == Lead.demo_host_id)
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
        about_sheet(report),
        *value_sheets(report),
        Sheet(
            "Trakt",
            ["Steg", "Leads", "Andel av steget før", "Andel av alle"],
            [
                [step.status.label, step.count, _share(step.step_rate), _share(step.overall_rate)]
                for step in report.funnel
            ],
        ),
        Sheet("Opprinnelse", ["Opprinnelse", *segment_header], segment_rows(report.by_source)),
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


def filter_descriptions(report_filter: ReportFilter) -> list[tuple[str, str]]:
    """The report's filters as the page shows them: (what, which)."""
    board = report_filter.board_filter
    described = []
    if board.source:
        described.append(("Opprinnelse", SOURCE_LABELS.get(board.source, board.source)))
    if board.campaign:
        described.append(("Kampanje", board.campaign))
    if board.organization_size:
        described.append(("Størrelse", SIZE_LABELS.get(board.organization_size, board.organization_size)))
    if board.owner:
        owner = {"mine": "Mine", "none": "Ufordelt"}.get(board.owner)
        if owner is None:
            owner = db.session.execute(sa.select(User.name).where(User.id == board.owner)).scalar() or board.owner
        described.append(("Eier", owner))
    described.append(("Kanal fra", TOUCHES[report_filter.touch]))
    return described


def about_sheet(report: Report) -> Sheet:
    """The first sheet: which period and which filters the figures are for."""
    rows = [
        ["Periode fra", report.first_day],
        ["Periode til", report.last_day],
        *([what, which] for what, which in filter_descriptions(report.report_filter)),
        ["Beregnet", report.computed_at],
    ]
    return Sheet("Om rapporten", ["Hva", "Verdi"], rows, autofilter=False)


def value_sheets(report: Report) -> list[Sheet]:
    value = report.value
    if value is None:
        return []
    money_header = ["Kunder i perioden", "Vunnet (kr)", "Åpen (kr)", "Vektet (kr)"]

    def money_rows(rows):
        return [[row.label, row.won_count, row.won_value, row.open_value, round(row.weighted_value)] for row in rows]

    summary = [
        ["Vunnet i perioden (kr)", value.won_value],
        ["Kunder i perioden", value.won_count],
        ["Gjennomsnittlig avtale (kr)", round(value.average_deal) if value.average_deal is not None else None],
        ["Åpen pipeline (kr)", value.open_value],
        ["Åpen pipeline, vektet (kr)", round(value.weighted_value)],
        *(
            [f"Sannsynlighet «{LeadStatus(status).label}»", Percent(percent / 100)]
            for status, percent in value.weights.items()
        ),
    ]
    return [
        Sheet("Verdi", ["Måltall", "Verdi"], summary),
        Sheet(
            "Per måned",
            ["Måned", "Åpen (kr)", "Vektet (kr)"],
            [[month.month, month.open_value, round(month.weighted_value)] for month in value.months],
        ),
        Sheet("Verdi etter eier", ["Eier", *money_header], money_rows(value.by_owner)),
        Sheet("Verdi etter kanal", ["Kanal", *money_header], money_rows(value.by_channel)),
        Sheet(
            "Etter kanal",
            [
                "Kanal",
                "Kampanje",
                "Leads",
                "Demoer holdt",
                "Kunder",
                "Konvertering",
                "Vunnet (kr)",
                "Median dager til kunde",
            ],
            [
                [
                    row.channel,
                    row.campaign,
                    row.leads,
                    row.demos_held,
                    row.customers,
                    _share(row.conversion_rate),
                    row.won_value,
                    _days(row.median_days_to_customer),
                ]
                for row in value.channels
            ],
        ),
    ]


def report_filename(report: Report) -> str:
    """«rapport-2026-01-01-til-2026-06-14-kampanje-vinter.xlsx»: the period and the filters, in plain ASCII."""
    parts = ["rapport", report.first_day.isoformat(), "til", report.last_day.isoformat()]
    for what, which in filter_descriptions(report.report_filter):
        if what == "Kanal fra" and report.report_filter.touch == "first":
            continue
        parts += [what, which]
    slug = "-".join(parts).lower()
    for plain, special in (("ae", "æ"), ("o", "ø"), ("a", "å")):
        slug = slug.replace(special, plain)
    slug = "".join(character if character.isascii() and character.isalnum() else "-" for character in slug)
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug.strip("-")[:150] + ".xlsx"
