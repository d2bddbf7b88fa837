# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Installs come from these lock files (exact versions with hashes); `make lock` writes them.
LOCKS := requirements-build.lock requirements.lock requirements-dev.lock
# Runtime and dev pins are resolved against the build and runtime locks (-c), so the image
# (requirements.lock) runs exactly the versions the tests ran. Universal: one lock for every OS
# and Python >= 3.11. Existing pins are kept unless UPGRADE is set.
COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
BUILD_REQUIRES = $(BIN)/python -c 'import tomllib; \
	print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'

.PHONY: install lock run demo test lint format bench migrate check clean

# Our own code goes in editable and without resolving anything: its dependencies are the lock's.
$(STAMP): pyproject.toml $(LOCKS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes -r requirements-build.lock -r requirements-dev.lock
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# After changing dependencies in pyproject.toml: `make lock` (keeps every other pin), then commit
# pyproject.toml with the three lock files. `make lock UPGRADE=1` moves every pin to the newest
# release the bounds allow.
lock: $(STAMP)
	$(BUILD_REQUIRES) | $(COMPILE) - -o requirements-build.lock
	$(COMPILE) pyproject.toml -c requirements-build.lock -o requirements.lock
	$(COMPILE) pyproject.toml --extra dev -c requirements-build.lock -c requirements.lock \
		-o requirements-dev.lock

run: $(STAMP)
	@test -f .env || { echo "No .env here: copy .env.example to .env and set BOT_TOKEN and ESIMGO_API_KEY."; exit 1; }
	$(BIN)/esimbot run

# The sandbox: a built-in eSIM Go stand-in, simulated payments, its own data/demo.db. It needs
# only BOT_TOKEN (in .env); a shop's database, Redis and webhook settings there are set aside.
demo: $(STAMP)
	@test -n "$$BOT_TOKEN" || grep -qs '^BOT_TOKEN=.\+' .env || { echo "No BOT_TOKEN in .env: put BOT_TOKEN=<token from @BotFather> there (a bot of its own for the demo)."; exit 1; }
	ESIMGO_API_KEY=sandbox DATABASE_URL=sqlite+aiosqlite:///data/demo.db REDIS_URL= WEBHOOK_URL= \
		$(BIN)/esimbot run

migrate: $(STAMP)
	$(BIN)/esimbot migrate

check: $(STAMP)
	$(BIN)/esimbot check

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/catalogue.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
