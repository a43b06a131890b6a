# The two commands: `make up` (the whole stack on 127.0.0.1) and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up down status train test test-unit lint format bench system-deps checkov

# Reinstall when the dependencies change.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

up: $(STAMP)  ## MLflow, a trained model, predictor and transformer, left serving
	scripts/stack.sh up

down:  ## stop what `make up` started
	scripts/stack.sh down

status:
	scripts/stack.sh status

train: $(STAMP)  ## train, register and promote a new version on the running stack
	scripts/stack.sh train

system-deps:  ## the Debian packages the tests need (only those missing)
	scripts/system-deps.sh

# checkov in its own virtualenv: its pins (packaging, platformdirs, ...) clash with MLflow's.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30
	@touch $@

checkov: $(CHECKOV_VENV)/.installed  ## the venv tests/deploy/test_checkov.py runs checkov from

test: $(STAMP) system-deps checkov  ## every tier: unit, then integration against real servers
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not images and not deploy"

bench: $(STAMP)  ## every serving design side by side on 127.0.0.1; one table (minutes)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile.predictor Dockerfile.transformer Dockerfile.monitoring
	$(BIN)/actionlint .github/workflows/ci.yaml .github/workflows/e2e.yaml
	$(BIN)/mkdocs build --strict --quiet --site-dir site

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Images and release (issue 12): docs/images.md.
.PHONY: lock images release
LOCK_PARTS := predictor predictor-sklearn transformer monitoring
UV_LOCK := $(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock' --quiet

# requirements/exclude/<part>.txt: the dependencies of the extra's packages that nothing in
# that image imports, left out of its lock (each with its reason; docs/images.md). A -sklearn
# variant's lock is constrained by its default's, so that it only adds packages to it.
lock: $(STAMP)  ## requirements/<part>.txt: each image's exact versions and hashes, from its extra
	for part in $(LOCK_PARTS); do \
	  base=$${part%-sklearn}; constraints=""; \
	  [ "$$base" = "$$part" ] || constraints="-c requirements/$$base.txt"; \
	  $(UV_LOCK) --extra $$part --excludes requirements/exclude/$$part.txt $$constraints \
	    -o requirements/$$part.txt || exit 1; \
	done

images: $(STAMP) system-deps  ## the Debian base (cached), then the images, their sizes and layers
	scripts/images.sh

release: $(STAMP) system-deps  ## test, build, tag, push to $$RELEASE_REGISTRY, deploy (scripts/release.sh)
	scripts/release.sh
