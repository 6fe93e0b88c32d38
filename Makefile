# The shop: `make run` starts everything locally, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := common svc_user svc_product svc_inventory svc_order svc_payment web_gateway
STAMP := $(VENV)/.installed

.PHONY: compose-env deploy-check k8s-dev-secrets install run stop ps restart dead-letters replay-dead-letters chaos test test-unit test-e2e shell bench bench-telemetry fuzz prometheus clean contracts

# Installs the venv when a package's dependencies or the pins change.
$(STAMP): constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt \
		$(addprefix -e ./,$(PACKAGES)) -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

compose-env:  ## Secrets for docker compose: .env and RabbitMQ's users (kept if they exist; FORCE=1 for new ones).
	$(PYTHON) ops/compose_env.py $(if $(FORCE),--force)

deploy-check: install  ## Render deploy/k8s's overlays and validate them, compose, and their agreement (no cluster needed).
	$(BIN)/python ops/deploy_check.py

k8s-dev-secrets:  ## Secret files for the Kubernetes dev overlay (deploy/k8s/overlays/dev/secrets, git-ignored).
	$(PYTHON) ops/compose_env.py --k8s deploy/k8s/overlays/dev/secrets

run: install  ## Start the whole shop on local defaults (REPLICAS=2 for two of each service); Ctrl-C stops it.
	$(BIN)/python ops/stack.py run

ps: install  ## Every process of the running shop and its state (supervisorctl status).
	$(BIN)/python ops/stack.py ctl status

restart: install  ## Restart one component's instances: make restart C=svc_payment
	@test -n "$(C)" || { echo "usage: make restart C=<component, e.g. svc_payment>"; exit 2; }
	$(BIN)/python ops/stack.py ctl restart '$(C):*'

dead-letters: install  ## What is on the dead-letter topic, and why (KAFKA_BOOTSTRAP_SERVERS, default the local broker).
	$(BIN)/python -m shop_common.messaging.dead_letters list

replay-dead-letters: install  ## Send dead letters back to their topics once the cause is fixed: IDS="0:12 2:3"
	@test -n "$(IDS)" || { echo 'usage: make replay-dead-letters IDS="<partition:offset> ..." (see make dead-letters)'; exit 2; }
	$(BIN)/python -m shop_common.messaging.dead_letters replay $(IDS)

stop: install  ## Stop a shop whose `make run` terminal is gone.
	$(BIN)/python ops/stack.py ctl shutdown

test: install  ## Every test: unit, promtool rule tests, end-to-end against the real stack with Prometheus.
	ops/bin/ensure-test-tools
	$(BIN)/python ops/run_tests.py

test-unit: install
	$(BIN)/python -m pytest -m "not e2e and not chaos_slow"

test-e2e: install
	ops/bin/ensure-test-tools
	$(BIN)/python -m pytest -m "e2e and not chaos_slow"

chaos: install  ## Every chaos experiment (minutes each), with a table of the invariants at the end.
	ops/bin/ensure-test-tools
	$(BIN)/python -m pytest tests/chaos -m chaos

contracts: install  ## Regenerate the event JSON Schemas (refuses incompatible changes) and docs/api.md's operations.
	$(BIN)/python -m shop_common.messaging.event_contracts write
	$(BIN)/python -m web_gateway.openapi docs/api.md

shell: install  ## nameko shell on the running system (make run in another terminal): lists the operator calls.
	PYTHONSTARTUP=ops/shell.py $(BIN)/nameko shell --config svc_order/config.yaml

fuzz: install  ## Schemathesis on a copy of the shop from its /openapi.json, as shopper and admin (~20,000 cases, ~15 min).
	$(BIN)/python ops/fuzz.py $(if $(N),--max-examples $(N))

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) ops/loadtest/requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -r ops/loadtest/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## The shop under Locust load beside this machine's limits (~8 min); figures in .run/bench/.
	$(BIN)/python ops/bench.py

bench-telemetry: install  ## Cost of metrics and tracing per request: three copies of the shop side by side.
	$(BIN)/python ops/bench_telemetry.py

prometheus: install  ## Prometheus with the shop's rules, scraping `make run` (http://127.0.0.1:9090).
	ops/bin/ensure-test-tools
	mkdir -p .run/prometheus
	prometheus --config.file=ops/prometheus/prometheus.yml --storage.tsdb.path=.run/prometheus \
		--web.listen-address=127.0.0.1:9090

clean:
	rm -rf $(VENV) .run .pytest_cache
