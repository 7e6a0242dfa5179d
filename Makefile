# The two commands of the README's quick start. Each (re)builds .venv when pyproject.toml changes.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint typecheck docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU wheel pinned here keeps pip from pulling GBs of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/infq demo

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/infq bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The generated pages first (settings tables, API reference), then the site into site/.
docs: $(STAMP)
	$(BIN)/python -m infq.settings.reference README.md docs/configuration.md
	$(BIN)/python -m infq.api.reference docs/api.md
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: $(STAMP) lint typecheck
	HF_HUB_OFFLINE=1 $(BIN)/pytest

clean:
	-$(BIN)/infq stack down
	rm -rf $(VENV) .infq
