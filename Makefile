# l3tui: `make run` opens the console on the bundled config/, `make test` runs everything CI runs,
# `make test-quick` the tests not marked slow.
# Each builds .venv from scratch when it is missing or pyproject.toml changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install bytecode run test test-quick lint unit bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
		|| { echo "l3tui needs Python >= 3.11 (found $$($(PYTHON) --version 2>&1)); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dask]'
	@$(MAKE) --no-print-directory bytecode
	@touch $@

# Compiled as a wheel install would be: an editable install is not, and where
# PYTHONDONTWRITEBYTECODE is set (many build images) every start would compile ~135
# modules again (0.2 s of the console's first paint).
bytecode:
	@$(BIN)/python -m compileall -q l3tui

run: install bytecode
	$(BIN)/l3tui --config config

lint: install
	$(BIN)/ruff check l3tui tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

# Everything but the tests marked slow (crash loops, floods, the tmux session): a quick
# check while working; `make test` still runs everything.
test-quick: install
	$(BIN)/pytest -q -m "not slow"

test: lint unit

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
