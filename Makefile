# The two commands: `make demo` and `make test`.  Both work from a fresh clone
# with only Python 3.11 and the OS packages.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest system-deps postgres bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# The virtualenv with the package, its test tools and the optional preview extra.
install: $(STAMP)
	@echo "installed in $(VENV); activate it with: source $(VENV)/bin/activate"

demo: $(STAMP)
	$(BIN)/newsletter demo

# OS packages the tests need: Chromium for browser tests and email screenshots, wrk for
# the load test (tests/reliability/test_load.py, bench/load_subscribe.py), Dovecot's IMAP
# and POP3 servers for the bounce-mailbox tests (tests/dovecot.py).
system-deps:
	@{ command -v chromium && command -v wrk && test -x /usr/lib/dovecot/imap && \
	  test -x /usr/lib/dovecot/pop3; } >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core wrk \
	  dovecot-imapd dovecot-pop3d; }

# PostgreSQL is required for the tests; start the local cluster if it is down.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && sleep 2; }
	@pg_isready -h 127.0.0.1 -p 5432

lint: $(STAMP)
	$(BIN)/ruff check newsletter tests scheduler.py bench
	$(BIN)/ruff format --check newsletter tests scheduler.py bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps postgres
	$(BIN)/python -m pytest -q -p no:cacheprovider

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
