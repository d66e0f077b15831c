# Developer entry points. `make run` starts the whole site locally; `make test` runs the suite.
#
# `make test`: the whole suite, in one pytest-xdist worker process per core (at most 4), each on a database, a
#   Redis and a mail sink of its own (tests/helpers/services.py). `make test TEST_WORKERS=0` runs it in one process.
# `make test-fast`: the quick check, everything but the tests marked slow: those that drive Chromium (browser),
#   start a process (subprocess: gunicorn, worker.py, flask, python, java, redis-server) or inject a fault (fault:
#   stop or black-hole a server, kill a process), and any other test of more than about 2 s. `-m browser` and the
#   other markers of pyproject.toml pick one kind, e.g. `make test PYTEST_ARGS="-m browser"`.
# PYTEST_ARGS is passed on to pytest by both, e.g. PYTEST_ARGS="tests/pipeline -k board --durations=20".
PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
# Touched after a successful install, so the install re-runs when the dependencies change.
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
# worksteal: a worker that runs out of tests takes some of the other's, so a few long tests at the end of one
# worker's share do not leave the other core idle.
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist worksteal
# The Nu Html Checker for tests/core/test_html_validity.py: vnu.jar from the npm registry, run by the machine's java.
HTML_CHECKER := tools/html-checker
HTML_CHECKER_INSTALLED := $(HTML_CHECKER)/node_modules/.installed

.PHONY: install run test test-fast lint clean bench

install: $(INSTALLED)

$(VENV_PYTHON):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "error: Python 3.11 or newer is required, but '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." >&2; \
		echo "       Run e.g. 'make PYTHON=python3.11 $(MAKECMDGOALS)'." >&2; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): $(VENV_PYTHON) pyproject.toml constraints.txt
	$(VENV_PYTHON) -m pip install -c constraints.txt -e '.[dev,test]'
	touch $@

run: $(INSTALLED)
	exec $(VENV_PYTHON) -m meander_site.dev.devrun

test: $(INSTALLED) $(HTML_CHECKER_INSTALLED)
	$(VENV_PYTHON) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-fast: $(INSTALLED)
	$(VENV_PYTHON) -m pytest $(PYTEST_PARALLEL) -m "not slow" $(PYTEST_ARGS)

# --ignore-scripts: the package's install script would download a Java of its own. Without npm or java,
# or when the install fails, the HTML validity test is skipped and says why.
$(HTML_CHECKER_INSTALLED): $(HTML_CHECKER)/package.json $(HTML_CHECKER)/package-lock.json
	@if command -v npm >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then \
		if npm ci --prefix $(HTML_CHECKER) --ignore-scripts --no-audit --no-fund --loglevel=error; then touch $@; \
		else echo "warning: could not install vnu.jar: the HTML validity test will be skipped" >&2; fi; \
	else \
		echo "note: npm or java is missing: the HTML validity test will be skipped" >&2; \
	fi

# `make bench` (never part of `make test`): the site under gunicorn, measured; see bench/run.py.
BENCH_INSTALLED := $(VENV)/.installed-bench

$(BENCH_INSTALLED): $(INSTALLED)
	$(VENV_PYTHON) -m pip install -c constraints.txt -e '.[dev,test,bench]'
	touch $@

bench: $(BENCH_INSTALLED)
	$(VENV_PYTHON) -m bench

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache *.egg-info $(HTML_CHECKER)/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
