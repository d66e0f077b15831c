"""Absences: the days a member of the team is away, which assignment and the demo slots leave out."""

from datetime import date

import pytest

from meander_site.accounts import absences, audit, users
from meander_site.extensions import db


@pytest.fixture
def seller(app):
    with app.app_context():
        user = users.create_user("selger@meander.no", "Siri Selger", "et-langt-passord-for-selger")
        db.session.commit()
        return user.id


def test_an_absence_counts_on_its_first_and_last_day_and_not_around_it(app, seller):
    with app.app_context():
        absences.add_absence(seller, date(2026, 7, 1), date(2026, 7, 5), "Ferie", actor=seller)
        db.session.commit()

        assert absences.absent_user_ids(date(2026, 6, 30)) == set()
        assert absences.absent_user_ids(date(2026, 7, 1)) == {seller}
        assert absences.absent_user_ids(date(2026, 7, 5)) == {seller}
        assert absences.absent_user_ids(date(2026, 7, 6)) == set()
        assert absences.absences_between([seller], date(2026, 7, 5), date(2026, 7, 20)) == {
            seller: [(date(2026, 7, 1), date(2026, 7, 5))]
        }
        assert absences.absences_between([seller], date(2026, 7, 6), date(2026, 7, 20)) == {}
        assert [entry.text for entry in audit.recent()][0] == (
            "Siri Selger registrerte fravær for Siri Selger: 01.07.2026–05.07.2026"
        )


@pytest.mark.parametrize(
    ("starts_on", "ends_on", "note", "says"),
    [
        (date(2026, 7, 5), date(2026, 7, 1), None, "Siste fraværsdag kan ikke være før første"),
        (date(2026, 7, 1), date(2027, 7, 5), None, "høyst ett år"),
        (date(2026, 7, 1), date(2026, 7, 5), "x" * 101, "høyst 100 tegn"),
    ],
)
def test_an_absence_that_cannot_be_right_is_refused_in_norwegian_and_nothing_is_stored(
    app, seller, starts_on, ends_on, note, says
):
    with app.app_context():
        with pytest.raises(absences.AbsenceError) as refused:
            absences.add_absence(seller, starts_on, ends_on, note, actor=seller)
        db.session.commit()

        assert says in refused.value.message
        assert absences.absences_of(seller) == []


def test_a_removed_absence_no_longer_counts(app, seller):
    with app.app_context():
        absence = absences.add_absence(seller, date(2026, 7, 1), date(2026, 7, 5), actor=None)
        db.session.commit()

        assert absences.remove_absence(absence.id, actor=seller) is True
        db.session.commit()

        assert absences.absent_user_ids(date(2026, 7, 2)) == set()
        assert absences.remove_absence(absence.id, actor=seller) is False
