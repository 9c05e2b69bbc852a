# Paper tables (arXiv 2506.07587 Tables 2-6), included by the Makefile.
#   make tables SCALE=smoke          every table's sweep + the report, tiny models, minutes (the suite runs it)
#   make table5 SCALE=cpu            run Table 5's sweep (finished runs are skipped), then build it
#   make table2 SEEDS=1 LAUNCHER=joblib   one seed, several local processes
#   make report-tables               build every table and figure from whatever runs exist (runs nothing)
# SCALE=smoke: tiny random models, tens of rows, 1 seed: proves the pipeline, its numbers mean nothing;
# SCALE=cpu: MiniLM-L6, offline GLUE tasks, short training (hours on 2 cores);
# SCALE=gpu: MiniLM-L6 on full GLUE training sets (one H200, benchmarks/device/tables_gpu.sh);
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
# Each table target builds its own table; `make tables` builds them all once at the end instead.
EACH      ?= yes
REPORT_ONE = $(if $(EACH),$(REPORT) 'tables=[$(1)]',@true)

.PHONY: table2 table3 table4 table5 table6 tables report-tables

table2: $(TABLES_DEPS)  ## Table 2: FFT/Adapter/LoRA/DoRA vs PrunePEFT (high+low fidelity), + LoRA at equal parameters [SCALE SEEDS LAUNCHER]
	$(PRUNEPEFT) baseline -m experiment=table2 $(SWEEP)
	$(PRUNEPEFT) search -m experiment=table2 $(SWEEP)
	$(PRUNEPEFT) baseline -m experiment=table2 $(SWEEP) method=lora extra.equal_params=true
	$(call REPORT_ONE,table2)

table3: $(TABLES_DEPS)  ## Table 3: decoder backbone, LoRA/DoRA vs PrunePEFT (SCALE=paper: Llama-3-8B)
	$(PRUNEPEFT) baseline -m experiment=table3 $(SWEEP)
	$(PRUNEPEFT) search -m experiment=table3 $(SWEEP)
	$(call REPORT_ONE,table3)

table4: $(TABLES_DEPS)  ## Table 4: search vs retrain cost (reuses Table 2's runs)
	$(PRUNEPEFT) search -m experiment=table4 $(SWEEP)
	$(PRUNEPEFT) baseline -m experiment=table4 $(SWEEP)
	$(call REPORT_ONE,table4)

table5: $(TABLES_DEPS)  ## Table 5: ablations none/random/type-matched random/single criteria/no partition/hybrid, + warm retrain vs equal-compute LoRA [CRITERIA]
	$(PRUNEPEFT) search -m experiment=table5 $(SWEEP)
	$(PRUNEPEFT) search -m experiment=table5 $(SWEEP) strategy.name=single strategy.criterion=$(CRITERIA)
	$(PRUNEPEFT) search -m experiment=table5 $(SWEEP) strategy.name=random_matched
	$(PRUNEPEFT) search -m experiment=table5 $(SWEEP) strategy.name=hybrid search.retrain_init=warm
	$(PRUNEPEFT) baseline -m experiment=table5 $(SWEEP) strategy.name=hybrid method=lora extra.equal_compute=true
	$(call REPORT_ONE,table5)

table6: $(TABLES_DEPS)  ## Table 6: strategy and architecture transfer from RTE and CoLA
	$(PRUNEPEFT) search -m experiment=table6 $(SWEEP) extra.stage=sources
	$(PRUNEPEFT) search -m experiment=table6 $(SWEEP)
	$(PRUNEPEFT) baseline -m experiment=table6 $(SWEEP)
	$(call REPORT_ONE,table6)

tables: EACH :=
tables: table2 table3 table4 table5 table6  ## every table's sweep (finished runs skipped), then Tables 2-6 + Figures 1/3 [SCALE SEEDS]
	$(REPORT)

report-tables: $(TABLES_DEPS)  ## build Tables 2-6 and Figures 1/3 from the runs under RUNS (runs nothing)
	$(REPORT)
