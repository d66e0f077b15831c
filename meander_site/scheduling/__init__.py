"""Demos: when a lead's demo is and who hosts it (demos.py), how its time reads (labels.py), the iCalendar object
(calendar.py), and the invitation, update, cancellation and time-request mails (mails.py)."""
