# Paper tables (arXiv 2506.07587 Tables 2-6), included by the Makefile.
#   make table5 SCALE=cpu            run Table 5's sweep (finished runs are skipped), then build it
#   make table2 SEEDS=1 LAUNCHER=joblib   one seed, several local processes
#   make tables                      build every table and figure from whatever runs exist
# SCALE=cpu: MiniLM-L6, offline GLUE tasks, short training (hours on 2 cores);
# SCALE=paper: the paper's backbones, tasks and 20 epochs (GPU). Runs go to $(RUNS), reports to $(REPORTS).
SCALE     ?= cpu
SEEDS     ?=
LAUNCHER  ?=
CRITERIA  ?= weight,zeros,threshold,activation,taylor,gradient
RUNS      ?= outputs/$(SCALE)
REPORTS   ?= reports/$(SCALE)
PRUNEPEFT ?= $(VENV)/bin/prunepeft
TABLES_DEPS ?= $(if $(LAUNCHER),$(VENV)/.dev,$(VENV)/.demo)  # a launcher (joblib, submitit) comes with the dev extras
SWEEP     = scale=$(SCALE) extra.runs_root=$(RUNS) $(if $(SEEDS),seed=$(SEEDS)) $(if $(LAUNCHER),hydra/launcher=$(LAUNCHER))
REPORT    = $(PRUNEPEFT) report runs=$(RUNS) out=$(REPORTS)

.PHONY: table2 table3 table4 table5 table6 tables

table2: $(TABLES_DEPS)  ## Table 2: FFT/Adapter/LoRA/DoRA vs PrunePEFT (high+low fidelity) [SCALE SEEDS LAUNCHER]
	$(PRUNEPEFT) baseline -m experiment=table2 $(SWEEP)
	$(PRUNEPEFT) search -m experiment=table2 $(SWEEP)
	$(REPORT) 'tables=[table2]'

table3: $(TABLES_DEPS)  ## Table 3: decoder backbone, LoRA/DoRA vs PrunePEFT (SCALE=paper: Llama-3-8B)
	$(PRUNEPEFT) baseline -m experiment=table3 $(SWEEP)
	$(PRUNEPEFT) search -m experiment=table3 $(SWEEP)
	$(REPORT) 'tables=[table3]'

table4: $(TABLES_DEPS)  ## Table 4: search vs retrain cost (reuses Table 2's runs)
	$(PRUNEPEFT) search -m experiment=table4 $(SWEEP)
	$(PRUNEPEFT) baseline -m experiment=table4 $(SWEEP)
	$(REPORT) 'tables=[table4]'

table5: $(TABLES_DEPS)  ## Table 5: ablations none/random/type-matched random/single criteria/no partition/hybrid [CRITERIA]
	$(PRUNEPEFT) search -m experiment=table5 $(SWEEP)
	$(PRUNEPEFT) search -m experiment=table5 $(SWEEP) strategy.name=single strategy.criterion=$(CRITERIA)
	$(PRUNEPEFT) search -m experiment=table5 $(SWEEP) strategy.name=random_matched
	$(REPORT) 'tables=[table5]'

table6: $(TABLES_DEPS)  ## Table 6: strategy and architecture transfer from RTE and CoLA
	$(PRUNEPEFT) search -m experiment=table6 $(SWEEP) extra.stage=sources
	$(PRUNEPEFT) search -m experiment=table6 $(SWEEP)
	$(PRUNEPEFT) baseline -m experiment=table6 $(SWEEP)
	$(REPORT) 'tables=[table6]'

tables: $(TABLES_DEPS)  ## build Tables 2-6 and Figures 1/3 from the runs under RUNS (runs nothing)
	$(REPORT)
