"""What the worker process runs: RQ's worker and the periodic jobs (runner.py), the job that sends mail
(jobs.py), and the one list of every kind of mail it can build (kinds.py). The top of the house, like the
views: nothing else imports it."""
