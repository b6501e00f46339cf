# Developer and CI entry points. `make test` starts the local database servers (see
# scripts/services.sh) and, where it can, a Docker engine with a local base image for the image
# test (scripts/docker-engine.sh), builds .venv when needed and runs the test suite against them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
SERVICES_DIR := $(or $(OSC_SERVICES_DIR),$(CURDIR)/.services)

.PHONY: services services-stop services-status docker-engine venv test lint demo clean

services:
	bash scripts/services.sh start

services-stop:
	bash scripts/services.sh stop
	bash scripts/docker-engine.sh stop

services-status:
	bash scripts/services.sh status

# Never fails for want of an engine: docker.env then says why, and the image test skips with it.
docker-engine:
	bash scripts/docker-engine.sh start

# Rebuilt only when .venv is missing or pyproject.toml is newer than the stamp.
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	if ! $(VENV)/bin/python -c 'import sys' 2>/dev/null; then \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(VENV)/bin/python -m pip install --disable-pip-version-check --progress-bar off -q -e '.[dev]'
	touch $@

test: services docker-engine venv
	. $(SERVICES_DIR)/env && . $(SERVICES_DIR)/docker.env && $(VENV)/bin/pytest -q

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

demo: services venv
	. $(SERVICES_DIR)/env && $(VENV)/bin/python scripts/demo.py

# Leaves the database servers and their data alone: `make services-stop`, then remove .services/.
clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.services -prune -o -path ./.git -prune -o \
		\( -name __pycache__ -o -name '*.egg-info' \) -type d -prune -exec rm -rf {} +
