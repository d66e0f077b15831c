"""Every mail the site sends is an outbox row first: writing the row (outbox.py), nudging a job to send it
(dispatch.py), the sweep for what Redis lost (sweep.py), how long things wait (timing.py), what a kind of mail
is (kind.py), and SMTP (smtp.py). The worker's side, the job that sends, is in meander_site/worker/."""
