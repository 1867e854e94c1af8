# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
KNN := $(SHARED)/data/video/face_recognition_examples/examples/knn_examples
export FACEWISE_MODEL_PATH ?= $(abspath $(SHARED)/models)
export FACEWISE_DATA ?= $(abspath $(SHARED)/data)

.PHONY: demo test lint bench bench-peer install clean

# the library alone (what `make demo` needs): registry packages only
$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# everything the test suite exercises (optional backends, service, stores, fuzzing)
$(VENV)/.installed: $(VENV)/.core
	$(PY) -m pip install -q -e '.[openvino,eval,test,service,video,ann,pgvector,milvus,ray,scale-test,crypto,fuzz]'
	touch $@

# the REST client generator pins an older Typer than the CLI uses: it lives in its own venv (tests/test_service_client.py)
.venv-openapi/.installed:
	$(PYTHON) -m venv .venv-openapi
	.venv-openapi/bin/python -m pip install -q 'openapi-python-client>=0.29'
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

test: lint .venv-openapi/.installed
	$(PY) -m pytest -q

# the peer: face_recognition on the same dlib (dlib-bin), without building dlib from source;
# face_recognition_models still imports pkg_resources, which setuptools 81 removed
$(VENV)/.peer: $(VENV)/.installed
	$(PY) -m pip install -q 'setuptools<81' click
	$(PY) -m pip install -q --no-deps face-recognition==1.3.0
	touch $@

bench: $(VENV)/.peer
	$(PY) bench/pipeline.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache

# face_recognition through the same evaluation harness on the 6,000 LFW pairs (docs/ACCURACY.md)
bench-peer: $(VENV)/.peer
	$(PY) bench/peer_face_recognition.py
