"""Speed to lead: who gets a new lead (the weighted round-robin pool, or its earlier owner), the first-contact clock in
business time with its contact attempts, and the escalation when the clock runs out. Knows nothing of HTTP."""
