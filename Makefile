# EmoCare: the two commands a new user needs are `make run` and `make test`.
# Both create .venv and install everything that is missing (Python and Debian packages).

# The Python .venv is made with: empty means the first of 3.11, 3.12, 3.13 that runs here
# (scripts/find-python.sh says why in that order); `make PYTHON=/path/to/python3.13` names one.
PYTHON ?=
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
ARGS   ?=

# Debian packages: espeak-ng speaks the care messages; the cluster (make cluster) runs on
# PostgreSQL, Redis and nginx; the tests also drive Chromium with a fake camera made by ffmpeg,
# render Chinese in screenshots with a CJK font, and start real PostgreSQL, Redis and nginx
# servers of their own (deploy/services.py).
RUN_DEBS     := espeak-ng
CLUSTER_DEBS := postgresql redis-server nginx openssl
TEST_DEBS    := $(RUN_DEBS) $(CLUSTER_DEBS) ffmpeg chromium fonts-wqy-microhei graphviz

DATA   ?= ../shared/datasets/expressions

# onnxruntime-web's wasm runtime, for analysis in the page (docs/device.md): 14 MB, so fetched
# from npm at install (pinned and digest-checked by the script) instead of committed.
ORT_WEB := static/vendor/onnxruntime-web-1.30.0/VERSION
N      ?= 2

.PHONY: run cluster setup-test test lint bench train diagram system-deps-run system-deps-cluster system-deps-test clean

run: $(VENV)/.app system-deps-run $(ORT_WEB)
	$(VENV)/bin/emocare serve $(ARGS)

# N server processes on PostgreSQL and Redis behind nginx, on https://localhost:8443 (a
# self-signed certificate); Ctrl+C stops it all. docs/deploy.md.
cluster: $(VENV)/.app system-deps-cluster $(ORT_WEB)
	$(PY) -m deploy.cluster --servers $(N) $(ARGS)

# Everything the tests need, installed without running them (.ci/run sets up 3.12 and 3.13 so).
setup-test: $(VENV)/.app $(VENV)/.dev $(VENV)/.train $(VENV)/.tf2onnx system-deps-test $(ORT_WEB)

test: setup-test
	$(PY) -m ruff check src tests bench deploy scripts run.py
	$(PY) -m pytest $(ARGS)

lint: $(VENV)/.dev
	$(PY) -m ruff check src tests bench deploy scripts run.py
	$(PY) -m ruff format --check src tests bench deploy scripts run.py

bench: $(VENV)/.app $(VENV)/.dev
	$(PY) -m bench.serving $(ARGS)

# Trains EmoCare's expression model again, as shipped (docs/model-card.md): two networks of 30
# epochs learning the FER+ votes from random weights, float32, into instance/training/ (about 2
# hours a network on 2 idle AVX2 cores; resumes where it stopped). ARGS go to emocare train.
train: $(VENV)/.app $(VENV)/.train
	@$(PY) -c 'import torch' 2>/dev/null || { echo "make train needs PyTorch: make train TORCH=pypi installs PyPI's (CUDA) build, see docs/install.md" >&2; exit 1; }
	TF_ENABLE_ONEDNN_OPTS=0 $(VENV)/bin/emocare train --data $(DATA) --targets votes --precision float32 \
	  --epochs 30 --members 2 --seed 2030 --out instance/training $(ARGS)

diagram:
	dot -Tpng -Gdpi=110 picture/architecture.dot -o picture/architecture.png

# A venv that stops half-way (no ensurepip) is removed, so the next run makes it again.
$(VENV)/bin/python:
	@py="$$(scripts/find-python.sh "$(PYTHON)")" && { "$$py" -m venv $(VENV) || { rm -rf $(VENV); exit 1; }; }

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
# Where pip offers only PyTorch's CUDA build (Python 3.12 and 3.13 here: 2.75 GB) PyTorch is
# left out (onnx still comes) and the training tests are skipped, unless TORCH=pypi
# (scripts/install-train.sh).
TORCH ?=
$(VENV)/.train: requirements-train.txt $(VENV)/.app
	@rc=0; scripts/install-train.sh $(PY) "$(TORCH)" || rc=$$?; \
	if [ $$rc -eq 0 ]; then touch $@; elif [ $$rc -ne 3 ]; then exit $$rc; fi

# tf2onnx, for the test that converts BlazeFace to ONNX again on a fresh clone
# (scripts/blazeface_onnx.py); --no-deps: TensorFlow and onnx come with .app and .train.
$(VENV)/.tf2onnx: $(VENV)/.app $(VENV)/.train
	$(PIP) install --no-deps tf2onnx==1.17.0
	touch $@

$(ORT_WEB): scripts/vendor-onnxruntime-web.sh
	scripts/vendor-onnxruntime-web.sh

system-deps-run:
	@scripts/debian-deps.sh $(RUN_DEBS)

system-deps-cluster:
	@scripts/debian-deps.sh $(RUN_DEBS) $(CLUSTER_DEBS)

system-deps-test:
	@scripts/debian-deps.sh $(TEST_DEBS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/artifacts $(dir $(ORT_WEB))
