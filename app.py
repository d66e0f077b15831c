"""Entry point for `flask --app app` and gunicorn (`gunicorn app:app`)."""

from meander_site import create_app

app = create_app()
