# Developer entry points. `make` (or `make help`) lists the targets.
#
# The local stack (Kafka in KRaft mode + PostgreSQL 15, on 127.0.0.1, state in
# .local/) is managed by infra/stack.sh; see the top of that file for the
# environment variables it honors. Set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL
# to use existing services instead.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
PYTEST_ARGS ?=
BENCH_ARGS ?= --duration 60 --warmup 15 --rate 167
# SECURE=1: the secure profile (SASL_SSL broker on 19094, see docs/operations.md, "Secure profile").
# BROKERS=3: a three-broker cluster on 19101-19103 (see docs/operations.md, "Three-broker cluster").
STACK := bash infra/stack.sh$(if $(filter 1 yes true,$(SECURE)), --secure)$(if $(filter-out 1,$(BROKERS)), --brokers $(BROKERS))
# Runs a command with KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL of the stack exported.
WITH_ENV := eval "$$($(STACK) env)" &&
INSTALL_STAMP := .local/install.stamp

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_ROOT_USER_ACTION := ignore

.PHONY: help install up down status env logs lint format test test-unit schemas run replay topics simulate bench bench-target bench-max chaos bench-components bench-projection clean distclean

help: ## Show this list of targets
	@awk 'BEGIN {FS = ":.*## "; printf "Usage: make <target>\n\nTargets:\n"} \
		/^[a-zA-Z0-9_-]+:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install the package in editable mode with dev extras, and kcat/jq/prometheus/chromium (skipped when up to date)
	@bash infra/install-tools.sh
	@want="$$(sha256sum pyproject.toml | cut -d' ' -f1) $$(command -v $(PYTHON))"; \
	if [ -f $(INSTALL_STAMP) ] && [ "$$(cat $(INSTALL_STAMP))" = "$$want" ] \
	   && $(PYTHON) infra/installed_here.py 2>/dev/null; then \
		echo "install: up to date (pyproject.toml unchanged)"; \
	else \
		echo "install: $(PYTHON) -m pip install -q -e '.[dev]'"; \
		$(PYTHON) -m pip install -q -e '.[dev]'; \
		mkdir -p .local && echo "$$want" > $(INSTALL_STAMP); \
	fi

up: ## Start the local stack (Kafka KRaft + PostgreSQL 15 on 127.0.0.1) and wait until it answers (BROKERS=3: a cluster)
	@$(STACK) up

down: ## Stop the local stack, a three-broker cluster included (data is kept)
	@$(STACK) down

status: ## Show whether Kafka and PostgreSQL are running and answering
	@$(STACK) status

env: ## Print the export lines for the stack (use: eval "$(make -s env)")
	@$(STACK) env

logs: ## Show the tail of the Kafka and PostgreSQL logs (follow: infra/stack.sh logs -f)
	@$(STACK) logs

lint: install ## Check the code with ruff: lint (pyflakes, pycodestyle at 120 columns, import order) and format
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: install ## Format the code with ruff (what `make lint` checks)
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

test: install lint up ## Lint, then run the whole test suite against the local stack (PYTEST_ARGS=... to narrow it)
	$(WITH_ENV) $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-unit: install ## Run the unit tests only (tests/unit, no stack needed)
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS)

schemas: install ## Export the event JSON schemas
	$(PYTHON) -m events.schema_export

run: install up ## Run the demo pipeline against the local stack
	$(WITH_ENV) $(PYTHON) -m bench.demo.run

replay: install up ## Rebuild the read models by replaying the event log
	$(WITH_ENV) orchestrator replay

simulate: install up ## Compare routing policies on a simulated fleet (orchestrator simulate)
	$(WITH_ENV) orchestrator simulate

bench: install up ## The whole pipeline under load, ~3 min (BENCH_ARGS: 60 s at 167 tasks/s); result in bench/results/
	$(WITH_ENV) orchestrator bench $(BENCH_ARGS)

bench-target: install up ## The 5-minute target run: 1,000 tasks/s (60,000/min) for 300 s after a 30 s warm-up
	$(WITH_ENV) orchestrator bench --duration 300 --warmup 30 --rate 1000

chaos: install up ## Faults under load: 100 seeded faults over 20 min, then every invariant checked (CHAOS_ARGS to change)
	$(WITH_ENV) orchestrator chaos $${CHAOS_ARGS:---duration 1200 --faults 100}

bench-max: install up ## Find the sustainable maximum rate, then measure 120 s at it
	$(WITH_ENV) orchestrator bench --rate max --duration 120

bench-components: install up ## The component benchmarks: routing decision, balancer queue, projection and replay, SDK, offline evaluation
	$(WITH_ENV) $(PYTHON) -m bench.micro.routing_decision --agents 1000
	$(PYTHON) -m bench.micro.balancer_queue
	$(WITH_ENV) $(PYTHON) -m bench.micro.projection --tasks $${TASKS:-20000}
	$(WITH_ENV) $(PYTHON) -m bench.micro.audit --records 50000
	$(WITH_ENV) $(PYTHON) -m bench.pipeline.agents
	$(PYTHON) -m bench.evaluation.offline --data ../shared/data/routerdc_7llm.csv.gz
	$(PYTHON) -m bench.evaluation.bandit_ceiling --data ../shared/data/routerdc_7llm.csv.gz

bench-projection: install up ## Measure projector throughput and replay rate (TASKS=20000, ~5 events each)
	$(WITH_ENV) $(PYTHON) -m bench.micro.projection --tasks $${TASKS:-20000}

topics: install up ## Create the Kafka topics (idempotent)
	$(WITH_ENV) orchestrator topics ensure

clean: ## Stop the stack and DELETE all local data: Kafka topics, database, logs (keeps downloaded jars)
	@$(STACK) clean
	rm -f $(INSTALL_STAMP)

distclean: clean ## Like clean, and also delete .local/ entirely (Kafka jars are downloaded again)
	rm -rf .local
