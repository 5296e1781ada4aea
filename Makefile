PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Azurite, the Azure Blob server the tests start on 127.0.0.1 (npm; 3.35.0 is the last to run on node 20).
AZURITE_VERSION := 3.35.0
AZURITE := $(VENV)/azurite/.installed-$(AZURITE_VERSION)
# The RAG clients whose stores the tests round-trip, in a venv of their own: llama-index pins
# SQLAlchemy below 2.1, Dagster needs 2.1. Every pin is in one file.
CLIENTS_REQUIREMENTS := vector_assets_tests/clients/requirements.txt
CLIENTS := $(VENV)/clients/.installed

.PHONY: dev test test-fast bench clean age-tool

# One venv for dev and test: the test extra includes the dev extra.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(INSTALLED)

# Its own rule, so an existing .venv gets it (or a new version) without reinstalling the rest.
$(AZURITE): | $(INSTALLED)
	rm -rf $(VENV)/azurite
	npm install --prefix $(VENV)/azurite --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)
	touch $(AZURITE)

# Remade from scratch when the pins change, so no package of an earlier pin list stays behind.
$(CLIENTS): $(CLIENTS_REQUIREMENTS) | $(INSTALLED)
	rm -rf $(VENV)/clients
	$(PYTHON) -m venv $(VENV)/clients
	$(VENV)/clients/bin/pip install --quiet -r $(CLIENTS_REQUIREMENTS)
	touch $(CLIENTS)

# make dev PORT=3300: the UI on another port (the alert links follow it).
PORT ?= 3000

dev: $(INSTALLED)
	$(BIN)/vector-assets dev --port $(PORT)

# The reference age tool: the encryption tests prove that a set decrypts without vector_assets.
# Debian's package; the package lists are refreshed only if the install fails without them.
age-tool:
	@command -v age >/dev/null && command -v age-keygen >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y age || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y age)

test: $(INSTALLED) $(AZURITE) $(CLIENTS) age-tool
	$(BIN)/dg check defs
	$(BIN)/pytest -q

# The quick loop: everything but the end-to-end and fault tests.
test-fast: $(INSTALLED) $(AZURITE) $(CLIENTS) age-tool
	$(BIN)/pytest -q -m "not e2e and not faults"

# The benchmark's extra (pandas, matplotlib) on top of the test venv; make test does not need it.
BENCH_INSTALLED := $(VENV)/.bench-installed
$(BENCH_INSTALLED): $(INSTALLED)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCH_INSTALLED)

bench: $(BENCH_INSTALLED)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .vector_assets
