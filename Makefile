# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
KNN := $(SHARED)/data/video/face_recognition_examples/examples/knn_examples
export FACEWISE_MODEL_PATH ?= $(abspath $(SHARED)/models)
export FACEWISE_DATA ?= $(abspath $(SHARED)/data)

.PHONY: demo test lint bench install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[openvino,eval,test,service]'
	touch $@

install: $(VENV)/.installed

# Enrol the knn_examples people and name every face in the test photos (registry-only default profile).
# Any folder works: make demo TRAIN=/photos/people TEST=/photos/new
TRAIN ?= $(KNN)/train
TEST ?= $(KNN)/test
demo: $(VENV)/.installed
	$(VENV)/bin/facewise demo --train "$(TRAIN)" --test "$(TEST)" --out demo-out --profile $${PROFILE:-default}

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench training

test: lint
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	# the peer: face_recognition on the same dlib (dlib-bin), without building dlib from source
	$(PY) -m pip install -q --no-deps face-recognition==1.3.0
	$(PY) -m pip install -q click
	$(PY) bench/pipeline.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
