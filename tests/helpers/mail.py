"""Reading the mail the site sent as a phone would: the text and HTML parts, and what sticks out of 375 px."""

PHONE_WIDTH = 375


def widest(page, html: str) -> dict:
    page.set_content(html)
    return page.evaluate(
        """() => ({
            scrollWidth: document.documentElement.scrollWidth,
            innerWidth: window.innerWidth,
            offenders: [...document.body.querySelectorAll('*')]
                .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
                .map((el) => el.tagName + ': ' + el.textContent.slice(0, 40)),
        })"""
    )


def parts(mail) -> tuple[str, str]:
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None and html is not None, f"{mail['Subject']!r} needs a text part and an HTML part"
    return text.get_content(), html.get_content()
