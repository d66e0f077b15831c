"""The next step proposed for a lead: «Første kontakt» when it arrives, a sensible follow-up after each move."""

from datetime import UTC, datetime, timedelta

import pytest

from meander_site.business_days import OSLO
from meander_site.leads.next_step import NextStep, first_step, is_overdue
from meander_site.leads.statuses import FINAL_STATUSES, LeadStatus, allowed_moves
from meander_site.pipeline.next_steps import proposal_after_move


def oslo(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=OSLO).astimezone(UTC)


def end_of_oslo_day(year: int, month: int, day: int) -> datetime:
    return oslo(year, month, day, 23, 59, 59)


# Friday 4 December 2026; the following week has no holidays.
FRIDAY = oslo(2026, 12, 4, 14, 0)
MONDAY = oslo(2026, 12, 7, 10, 0)


def test_a_new_leads_first_step_is_first_contact_by_the_end_of_the_next_business_day():
    assert first_step(FRIDAY) == NextStep("Første kontakt", end_of_oslo_day(2026, 12, 7))


def test_first_contact_for_a_lead_arriving_before_easter_waits_for_easter_tuesday():
    assert first_step(oslo(2026, 4, 1, 16, 0)).due_at == end_of_oslo_day(2026, 4, 7)


def test_first_contact_counts_from_the_oslo_date_of_arrival():
    sunday_2330_utc = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)  # Monday 00:30 in Oslo
    assert first_step(sunday_2330_utc).due_at == end_of_oslo_day(2026, 12, 8)


def test_after_contact_follow_up_and_qualify_in_two_business_days():
    thursday = oslo(2026, 12, 3, 11, 0)
    proposal = proposal_after_move("contacted", thursday)
    assert proposal == NextStep("Følg opp og kvalifiser", end_of_oslo_day(2026, 12, 7))


def test_after_contact_before_easter_the_holidays_do_not_count():
    wednesday = oslo(2026, 4, 1, 11, 0)
    assert proposal_after_move(LeadStatus.CONTACTED, wednesday).due_at == end_of_oslo_day(2026, 4, 8)


def test_after_qualifying_book_a_demo_in_three_business_days():
    assert proposal_after_move("qualified", MONDAY) == NextStep("Avtal demo", end_of_oslo_day(2026, 12, 10))
    assert proposal_after_move("qualified", FRIDAY).due_at == end_of_oslo_day(2026, 12, 9)


def test_after_scheduling_a_demo_follow_up_the_business_day_after_it():
    friday_demo = oslo(2026, 12, 11, 13, 0)
    proposal = proposal_after_move("demo_scheduled", MONDAY, demo_at=friday_demo)
    assert proposal == NextStep("Følg opp etter demoen", end_of_oslo_day(2026, 12, 14))


def test_a_demo_before_ascension_day_is_followed_up_on_the_friday():
    proposal = proposal_after_move("demo_scheduled", oslo(2026, 5, 4, 9, 0), demo_at=oslo(2026, 5, 13, 10, 0))
    assert proposal.due_at == end_of_oslo_day(2026, 5, 15)


def test_the_demos_oslo_date_counts():
    # 23:30 UTC on Thursday is Friday 00:30 in Oslo: the follow-up is on Monday, not on Friday.
    demo_just_after_midnight = datetime(2026, 12, 10, 23, 30, tzinfo=UTC)
    proposal = proposal_after_move("demo_scheduled", MONDAY, demo_at=demo_just_after_midnight)
    assert proposal.due_at == end_of_oslo_day(2026, 12, 14)


def test_a_demo_in_summer_time_is_followed_up_at_the_end_of_the_day_in_summer_time():
    saturday_before_summer_time = oslo(2027, 3, 27, 23, 30)
    demo = oslo(2027, 4, 6, 13, 0)
    due = proposal_after_move("demo_scheduled", saturday_before_summer_time, demo_at=demo).due_at
    assert due == datetime(2027, 4, 7, 21, 59, 59, tzinfo=UTC)


def test_without_a_demo_time_follow_up_in_five_business_days():
    proposal = proposal_after_move("demo_scheduled", MONDAY)
    assert proposal == NextStep("Følg opp etter demoen", end_of_oslo_day(2026, 12, 14))


def test_a_demo_already_behind_us_is_followed_up_by_the_next_business_day():
    last_week = oslo(2026, 11, 30, 13, 0)
    assert proposal_after_move("demo_scheduled", FRIDAY, demo_at=last_week).due_at == end_of_oslo_day(2026, 12, 7)


@pytest.mark.parametrize("final_status", ["converted", "lost", LeadStatus.CONVERTED, LeadStatus.LOST])
def test_a_final_status_has_no_next_step(final_status):
    assert proposal_after_move(final_status, MONDAY, demo_at=MONDAY + timedelta(days=2)) is None


def test_every_forward_move_proposes_a_step_unless_it_ends_the_lead():
    # Tied to the pipeline's own rule: every status a move can reach, from wherever a lead may stand.
    reachable = {target for origin in LeadStatus for target in allowed_moves(origin)}
    assert reachable == set(LeadStatus) - {LeadStatus.NEW}
    for target in reachable:
        proposal = proposal_after_move(target, MONDAY)
        if target in FINAL_STATUSES:
            assert proposal is None, target
        else:
            assert proposal.text and proposal.due_at > MONDAY, target


def test_every_proposal_is_due_at_a_whole_second_in_utc():
    for proposal in [first_step(FRIDAY), *(proposal_after_move(s, FRIDAY) for s in ("contacted", "qualified"))]:
        assert proposal.due_at.tzinfo == UTC
        assert proposal.due_at.microsecond == 0


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError):
        proposal_after_move("archived", MONDAY)


def test_a_step_due_today_is_overdue_only_once_the_day_has_ended_in_oslo():
    step = first_step(FRIDAY)  # due Monday 7 December
    assert not step.is_overdue(oslo(2026, 12, 7, 23, 59, 59))
    assert step.is_overdue(oslo(2026, 12, 8, 0, 0))
    assert not is_overdue(step.due_at, oslo(2026, 12, 7, 8, 0))
    assert is_overdue(step.due_at, oslo(2026, 12, 10, 8, 0))
