"""What the tests share besides fixtures: building requests, signing in, running jobs, waiting, browsers and
servers. Fixtures live in the conftest.py files; a test module imports these helpers, never another test module.

Test modules import them as `from helpers.booking import book` (pyproject.toml puts tests/ on sys.path).
"""
