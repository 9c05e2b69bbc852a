#!/usr/bin/env bash
# GPU check (issue 12), ready to run on a machine with CUDA; a few minutes on one GPU.
#   1. the device: torch, CUDA, card, bf16 support, GPU count;
#   2. a tiny search (tiny_bert, RTE slice) in fp32 and in bf16 autocast: both finish, bf16 is
#      recorded, found configurations printed side by side (bf16 may differ: it is not bit-exact);
#   3. one MiniLM-L6 search (the demo's settings, bf16 autocast) with its wall-clock;
#   4. with 2+ GPUs: the tiny search data-parallel on 2 GPUs (torchrun, NCCL) against (2) in fp32;
#   5. benchmarks/gpu_check.py: one bf16 step per arm (uniform LoRA, supernet, peft LoRA) on MiniLM-L6
#      and a RoBERTa-large shape: tokens/s, max_memory_allocated and the memory estimate beside it.
# Prints device, precision and timings; outputs under $OUT (default outputs/gpu_check, re-runs
# start over). On a machine without CUDA it stops after (1) unless GPU_CHECK_CPU=1 (a CPU smoke
# run of 2 and 4 with gloo, for checking the script itself).
#   bash benchmarks/gpu_check.sh            # PY=... OUT=... PRUNEPEFT_DATA_DIR=... to override
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/gpu_check}
export PRUNEPEFT_DATA_DIR=${PRUNEPEFT_DATA_DIR:-$(cd .. && pwd)/shared/data/glue}
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== 1. device"
"$PY" - <<'EOF' | tee "$OUT/device.txt"
import torch
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, available {torch.cuda.is_available()}")
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}")
    print(f"bf16 supported: {torch.cuda.is_bf16_supported()}")
EOF
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
DEVICE=cuda
if [ "$NGPU" = 0 ]; then
  [ "${GPU_CHECK_CPU:-0}" = 1 ] || { echo "no CUDA device: nothing more to check (GPU_CHECK_CPU=1 for a CPU smoke run)"; exit 0; }
  DEVICE=cpu
fi

run() {  # run <name> <command...>: times one command, then prints device, precision and timings
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  "$@" hydra.run.dir="$OUT/$name" train.progress=false > "$OUT/$name.out" 2> "$OUT/$name.err" \
    || { echo "FAILED: $name (see $OUT/$name.err)"; tail -20 "$OUT/$name.err"; exit 1; }
  end=$(date +%s.%N)
  "$PY" - "$OUT/$name" "$name" "$start" "$end" <<'EOF'
import json, re, sys
from pathlib import Path
run, name, start, end = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
info, summary = json.loads((run / "run.json").read_text()), json.loads((run / "summary.json").read_text())
banner = next((l for p in run.glob("*.log") for l in p.read_text().splitlines() if "| device" in l), "")
precision = re.search(r"precision (\w+)", banner)  # what the run used (bf16 falls back to fp32 on CPU)
units = summary.get("found", {}).get("units", summary.get("method"))
print(f"{name:>14}: device {info['device']} x{info.get('world_size', 1)}, precision "
      f"{precision.group(1) if precision else '?'}, wall {end - start:.1f} s (search {summary.get('search', {}).get('wall_s', '-')} s, "
      f"retrain {summary['train']['wall_s']} s), {summary['primary']['metric']} {summary['primary']['value']:.4f}, "
      f"peft params {summary['params']['peft']}, found {units}")
EOF
}

P="$PY -m prunepeft.cli"
TINY="search model=tiny_bert task=rte train=test data.train_subset=256 data.eval_subset=128 model.tiny.dropout=0
  search.warmup.subset=128 search.warmup.epochs=1 search.retrain_epochs=1 budget.params=2000 train.device=$DEVICE"
echo "== 2. tiny search: fp32 and bf16 autocast on $DEVICE"
# shellcheck disable=SC2086
run tiny-fp32 $P $TINY train.precision=fp32
# shellcheck disable=SC2086
run tiny-bf16 $P $TINY train.precision=bf16

echo "== 3. MiniLM-L6 search (the demo's settings), bf16 autocast"
if [ "$DEVICE" = cuda ]; then
  # shellcheck disable=SC2086
  run minilm-bf16 $P search task=sst2 model=minilm_l6 train=cpu train.max_length=64 data.train_subset=2000 \
    search.fidelity=low search.warmup.subset=512 search.k=4 search.retrain_epochs=2 search.reinit=keep \
    train.device=cuda train.precision=bf16
else
  echo "skipped on CPU (make demo is the CPU run)"
fi

echo "== 4. data parallel: 2 processes against 1 (fp32)"
if [ "$NGPU" -ge 2 ] || [ "$DEVICE" = cpu ]; then
  # shellcheck disable=SC2086
  run tiny-fp32-x2 "$PY" -m torch.distributed.run --standalone --nproc_per_node=2 -m prunepeft.cli $TINY train.precision=fp32
  "$PY" - "$OUT/tiny-fp32" "$OUT/tiny-fp32-x2" <<'EOF'
import json, sys
from pathlib import Path
a, b = Path(sys.argv[1]), Path(sys.argv[2])
same = json.loads((a / "found_config.json").read_text()) == json.loads((b / "found_config.json").read_text())
rows = lambda d: [json.loads(l) for l in (d / "rounds.jsonl").read_text().splitlines() if l.strip()]
worst = max((abs(s[k] - rows(b)[i]["statistics"][u][k]) / max(abs(s[k]), 1e-30)
             for i, r in enumerate(rows(a)) for u, s in r["statistics"].items()
             for k in ("grad_abs_mean", "taylor_abs_mean", "activation") if isinstance(s.get(k), float)), default=0.0)
print(f"1 vs 2 processes: same found configuration: {same}; worst relative statistic difference {worst:.2e}")
EOF
else
  echo "skipped: one GPU"
fi

echo "== 5. one training step per arm: tokens/s, peak memory and the memory estimate (gpu_check.py)"
if [ "$DEVICE" = cuda ]; then
  "$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json" | tee "$OUT/gpu_check.md"
else
  "$PY" benchmarks/gpu_check.py --smoke --device cpu --out "$OUT/gpu_check.json" | tee "$OUT/gpu_check.md"
fi
echo "outputs in $OUT"
