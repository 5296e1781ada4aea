PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Azurite, the Azure Blob server the tests start on 127.0.0.1 (npm; 3.35.0 is the last to run on node 20).
AZURITE_VERSION := 3.35.0
AZURITE := $(VENV)/azurite/.installed-$(AZURITE_VERSION)

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

test: $(INSTALLED) $(AZURITE) age-tool
	$(BIN)/dg check defs
	$(BIN)/pytest -q

# The quick loop: everything but the end-to-end and fault tests.
test-fast: $(INSTALLED) $(AZURITE) age-tool
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
