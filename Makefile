# mlship: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY := true

PYTHON ?= python3
UV := $(PYTHON) -m uv
RUN := $(UV) run --frozen --no-sync
# Debian packages the tests and benchmarks drive: promtool and the Prometheus server (alert
# rules, scraping the service), wrk (HTTP load), Chromium (the report, headless).
SYSTEM_TOOLS := promtool:prometheus prometheus:prometheus wrk:wrk chromium:chromium

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install uv (with pip) if missing, then the locked dependencies into .venv
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --frozen --quiet

.PHONY: system-tools
system-tools: ## Install the Debian tools the tests use (prometheus, wrk, chromium) when missing
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: demo
demo: setup ## Train the bundled model, register it, serve it with capture, predict, report, plan the dev stack
	@$(RUN) python -m cli.demo

.PHONY: test
test: setup system-tools ## Lint (ruff, mypy, lock check), then the whole test suite (slow tests included)
	@$(MAKE) --no-print-directory lint
	@$(RUN) pytest

.PHONY: lint
lint: setup ## ruff, mypy and the lock-file check
	@$(UV) lock --locked
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy

.PHONY: fmt
fmt: setup ## Format and auto-fix
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

.PHONY: bench
bench: setup system-tools ## Serving and batch benchmarks, side by side with the naive baseline
	@$(RUN) python -m benchmarks.run

.PHONY: clean
clean: ## Remove local artefacts (models, MLflow store, caches)
	rm -rf .mlship models .pytest_cache .mypy_cache .ruff_cache
