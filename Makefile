PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: dev test test-fast bench clean

# One venv for dev and test: the test extra includes the dev extra.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(INSTALLED)

# make dev PORT=3300: the UI on another port (the alert links follow it).
PORT ?= 3000

dev: $(INSTALLED)
	$(BIN)/vector-assets dev --port $(PORT)

test: $(INSTALLED)
	$(BIN)/dg check defs
	$(BIN)/pytest -q

# The quick loop: everything but the end-to-end and fault tests.
test-fast: $(INSTALLED)
	$(BIN)/pytest -q -m "not e2e and not faults"

bench: $(INSTALLED)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .vector_assets
