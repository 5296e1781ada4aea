PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: dev test bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(INSTALLED)

dev: $(INSTALLED)
	$(BIN)/vector-assets dev

test: $(INSTALLED)
	$(BIN)/pytest -q

bench: $(INSTALLED)
	$(BIN)/vector-assets bench

clean:
	rm -rf $(VENV) .vector_assets
