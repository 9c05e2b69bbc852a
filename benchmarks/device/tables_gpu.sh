#!/usr/bin/env bash
# Tables 2, 4, 5 and 6 at scale=gpu (MiniLM-L6, full GLUE training sets, SST-2 capped at 20k rows) on one
# lent H200, in one `device` call of at most 10 minutes, many processes side by side.
#
#   Here, first (CPU, tiny models, the same steps):  SCALE=smoke OUT=/tmp/tables_out bash benchmarks/device/tables_gpu.sh
#   There (carry [".gpu"], built here first by `bash benchmarks/device/prepare_gpu.sh`: .gpu/whl wheels incl.
#   hydra-joblib-launcher, .gpu/model MiniLM-L6 in fp16, .gpu/glue parquet files; 60 MB with the tree):
#       bash benchmarks/device/tables_gpu.sh          then unpack $OUT/results.tgz into benchmarks/results/
#
# Steps: (0) set-up and benchmarks/gpu_check.sh; (1) time one run of each kind (search, PEFT baseline, FFT)
# on the largest task; (2) size the sweep from those times: 3 seeds if they fit in the time left, else 2,
# else 1 (fewer seeds rather than running out of time); (3) the tables' sweeps with WORKERS processes
# (Hydra's joblib launcher); the small files are archived every 30 s, so a call cut off still returns what
# finished; (4) the report.
set -uo pipefail
SCALE=${SCALE:-gpu}
OUT=${OUT:-/tmp/tables_out}
BUDGET_S=${BUDGET_S:-540}          # seconds this script may use (the call's limit is 600)
WORKERS=${WORKERS:-12}
ROOT=$PWD
RUNS=${RUNS:-/tmp/tables_$SCALE}
START=$(date +%s)
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
left() { echo $((BUDGET_S - ($(date +%s) - START))); }

if [ "$SCALE" = gpu ]; then                     # (0) the device machine: wheels, the model, the data, a check
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$ROOT PRUNEPEFT_DATA_DIR=$ROOT/.gpu/glue
  mkdir -p /tmp/minilm && cp .gpu/model/*.json .gpu/model/vocab.txt /tmp/minilm/
  python3 -c "
from safetensors.torch import load_file, save_file
sd = load_file('.gpu/model/model_fp16.safetensors')
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, '/tmp/minilm/model.safetensors', metadata={'format': 'pt'})" || exit 4
  EXTRA="model.local=/tmp/minilm"
  LAUNCHER="hydra/launcher=joblib hydra.launcher.n_jobs=$WORKERS"
  bash benchmarks/gpu_check.sh > "$OUT/gpu_check.log" 2>&1; echo "gpu_check rc=$?"
  PY=python3
else                                            # here: the checkout's venv, the basic launcher
  export PRUNEPEFT_DATA_DIR=${PRUNEPEFT_DATA_DIR:-$ROOT/../shared/data/glue}
  EXTRA=""; LAUNCHER=""; PY=${PY:-$ROOT/.venv/bin/python}
fi
CLI="$PY -m prunepeft.cli"
SWEEP="scale=$SCALE extra.runs_root=$RUNS train.progress=false $EXTRA"
archive() { tar czf "$OUT/results.tgz" --exclude='*.safetensors' --exclude=checkpoint -C "$RUNS" . 2>/dev/null; }

# (1) one run of each kind, timed (they are jobs of the sweeps below, which then skip them)
timed() { local t0=$(date +%s); "$@" > "$OUT/timing.log" 2>&1; echo $(( $(date +%s) - t0 + 1 )); }
T_SEARCH=$(timed $CLI search -m experiment=table2 $SWEEP task=sst2 seed=1 search.fidelity=high)
T_PEFT=$(timed $CLI baseline -m experiment=table2 $SWEEP task=sst2 seed=1 method=lora)
T_FFT=$(timed $CLI baseline -m experiment=table2 $SWEEP task=sst2 seed=1 method=fft)
echo "one run on sst2: search ${T_SEARCH}s, PEFT baseline ${T_PEFT}s, FFT ${T_FFT}s; $(left)s left" | tee "$OUT/plan.txt"

# (2) size: per seed, Table 2 = 4 tasks x (4 baselines + 2 searches + LoRA at equal parameters), Table 5 =
# 2 tasks x (12 searches + the equal-compute LoRA), Table 6 = 4 sources + 4 transfers + 4 architecture
# transfers (searches); the largest task's time stands for every task (an upper bound), spread over WORKERS.
PER_SEED=$(( (4 * (4 * T_PEFT + T_FFT + 2 * T_SEARCH) + 2 * (12 * T_SEARCH + T_PEFT) + 12 * T_SEARCH) / WORKERS + 1 ))
SEEDS=1
for n in 3 2; do if [ $((n * PER_SEED)) -lt "$(left)" ]; then SEEDS=$(seq -s, 1 $n); break; fi; done
echo "estimated ${PER_SEED}s per seed with $WORKERS workers: seeds $SEEDS" | tee -a "$OUT/plan.txt"

# (3) the sweeps, archived as they finish
( while sleep 30; do archive; done ) & ARCHIVER=$!
for t in table2 table4 table5 table6; do
  [ "$(left)" -gt 20 ] || { echo "out of time before $t" | tee -a "$OUT/plan.txt"; break; }
  timeout "$(left)" make --no-print-directory "$t" SCALE="$SCALE" SEEDS="$SEEDS" RUNS="$RUNS" REPORTS="$OUT/reports" \
    PRUNEPEFT="$CLI" TABLES_DEPS= EACH= SWEEP="$SWEEP seed=$SEEDS $LAUNCHER" >> "$OUT/sweeps.log" 2>&1
  echo "$t rc=$? at $(( $(date +%s) - START ))s" | tee -a "$OUT/plan.txt"
done
kill $ARCHIVER 2>/dev/null; archive

# (4) the report of whatever finished (one configuration per cell; n per cell in every table)
$CLI report runs="$RUNS" out="$OUT/reports" figures=false > "$OUT/report.log" 2>&1; echo "report rc=$?"
tar czf "$OUT/reports.tgz" -C "$OUT" reports 2>/dev/null
cat "$OUT/plan.txt"
