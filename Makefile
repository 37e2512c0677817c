# raypay: `make run` starts the whole embedded stack, `make test` runs every test layer.
# The venv is (re)built when missing or older than pyproject.toml (stamp file).

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: venv run test test-unit test-integration test-e2e chaos

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/raypay up

test: $(STAMP)
	$(VENV)/bin/pytest

test-unit: $(STAMP)
	$(VENV)/bin/pytest -m unit

test-integration: $(STAMP)
	$(VENV)/bin/pytest -m integration

test-e2e: $(STAMP)
	$(VENV)/bin/pytest -m e2e

# The long chaos run (not in CI; CI runs a shorter one with a fixed seed):
# 6,000 orders over 120 s while processes are killed and paused; prints the schedule.
SEED ?= 1
chaos: $(STAMP)
	$(VENV)/bin/raypay chaos --seed $(SEED)
