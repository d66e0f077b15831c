"""Self-booked demo slots: who takes demos and when (hosts, weekly hours, the administrator's rules), which start
times are free (`availability`, pure), and booking, moving and cancelling one without ever double-booking a host."""
