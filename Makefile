# Recall: `make run` serves the whole local stack, `make test` runs the whole suite.
# Both do every set-up step on a fresh machine (virtualenv, packages, offline tiktoken encodings,
# the ONNX export of the embedding model).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
HOST   ?= 127.0.0.1

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export TIKTOKEN_CACHE_DIR ?= $(CURDIR)/.cache/tiktoken
export RECALL_MODEL_DIR ?= $(CURDIR)/.cache/models

.PHONY: install run test demo lint typecheck unit clean

install: $(VENV)/.installed $(TIKTOKEN_CACHE_DIR)/.provisioned $(RECALL_MODEL_DIR)/all-MiniLM-L6-v2.onnx

# torch first, pinned to the local CPU build: any other spec would pull GBs of CUDA packages.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(TIKTOKEN_CACHE_DIR)/.provisioned: $(VENV)/.installed scripts/provision_tiktoken.py
	$(PY) scripts/provision_tiktoken.py --cache-dir "$(TIKTOKEN_CACHE_DIR)"
	touch $@

# The offline embedder runs all-MiniLM-L6-v2 on ONNX Runtime: export it once from the packaged weights.
$(RECALL_MODEL_DIR)/all-MiniLM-L6-v2.onnx: $(VENV)/.installed scripts/provision_model.py services/local_model.py
	$(PY) scripts/provision_model.py --model-dir "$(RECALL_MODEL_DIR)"

run: install
	HOST=$(HOST) PORT=$(PORT) $(PY) -m scripts.run_local

demo: install
	$(PY) -m scripts.demo

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check services api functions scripts

typecheck: install
	$(PY) -m mypy

test: install lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache data
