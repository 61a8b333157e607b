# Slicestar — `make run` starts the app, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format migrate bench clean

# Password hashing (Argon2id) takes about 45 % less CPU with libargon2 compiled for AVX2: where
# this CPU has AVX2, scripts/build-argon2-avx2.sh builds argon2-cffi-bindings from its
# hash-pinned source (needs cmake and a C compiler: README "System packages").
# `make install ARGON2_AVX2=0` keeps the published SSE2 wheel.
ARGON2_AVX2 ?= auto
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps

$(STAMP): requirements.txt requirements-dev.txt requirements-build.txt scripts/build-argon2-avx2.sh
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required") if sys.version_info < (3, 11) else None'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements-dev.txt
	ARGON2_AVX2=$(ARGON2_AVX2) sh scripts/build-argon2-avx2.sh $(BIN)/python requirements-dev.txt requirements-build.txt
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the hash-pinned dependencies

# The benchmark's stack peer (FastAPI) comes from its own hash-pinned file, a superset of
# requirements-dev.txt; the suite needs it too (its smoke test runs the whole harness).
$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(PIP_INSTALL) -r bench/requirements.txt
	$(BIN)/python -m pip check
	touch $(BENCH_STAMP)

migrate: install ## bring the database (DATABASE_URL, default db/app.sqlite) to the newest schema
	mkdir -p db
	$(BIN)/alembic upgrade head

# Mailed links are built from APP_URL. Unless it is set (in the environment, on make's command
# line or in .env), `make run` points it at the address it serves on, so `make run PORT=9000`
# mails links to port 9000.
APP_URL_IN_DOTENV := $(shell grep -sE '^[[:space:]]*(export[[:space:]]+)?APP_URL[[:space:]]*=' .env)
ifeq ($(origin APP_URL)$(APP_URL_IN_DOTENV),undefined)
run: export APP_URL = http://$(HOST):$(PORT)
endif

# `litestar run` serves with uvicorn, which would believe X-Forwarded-For from 127.0.0.1 (its
# FORWARDED_ALLOW_IPS default). An empty FORWARDED_ALLOW_IPS trusts no address, so the app alone
# decides who the client is, with TRUSTED_PROXIES (SECURITY.md S9).
run: migrate ## install, migrate and serve on http://127.0.0.1:8000 (PORT=… to change)
	@echo "Serving on http://$(HOST):$(PORT); mailed links use $${APP_URL:-the APP_URL of .env}"
	FORWARDED_ALLOW_IPS= $(BIN)/litestar --app-dir src run --host $(HOST) --port $(PORT)

test: install $(BENCH_STAMP) ## run the whole test suite (browser tests need Chromium, the bench smoke test wrk: see README)
	$(BIN)/pytest

bench: install $(BENCH_STAMP) ## load benchmark with wrk (see README "Benchmarks"); BENCH_ARGS="--runs 3 ..." to change it
	@command -v wrk >/dev/null 2>&1 || { echo "make bench needs wrk: apt-get install wrk (README, System packages)" >&2; exit 2; }
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts bench/.work
