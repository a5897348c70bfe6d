# mlship: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY := true
# Compile the dependencies' bytecode at install, as the image does. Without it, every Python
# process the tests start (servers, CLI runs) compiled scikit-learn, pandas and MLflow again
# whenever PYTHONDONTWRITEBYTECODE was set: about 10 s against 3 s to import them. From a
# fresh clone, `make test` took 12:07 (pytest 9:04); with it 10:33 (pytest 7:25), setup's
# compile (about 60 s, once) included.
export UV_COMPILE_BYTECODE := 1

PYTHON ?= python3
# uv: the one on PATH; else the interpreter's uv module; else a private copy in .tools/, a virtual
# environment of its own (uv's advice for a Python that PEP 668 marks externally managed: never
# pip-install into the system interpreter). `make UV=/path/to/uv` overrides all three.
TOOLS := $(CURDIR)/.tools
UV_ON_PATH := $(shell command -v uv 2>/dev/null)
ifneq ($(UV_ON_PATH),)
UV := $(UV_ON_PATH)
else ifeq ($(shell $(PYTHON) -m uv --version >/dev/null 2>&1 && echo yes),yes)
UV := $(PYTHON) -m uv
else
UV := $(TOOLS)/bin/uv
endif
RUN := $(UV) run --frozen --no-sync
# pytest-xdist workers for `make test`, a test module to a worker (module fixtures are shared).
TEST_WORKERS ?= auto
# Debian packages the tests and benchmarks drive: promtool and the Prometheus server (alert
# rules, scraping the service), wrk (HTTP load), Chromium (the report, headless).
SYSTEM_TOOLS := promtool:prometheus prometheus:prometheus wrk:wrk chromium:chromium

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}'

.PHONY: setup
setup: $(filter $(TOOLS)/bin/uv,$(UV)) ## The locked dependencies into .venv (uv from PATH, else into .tools/)
	@$(UV) sync --frozen --quiet

$(TOOLS)/bin/uv:
	@echo "uv is not on PATH: installing it into $(TOOLS) (a virtual environment of its own)"
	@$(PYTHON) -m venv $(TOOLS) || { echo "error: '$(PYTHON) -m venv' failed. On Debian or Ubuntu: apt-get install python3-venv; or install uv (https://docs.astral.sh/uv/getting-started/installation/) and run make again." >&2; exit 1; }
	@$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv

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
	@$(RUN) pytest -n $(TEST_WORKERS) --dist loadscope

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
clean: ## Remove models and caches; keeps the local registry .mlship/ (see clean-all)
	rm -rf models .pytest_cache .mypy_cache .ruff_cache

.PHONY: clean-all
clean-all: clean ## Also remove the local MLflow registry (.mlship/) and the private uv (.tools/)
	rm -rf .mlship .tools
