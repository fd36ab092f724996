# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

# The console's browser tests drive Debian's Chromium (never a downloaded browser).
CHROMIUM := /usr/bin/chromium
APT_GET  := $(if $(filter 0,$(shell id -u)),,sudo -n) apt-get

$(CHROMIUM):
	$(APT_GET) update -qq
	DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium chromium-driver

# The hub's tests on PostgreSQL start Debian's server themselves (tests/pgserver.py).
POSTGRES := /usr/lib/postgresql

$(POSTGRES):
	$(APT_GET) update -qq
	DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq postgresql

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/xdrsync demo

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Three test processes: the suite mostly waits (servers, subprocesses, timers), and one
# process kept 2 cores about 40% busy; three take it from 17-18 minutes to about 8. The chaos
# tests (xdist_group "chaos") run one after another in one of them. The 25 slowest tests are
# listed at the end, to keep the suite's time in view.
test: lint $(CHROMIUM) $(POSTGRES)
	$(BIN)/pytest -n 3 --dist loadgroup --durations=25

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
