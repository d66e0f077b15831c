from flask import abort, current_app, render_template, request, url_for

from .. import attribution, leads
from ..client_ip import client_ip
from ..extensions import limiter
from ..htmx import is_htmx_request, redirect_after_post
from . import bp
from .forms import HONEYPOT_FIELD, DemoBookingForm


def render_booking_form(
    form: DemoBookingForm,
    errors: dict | None = None,
    notice: str | None = None,
    status=200,
    touch: attribution.Touch = attribution.NO_TOUCH,
):
    """The whole page for a normal request, only the form fragment for htmx; one template serves both."""
    template = "public/_booking_form.html" if is_htmx_request() else "public/demo.html"
    return render_template(template, form=form, errors=errors or {}, notice=notice, touch=touch), status


def booking_rate_limit() -> str:
    return current_app.config["BOOKING_RATE_LIMIT"]


@bp.get("/")
@bp.get("/demo")
def demo_form():
    touch = attribution.arrival_touch(request.args, request.referrer, current_app.config.get("TRUSTED_HOSTS") or ())
    return render_booking_form(DemoBookingForm(), touch=touch)


# On the blueprint, not the view: blueprint limits run in before_request, ahead of the CSRF check,
# so posts without a valid token count against the limit too. /demo is the blueprint's only POST.
limiter.limit(booking_rate_limit, methods=["POST"])(bp)


@bp.post("/demo")
def book_demo():
    form = DemoBookingForm()
    if form[HONEYPOT_FIELD].data:
        # Looks accepted to the bot; nothing is stored and no mail goes out.
        return redirect_after_post(url_for("public.booking_received"))
    touch = attribution.from_values(request.form)
    try:
        details = leads.validate_contact_details(request.form)
    except leads.LeadValidationError as error:
        return render_booking_form(form, errors=error.errors, status=422, touch=touch)
    booking = leads.book_demo(details, ip_address=client_ip(), touch=touch)
    if booking.is_rebooking:
        # Whoever knows an address can book with it: only its mailbox gets the link to what is stored.
        return redirect_after_post(url_for("public.booking_received"))
    return redirect_after_post(url_for("public.confirmation", masked_ref=booking.masked_ref))


@bp.get("/demo/mottatt")
def booking_received():
    return render_template("public/received.html")


@bp.get("/confirm/<masked_ref>")
def confirmation(masked_ref: str):
    lead = leads.find_by_masked_ref(masked_ref)
    if lead is None:
        abort(404)
    response = current_app.make_response(render_template("public/confirmation.html", lead=lead))
    # The link is the key to this page: keep it out of caches, search engines and Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
