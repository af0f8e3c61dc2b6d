# The commands the README shows. `make` alone lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# One virtualenv, two stamps: `make dev` installs the service, the dev tools and the client
# only; everything else (tests, lint, bench) adds the test tools.
DEV_STAMP := $(VENV)/.installed-dev
STAMP     := $(VENV)/.installed
# thumbor pins Pillow < 13 and the service needs 13: the benchmark runs thumbor from a
# virtualenv of its own.
THUMBOR_VENV ?= .venv-thumbor
THUMBOR      ?= thumbor>=7.8,<8
# Three distributions, all editable from this tree: the service (the root pyproject.toml) and,
# as distributions of their own so that the image holds none of them, the dev tools
# (functions/local) and the client (functions/client), which the root's extras name.
PROJECTS  := pyproject.toml functions/local/pyproject.toml functions/client/pyproject.toml
EDITABLES := -e functions/local -e functions/client

.DEFAULT_GOAL := help
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help dev test test-unit browser lint bench manifests screenshot clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(DEV_STAMP): $(PROJECTS) | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[local,client]" $(EDITABLES)
	touch $(DEV_STAMP)

$(STAMP): $(PROJECTS) | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,local,client]" $(EDITABLES)
	touch $(STAMP)

dev: $(DEV_STAMP) ## start the whole service locally (Ctrl-C stops it)
	$(BIN)/thumbnails dev $(ARGS)

test: lint browser ## run every test (starts its own Valkey, S3 and functions)
	$(BIN)/pytest -q

test-unit: $(STAMP) ## run the unit tests only (tests/unit: no process started, well under a minute)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP) ## check the code with ruff
	$(BIN)/ruff check functions tests scripts

browser: ## Debian's Chromium and ChromeDriver, for the web page's browser test
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  $(SUDO) apt-get install -y -q --no-install-recommends chromium chromium-driver || \
	  { $(SUDO) apt-get update -q && \
	    $(SUDO) apt-get install -y -q --no-install-recommends chromium chromium-driver; }

$(THUMBOR_VENV)/bin/thumbor:
	$(PYTHON) -m venv $(THUMBOR_VENV)
	$(THUMBOR_VENV)/bin/pip install --quiet "$(THUMBOR)"

bench: $(STAMP) $(THUMBOR_VENV)/bin/thumbor ## benchmark: the stack beside Pillow, libvips, thumbor (docs/benchmarks.md)
	@$(BIN)/python scripts/bench.py --thumbor-python $(THUMBOR_VENV)/bin/python $(ARGS)

manifests: $(STAMP) ## regenerate knative/ from charts/thumbnails (a test checks they agree)
	$(BIN)/python scripts/render_knative.py

screenshot: $(STAMP) browser ## refresh docs/screenshot.png (the README's picture) from the browser test
	$(BIN)/pytest -q tests/integration/test_page.py
	cp build/screenshot.png docs/screenshot.png

clean: ## remove the virtualenv, local data, fetched tools and build and test caches
	rm -rf $(VENV) $(THUMBOR_VENV) data .tools build .hypothesis .pytest_cache .ruff_cache \
	  *.egg-info functions/*/*.egg-info functions/*/build
