# 医保 governance warehouse — two commands: `make run` (demo city end to end) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
BIN := $(VENV)/bin
YIBAO := $(BIN)/yibao
export YIBAO_HOME ?= $(CURDIR)/.yibao
export UV_PYTHON_DOWNLOADS := never
export PYTHONUNBUFFERED := 1
# demo city: hospitals × days × volume (see README)
DEMO_SEED ?= 42
DEMO_HOSPITALS ?= 6
DEMO_START ?= 2025-01-01
DEMO_END ?= 2026-01-05
DEMO_VOLUME ?= 0.3
DEMO_FEE_DETAIL ?= 0.5
DEMO_FEE_LINES ?= 2

.PHONY: run test setup system-deps db-start db-stop db-reset demo-data airflow-ui lint bench bench-fee bench-history bi-check clean

run: setup db-start demo-data ## fresh clone → populated marts via the real DAGs
	$(YIBAO) run --landing $(YIBAO_HOME)/landing
	$(YIBAO) reports
	@echo
	@echo "Warehouse: $$($(YIBAO) url)   (schema marts; psql \"$$($(YIBAO) url)\")"
	@echo "Demo landing zone: $(YIBAO_HOME)/landing    reports: $(YIBAO_HOME)/reports"
	@echo "Airflow UI: make airflow-ui, then http://127.0.0.1:8080 (user admin, password in $(YIBAO_HOME)/airflow/simple_auth_manager_passwords.json.generated)"

test: setup ## the whole suite
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --basetemp=$(CURDIR)/.pytest-tmp tests

setup: $(VENV)/.synced system-deps

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==0.13.8

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	@echo "installing the locked dependencies into $(VENV) (uv sync --frozen; the first time takes a few minutes)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet --python $$($(PYTHON) -c 'import sys; print(sys.executable)')
	touch $@

system-deps: ## CJK fonts for reports, pdftotext/pdftoppm for report tests, fast font subsetting (Debian packages)
	@missing=""; fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing="$$missing fonts-noto-cjk"; \
	command -v pdftotext >/dev/null || missing="$$missing poppler-utils"; \
	ldconfig -p | grep -q libharfbuzz-subset || missing="$$missing libharfbuzz-subset0"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Please install:$$missing (e.g. sudo apt-get install$$missing)"; exit 1; fi; \
	fi

db-start: setup ## start (and on first use create) the embedded PostgreSQL
	$(YIBAO) db start

db-stop:
	$(YIBAO) db stop

db-reset: ## stop the embedded PostgreSQL and delete its data
	$(YIBAO) db reset

demo-data: setup
	@if [ ! -d $(YIBAO_HOME)/landing/reference ]; then \
	  $(YIBAO) generate --out $(YIBAO_HOME)/landing --seed $(DEMO_SEED) --hospitals $(DEMO_HOSPITALS) \
	    --start $(DEMO_START) --end $(DEMO_END) --volume $(DEMO_VOLUME) \
	    --fee-detail $(DEMO_FEE_DETAIL) --fee-lines $(DEMO_FEE_LINES); \
	else echo "demo landing zone exists: $(YIBAO_HOME)/landing"; fi

airflow-ui: db-start ## Airflow UI (api-server, scheduler, dag-processor, triggerer) on 127.0.0.1:8080 (venv need not be active)
	$(YIBAO) airflow standalone

lint:
	$(BIN)/ruff check src dags tests

bench: setup db-start ## loader vs psql \copy on a one-million-row night
	$(BIN)/python benchmarks/loader_vs_copy.py

bench-fee: setup db-start ## fee_detail vs claim loader rows/s on 200k-row files
	$(BIN)/python benchmarks/fee_detail_loader.py

# a city's year (100 hospitals, ~30M claims; hours), then one night on it and on nothing: make bench-history
# a small run: make bench-history BENCH_HISTORY_ARGS="--hospitals 5 --days 20 --claims-total 20000"
BENCH_HISTORY_ARGS ?=
bench-history: setup db-start ## one ordinary night on top of a year of history vs on an empty history
	$(BIN)/python benchmarks/history_night.py $(BENCH_HISTORY_ARGS)

bi-check: db-start ## install Superset in its own venv, import the dashboard, run every chart as bi_reader
	infra/superset/verify.sh

clean:
	rm -rf $(VENV) $(TOOLS)
