# The two quick-start commands (README): `make run` and `make test`. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CHECKOV_VENV ?= .venv-checkov

.PHONY: run sims admin setup test check lint typecheck unit chaos bench infra-check clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

## The console's browser tests (tests/console) drive Debian's Chromium through Playwright; Playwright's own browser
## download (`playwright install`) is never used. Installed with apt when missing (sudo only when not root).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium || \
	  ($(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)

## Runs the product locally (simulated Dataverse and Marketo unless real tenants are configured).
run: $(VENV)/.installed
	$(PY) -m local $(ARGS)

## Runs the simulated Dataverse and Marketo as their own process, state kept in $(SIMS_STATE) (see the README);
## `make run ARGS="--sims $(SIMS_STATE)"` then runs the product against them.
SIMS_STATE ?= .sims
sims: $(VENV)/.installed
	$(PY) -m local.simulators --state $(SIMS_STATE) $(ARGS)

## The admin CLI (docs/cli.md) and the setup CLI (docs/setup.md) in the project's venv:
## `make admin ARGS="status"`, `make setup ARGS="--help"` (the same as .venv/bin/python -m shared.admin status).
admin: $(VENV)/.installed
	$(PY) -m shared.admin $(ARGS)

setup: $(VENV)/.installed
	$(PY) -m shared.setup $(ARGS)

## Runs every check and every test; CI calls exactly this.
test: $(VENV)/.installed node_modules/.installed lint typecheck infra-check unit

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(VENV)/.installed
	$(PY) -m mypy .

## Both runs spread over every core (pytest-xdist): the tests, then the chaos suite (tests/chaos: 500 seeded scenarios).
unit: $(VENV)/.installed node_modules/.installed $(CHROMIUM)
	$(PY) -m pytest --ignore=tests/chaos -n auto -q
	$(PY) -m pytest tests/chaos -n auto -q

## Seeded chaos scenarios (local/chaos): `make chaos N=5000 FIRST=0` plays seeds FIRST..FIRST+N-1 and prints the table;
## `make chaos SEED=111` replays one, with its steps and the product's log.
N ?= 500
FIRST ?= 0
SEED ?=
chaos: $(VENV)/.installed
	$(PY) -m local.chaos $(if $(SEED),--seed $(SEED) --verbose,--scenarios $(N) --first $(FIRST))

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check "checkov>=3.2,<4"
	touch $@

## Static checks of the Bicep templates (no Bicep CLI here): checkov in its own venv, it pins old packaging.
## checkov must report zero failed checks (each skip carries its reason next to the resource); a template
## checkov cannot parse would be silently unchecked, so parse_all.py (with checkov's pycep) fails on it; then the
## template tests (pycep-parser from requirements-dev.txt) assert the security properties and the app contract.
infra-check: $(CHECKOV_VENV)/.installed $(VENV)/.installed
	@if ls infra/*.bicep >/dev/null 2>&1; then \
	  $(CHECKOV_VENV)/bin/checkov --framework bicep --skip-download --quiet --compact -d infra && \
	  $(CHECKOV_VENV)/bin/python tests/infra/parse_all.py infra && \
	  $(PY) -m pytest -q tests/infra; \
	else echo "infra-check: no Bicep templates yet"; fi

## Benchmarks: not part of `make test`; they print a table with the floor each figure is compared to.
bench: $(VENV)/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .mypy_cache .ruff_cache .hypothesis
