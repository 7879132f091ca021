# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# Test processes (pytest-xdist); each starts its own throwaway PostgreSQL cluster.
PYTEST_WORKERS ?= 2

.PHONY: install chromium run serve migrate seed test pytest lint format schema messages bench bench-ab bench-commits bench-asgi bench-hostile clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make chromium: Debian's Chromium for the browser tests (Playwright drives it; it never
## downloads a browser). Without root it only warns: the browser tests then skip, or fail in CI.
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed"

## make run: install, migrate the embedded SQLite database, load demo data if empty, serve.
run: install
	$(PY) -m gql_service migrate
	$(PY) -m gql_service seed-demo --if-empty
	$(PY) -m gql_service serve --host $(HOST) --port $(PORT)

migrate: install
	$(PY) -m gql_service migrate

seed: install
	$(PY) -m gql_service seed-demo --if-empty

## make test: install, lint, then the whole suite on SQLite and a throwaway PostgreSQL.
test: install lint pytest

pytest: install chromium
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15 --cov=gql_service --cov-branch --cov-report=term:skip-covered --cov-fail-under=88

lint: install
	$(PY) -m ruff check gql_service tests bench
	$(PY) -m ruff format --check gql_service tests bench
	$(PY) -m mypy gql_service

format: install
	$(PY) -m ruff check --fix gql_service tests bench
	$(PY) -m ruff format gql_service tests bench

schema: install
	$(PY) -m gql_service export-schema --output schema.graphql

## make messages: extract every translatable message (messages.py's msg, plural_msg, label)
## into the .pot, merge it into the Latvian .po, and compile the .mo the service reads.
## Translate the new or fuzzy entries of the .po, then run it again; tests/test_translations.py
## fails while any message has no Latvian translation or the .mo lags behind the .po.
LOCALE := gql_service/locale
POT := $(LOCALE)/gql_service.pot
messages: install
	mkdir -p $(LOCALE)
	$(VENV)/bin/pybabel extract --no-default-keywords -k msg -k plural_msg:1,2 -k label:1c,2 \
		--add-location=file --sort-output --no-wrap --project=gql_service --version=1 \
		--copyright-holder="gql_service" -o $(POT) gql_service
	test -f $(LOCALE)/lv/LC_MESSAGES/gql_service.po \
		|| $(VENV)/bin/pybabel init -D gql_service -i $(POT) -d $(LOCALE) -l lv --no-wrap
	$(VENV)/bin/pybabel update -D gql_service -i $(POT) -d $(LOCALE) -l lv --no-wrap \
		--ignore-obsolete
	$(VENV)/bin/pybabel compile -D gql_service -d $(LOCALE) -l lv --statistics

## make bench: the service against the raw baseline under wrk, on a throwaway PostgreSQL 15;
## writes bench/results/latest.md and latest.png. Not part of make test. BENCH_DURATION,
## BENCH_CONNECTIONS, BENCH_WORKERS, BENCH_SCENARIOS and BENCH_SERVERS tune it (bench/run.py).
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/run.py

## make bench-ab: the service of BENCH_BASE (default HEAD~1) and of the working tree, served in
## turn on one PostgreSQL under wrk, BENCH_REPEAT times each: medians of requests/s and of worker
## CPU per request, to tell whether a change pays (bench/ab.py). Not part of make test.
bench-ab: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/ab.py

## make bench-commits: durable commits of the locking UPDATE with and without its NOTIFY, on a
## throwaway PostgreSQL with its durable defaults (bench/notify_commits.py). Not part of make test.
bench-commits: install
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/notify_commits.py

## make bench-asgi: the older in-process timings (list, mutations) and the hostile catalogue.
bench-asgi: install
	$(PY) bench/list_opportunities.py
	$(PY) bench/mutations.py
	$(PY) bench/hostile.py

## make bench-hostile: the hostile catalogue against a live server, /healthz watched.
bench-hostile: install
	$(PY) bench/hostile.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
