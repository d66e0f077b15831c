"""The lead, the base every other area stands on: its tables, statuses and the forward-only rule, what may be
typed about a contact, the booking upsert, attribution, the next step and «overdue», and erasure. Knows nothing
of HTTP, and imports no other area but accounts and core."""
