"""The public site: the demo form and the story of a booking (book_demo.py), the confirmation mail and page,
and the team's notice of each new booking."""
