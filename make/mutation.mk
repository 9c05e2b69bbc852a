# Mutation testing (issue 25, Deliver 5), included by the Makefile.
#   make mutation                          every module of MUTATION_MODULES, one at a time
#   make mutation MUTATION_MODULES=combine one module
# mutmut ([tool.mutmut] in pyproject.toml: the modules and the fast test subset) mutates the method's
# pure modules in a scratch copy of the tracked files (its mutants/ never lands in the checkout),
# under `nice`, two workers; then make/mutation_summary.py writes killed / survived per module to
# $(MUTATION_OUT)/summary.{md,json} (a timeout counts as detected, as mutmut's own score does).
MUTATION_MODULES ?= selection budget partitions scoring combine
MUTATION_DIR     ?= $(abspath $(or $(TMPDIR),/tmp))/prunepeft-mutation
MUTATION_OUT     ?= benchmarks/results/mutation
MUTATION_JOBS    ?= 2
MUTMUT           := $(abspath $(VENV))/bin/mutmut

.PHONY: mutation

mutation: $(VENV)/.dev  ## mutation testing (mutmut) of the method's pure modules; summary in benchmarks/results/mutation/
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)
	git ls-files -z | grep -zv '^benchmarks/results/' | xargs -0 tar -cf - | tar -xf - -C $(MUTATION_DIR)
	set -e; for m in $(MUTATION_MODULES); do \
	  echo "mutmut: prunepeft/pruning/$$m.py"; \
	  (cd $(MUTATION_DIR) && nice $(MUTMUT) run --max-children $(MUTATION_JOBS) "prunepeft.pruning.$$m.*" >/dev/null 2>&1) || true; \
	done
	cd $(MUTATION_DIR) && $(MUTMUT) results --all true > results.txt
	$(PY) make/mutation_summary.py $(MUTATION_DIR)/results.txt $(MUTATION_OUT) $(MUTATION_MODULES)
