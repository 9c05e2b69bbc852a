#!/usr/bin/env bash
# Issue-2/3 baseline benchmarks on MiniLM-L6 (CPU, train=cpu): full fine-tuning, head-only and
# uniform LoRA / adapter sized to budget.percent=0.75, on a stratified 2k SST-2 subset (2 epochs,
# max length 64) and on RTE (1 epoch, max length 128). Finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
P=.venv/bin/prunepeft
OUT=outputs/bench/baselines
for method in fft head lora adapter; do
  extra=""; [ "$method" = lora ] || [ "$method" = adapter ] && extra="size_to_budget=true"
  $P baseline task=sst2 model=minilm_l6 train=cpu train.max_length=64 data.train_subset=2000 train.epochs=2 \
     method=$method $extra train.progress=false seed=1 hydra.run.dir=$OUT/sst2-$method-s1
done
for method in fft head lora adapter; do
  extra=""; [ "$method" = lora ] || [ "$method" = adapter ] && extra="size_to_budget=true"
  $P baseline task=rte model=minilm_l6 train=cpu train.epochs=1 method=$method $extra \
     train.progress=false seed=1 hydra.run.dir=$OUT/rte-$method-s1
done
