"""Invisible format characters (Unicode Cf: bidi overrides, the byte-order mark, zero-width spaces) are refused in
single-line fields with a Norwegian 422, by the one rule for forbidden characters (issue 16, item 7). They would
reach mail subjects, the .ics SUMMARY and exports. A joiner inside an emoji sequence is part of the picture."""

import pytest
from helpers.booking import CSRF_INPUT, book, make_lead, stored_counts
from helpers.jobs import run_jobs
from helpers.scheduling import make_scheduled_lead

from meander_site.core.text import forbidden_character_message

SINGLE_LINE = ("first_name", "last_name", "organization_name", "role_title")
HIDDEN = {
    "right-to-left override": "Ab\u202ecd",
    "byte-order mark": "\ufeffKari",
    "zero-width space": "Ka\u200bri",
    "left-to-right isolate": "Kari \u2066Nordmann\u2069",
    "word joiner": "Ka\u2060ri",
}


@pytest.mark.parametrize("field", SINGLE_LINE)
@pytest.mark.parametrize("name", list(HIDDEN))
def test_a_booking_with_a_format_character_in_a_single_line_field_is_refused(app, client, field, name):
    response = book(client, **{field: HIDDEN[name]})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Feltet inneholder et usynlig kontrolltegn. Skriv teksten inn på nytt." in page
    assert stored_counts(app) == (0, 0)


def test_a_bidi_override_in_a_multi_line_field_is_refused_too(app, client):
    response = book(client, notes="Vi har 120 likepersoner.\n\u202eexe.txt")

    assert response.status_code == 422
    assert stored_counts(app) == (0, 0)


def test_emoji_sequences_and_soft_hyphens_in_notes_are_kept(app, client):
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"
    response = book(client, first_name=f"Kari {family}", notes="Fag\u00adlig leder")

    assert response.status_code == 303
    assert stored_counts(app) == (1, 1)


def test_a_staff_edit_is_held_to_the_same_rule(app, staff_client, token):
    lead = make_lead(app)

    response = staff_client.post(
        f"/pipeline/leads/{lead['id']}",
        data={
            "csrf_token": token,
            "first_name": "Ab\u202ecd",
            "last_name": "Nordmann",
            "email": "kari.nordmann@lhl.no",
            "organization_name": "LHL",
            "role_title": "Leder",
        },
    )
    assert response.status_code == 422
    assert "usynlig kontrolltegn" in response.get_data(as_text=True)


def test_the_wish_for_another_time_refuses_a_bidi_override(app, staff_user):
    lead = make_scheduled_lead(app, staff_user["id"])
    run_jobs(app)
    client = app.test_client()
    token = CSRF_INPUT.search(client.get(f"/confirm/{lead['masked_ref']}").get_data(as_text=True)).group(1)

    response = client.post(
        f"/confirm/{lead['masked_ref']}/annet-tidspunkt", data={"csrf_token": token, "wish": "Ab\u202ecd"}
    )

    assert response.status_code == 422
    assert "usynlig kontrolltegn" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("value", "multiline", "refused"),
    [
        ("Kari\u00adNordmann", False, True),  # a soft hyphen in a name
        ("Kari\u00adNordmann", True, False),  # …in notes, pasted from a word processor
        ("\u200dKari", False, True),  # a joiner with no emoji around it
        ("\u2764\ufe0f\u200d\U0001f525", False, False),  # ❤️‍🔥
        ("\U0001f44b\U0001f3fd\u200d", False, True),  # a joiner at the end
    ],
)
def test_the_rule_itself(value, multiline, refused):
    assert (forbidden_character_message(value, multiline) is not None) == refused
