"""The sales pipeline: the board's read model (board.py), moves (moves.py), follow-up (owners, next steps, notes,
the timeline), a lead's details and history, the morning digest, and the staff pages (views/)."""
