"""Development only, never imported by production code: the embedded Redis and mail sink, `make run`
(devrun.py), demo data, and the page that shows the mail the sink caught."""
