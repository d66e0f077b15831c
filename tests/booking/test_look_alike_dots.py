"""The confirmation mail quotes no link someone typed, also one written with look-alike dots (issue 16, item 6):
the text is read as a browser or a reader would (NFKC, the ideographic full stop, «[.]») before the link rule."""

import pytest
from helpers.booking import book
from helpers.jobs import run_jobs

from meander_site.core import text

LOOK_ALIKES = [
    "evil\u3002example",  # IDEOGRAPHIC FULL STOP, which IDNA takes for a dot
    "\uff45\uff56\uff49\uff4c\uff0e\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45",  # fullwidth «evil.example»
    "evil\u2024example",  # ONE DOT LEADER
    "evil[.]example",
    "evil (.) example",
    "evil\uff61example",  # HALFWIDTH IDEOGRAPHIC FULL STOP
    "evil\ufe52example",  # SMALL FULL STOP
]
# Refused in a single-line field (a format character), but read through where text is quoted.
HIDDEN_IN_THE_LINK = ["evil.\u200bexample"]


def bodies(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


@pytest.mark.parametrize("organization", LOOK_ALIKES)
def test_an_organization_written_with_look_alike_dots_is_not_quoted(app, client, smtp_server, organization):
    assert book(client, organization_name=organization).status_code == 303
    run_jobs(app)

    [message] = smtp_server.messages()
    for body in bodies(message):
        assert "evil" not in body and "\uff45\uff56\uff49\uff4c" not in body, body
        assert "Vi har mottatt demoforespørselen din" in body


def test_an_ordinary_organization_is_still_quoted(app, client, smtp_server):
    assert book(client, organization_name="St. Olavs hospital, avd. 4.2").status_code == 303
    run_jobs(app)

    [message] = smtp_server.messages()
    assert all(
        "fra St. Olavs hospital, avd. 4.2" in body.replace("<strong>", "").replace("</strong>", "")
        for body in bodies(message)
    )


@pytest.mark.parametrize(
    "written", LOOK_ALIKES + HIDDEN_IN_THE_LINK + ["https://evil.example", "www.evil.example", "a@evil.example"]
)
def test_the_one_link_rule_sees_each_of_them(written):
    assert text.looks_like_link(written)
    assert text.quotable(written) is None
    assert "evil" not in text.without_links(f"Se {written} i dag")
