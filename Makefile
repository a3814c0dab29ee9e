# Two commands do all the set-up: `make serve` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps serve test lint format bench opencode

install: system-deps $(STAMP) opencode

# Re-installs only when the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

system-deps:
	@scripts/install-system-deps.sh

serve: install
	$(BIN)/outrider serve

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python -m benchmarks.api_auth
	$(BIN)/python -m benchmarks.task_start
	$(BIN)/python -m benchmarks.webhooks

# OpenCode (pinned) from npm, for the agent in every sandbox.
OPENCODE_VERSION := 1.18.33
TOOLS := .outrider/tools
$(TOOLS)/.opencode-$(OPENCODE_VERSION):
	@mkdir -p $(TOOLS)
	npm install --prefix $(TOOLS) --no-audit --no-fund --no-save --loglevel=error opencode-ai@$(OPENCODE_VERSION)
	@touch $@
opencode: $(TOOLS)/.opencode-$(OPENCODE_VERSION)
