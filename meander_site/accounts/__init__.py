"""The sales team's accounts: who may sign in, passwords and server-side sessions, the sign-in pages, and the
team as a recipient of mail."""
