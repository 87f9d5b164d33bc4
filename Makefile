# EmoCare: the two commands a new user needs are `make run` and `make test`.
# Both create .venv and install everything that is missing (Python and Debian packages).

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
ARGS   ?=

# Debian packages: espeak-ng speaks the care messages; the tests also drive Chromium with a
# fake camera made by ffmpeg, and render Chinese in screenshots with a CJK font.
RUN_DEBS  := espeak-ng
TEST_DEBS := $(RUN_DEBS) ffmpeg chromium fonts-wqy-microhei graphviz

DATA   ?= ../shared/datasets/expressions

.PHONY: run test lint bench train diagram system-deps-run system-deps-test clean

run: $(VENV)/.app system-deps-run
	$(VENV)/bin/emocare serve $(ARGS)

test: $(VENV)/.app $(VENV)/.dev $(VENV)/.train system-deps-test
	$(PY) -m ruff check src tests bench scripts run.py
	$(PY) -m pytest $(ARGS)

lint: $(VENV)/.dev
	$(PY) -m ruff check src tests bench scripts run.py
	$(PY) -m ruff format --check src tests bench scripts run.py

bench: $(VENV)/.app $(VENV)/.dev
	$(PY) -m bench.serving $(ARGS)

# Trains EmoCare's expression model again (about 95 minutes on 2 cores; resumes where it stopped)
# and exports it into instance/training/; see docs/model-card.md.
train: $(VENV)/.app $(VENV)/.train
	TF_ENABLE_ONEDNN_OPTS=0 $(VENV)/bin/emocare train --data $(DATA) $(ARGS)

diagram:
	dot -Tpng -Gdpi=110 picture/architecture.dot -o picture/architecture.png

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# requirements.txt is a complete lock (every package pinned), installed with --no-deps:
# fer declares facenet-pytorch, which would pull a multi-GB torch that nothing here uses.
# The project itself goes in editable mode on top, for the `emocare` command.
$(VENV)/.app: requirements.txt pyproject.toml | $(VENV)/bin/python
	$(PIP) install --no-deps -r requirements.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.app
	$(PIP) install -r requirements-dev.txt -c requirements.txt
	touch $@

# PyTorch (CPU build) and onnx, for training and its tests only: the app never imports them.
$(VENV)/.train: requirements-train.txt $(VENV)/.app
	$(PIP) install -r requirements-train.txt -c requirements.txt
	touch $@

system-deps-run:
	@scripts/debian-deps.sh $(RUN_DEBS)

system-deps-test:
	@scripts/debian-deps.sh $(TEST_DEBS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/artifacts
