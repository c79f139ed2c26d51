# The user's interface. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEBS := prometheus prometheus-alertmanager prometheus-node-exporter victoria-metrics chromium
BINARIES := prometheus promtool prometheus-alertmanager amtool prometheus-node-exporter victoria-metrics vmalert chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
UNLEASH_HOME ?= .cache/unleash
UNLEASH_VERSION := 7.5.1
POSTGRES_BIN := /usr/lib/postgresql/15/bin

# This repository's reference data (Grafana's schemas, flagd's, the CRDs): test data that `make validate` and
# the tests read, never the installed product. .ci/run sets the same.
MONITORING_REF ?= $(abspath $(CURDIR)/../shared/ref)
export MONITORING_REF

.DEFAULT_GOAL := help
.PHONY: help venv debs unleash generate check-generated validate lint check test bench bench-production clean demo rollout-demo up down status plan apply

help: ## list the targets with what each does
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[reports,flagd,unleash,fast,kubernetes,dev]'
	touch $@

venv: $(INSTALLED) ## create the virtual environment with every Python dependency

debs: ## install Prometheus, Alertmanager, node exporter, VictoriaMetrics (with vmalert) and Chromium (the reports' browser test) from Debian when missing
	@missing=0; for b in $(BINARIES); do command -v $$b >/dev/null || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing Debian packages: $(DEBS)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBS) >/dev/null; \
	fi

unleash: ## install PostgreSQL 15 (Debian) and unleash-server 7.5.1 (npm, into .cache/unleash) when missing
	@if [ ! -x $(POSTGRES_BIN)/initdb ]; then \
	  echo "installing Debian package: postgresql"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	fi
	@if ! grep -qs '"version": "$(UNLEASH_VERSION)"' $(UNLEASH_HOME)/node_modules/unleash-server/package.json; then \
	  command -v npm >/dev/null || { echo "npm not found: install Node.js 20 or later"; exit 2; }; \
	  echo "installing unleash-server@$(UNLEASH_VERSION) into $(UNLEASH_HOME) (about 190 MB)"; \
	  mkdir -p $(UNLEASH_HOME) && npm install --prefix $(UNLEASH_HOME) --save-exact --no-audit --no-fund --loglevel=error unleash-server@$(UNLEASH_VERSION); \
	fi

SCENARIO ?= fleet
FLAGS ?=
FLAG_SYSTEM := $(if $(filter unleash,$(FLAGS)),unleash)
FLAGS_OPTION := $(if $(FLAGS),--flags $(FLAGS))
ENGINE ?=
ENGINE_OPTION := $(if $(ENGINE), --engine $(ENGINE))
demo: venv debs $(FLAG_SYSTEM) generate validate ## the main job: a bad new version is rolled back on real servers (SCENARIO=canary: at 5 %; SCENARIO=shared: a fault both versions share, paged and not rolled back; FLAGS=flagd|unleash; ENGINE=victoriametrics)
	$(BIN)/monitoring demo run --scenario $(SCENARIO) $(FLAGS_OPTION)$(ENGINE_OPTION)

rollout-demo: venv debs generate validate ## monitoring deploy on real servers: a healthy version 0 -> 100, then one turning bad at 25 % rolled back by the alert path
	$(BIN)/python -m monitoring.local.rollout_demo --calm cpu

up: venv debs $(FLAG_SYSTEM) ## start the local stack (Prometheus, Alertmanager, node exporter, receiver, demo app) on loopback (FLAGS=state|flagd|unleash; ENGINE=prometheus|victoriametrics; default: the running stack's, else state and prometheus)
	$(BIN)/monitoring stack up $(FLAGS_OPTION)$(ENGINE_OPTION)

down: venv ## stop exactly the processes the local stack started
	$(BIN)/monitoring stack down

status: venv ## each server of the local stack, its URL, whether it is up, and the rollout state
	$(BIN)/monitoring stack status

plan: venv debs ## validate exactly what apply would push (every family), then show what it would change (docs/apply.md)
	$(BIN)/monitoring apply --plan

apply: venv debs ## validate exactly what will be pushed (every family), then push it through reload and HTTP APIs, verifying each
	$(BIN)/monitoring apply

generate: venv ## write dashboards/, rules/, config/, kubernetes/ and docs/runbooks/ from the definitions
	$(BIN)/monitoring generate

check-generated: venv ## fail, naming the files, when committed files differ from a fresh generation
	$(BIN)/monitoring check-generated

validate: venv debs ## run every validation family on the committed files (promtool, amtool, schemas, CRDs, cross-checks)
	$(BIN)/monitoring validate

lint: venv ## ruff on the code, the layers (import-linter's contracts in pyproject.toml) and mypy --strict on the package
	$(BIN)/ruff check monitoring generators tests examples
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

check: venv debs lint check-generated validate ## the quick tier (under a minute): lint, drift, validation and the tests that start no server
	$(BIN)/pytest -q -m "not slow" -n auto --durations=10

TEST_WORKERS ?= 4
# What CI runs. The set-up side by side where it can be: the Debian packages alone (`unleash` may call apt-get too,
# and two apt-gets at once fail on its lock), then pip beside npm, then lint beside validate. No --output-sync: it
# would hold pytest's progress back until the whole suite ends.
# Python keeps the package's bytecode under test (an environment that sets PYTHONDONTWRITEBYTECODE made each of the
# suite's hundreds of Python processes compile the package again: about 0.04 CPU-s each, docs/tests.md).
test: export PYTHONDONTWRITEBYTECODE :=
test: ## install what is missing, lint, validate, then the whole test suite against the real binaries, TEST_WORKERS (4) in parallel
	@$(MAKE) --no-print-directory debs
	@$(MAKE) --no-print-directory --jobs=2 venv unleash
	@$(MAKE) --no-print-directory --jobs=2 lint validate
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=10

bench: venv debs unleash ## benchmarks: generation, receiver, detection to rollback, faults survived, printed as tables
	$(BIN)/python -m monitoring.bench

bench-production: venv debs ## the closed loop in the production profile for a total failure at 10 % and 10 % errors at 5 % (about 15 minutes): fault -> rollback against its floor
	$(BIN)/python -m monitoring.bench production

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
