"""Infrastructure any area may use, and that knows no area: the database and Redis clients, logging, security
headers and trusted hosts, the htmx protocol, Norwegian formatting and business days, text rules, static files."""
