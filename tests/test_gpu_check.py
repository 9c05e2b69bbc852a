"""Smoke test of benchmarks/gpu_check.py (issue 12, Deliver 5): tiny shapes, CPU, run as its users run it
(`python -m benchmarks.gpu_check`, a second process: a test never imports a benchmark entry point)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("minilm_l6", "roberta_large")  # the script's two shapes and three arms
ARMS = ("uniform_lora", "peft_lora", "supernet")


def test_gpu_check_smoke(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--smoke", "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    results = report["results"]
    assert {(r["model"], r["arm"]) for r in results} == {(m, a) for m in MODELS for a in ARMS}
    for r in results:
        assert math.isfinite(r["tokens_per_s"]) and r["tokens_per_s"] > 0, r
        assert math.isfinite(r["final_loss"]), r
        assert r["hidden_size"] == 32 and r["num_hidden_layers"] == 2
        assert 0 < r["est_allocated_mib"] <= r["est_total_mib"], r  # the memory estimate beside the peak
    by = {(r["model"], r["arm"]): r for r in results}
    for model in MODELS:
        assert by[(model, "supernet")]["trainable_params"] > by[(model, "uniform_lora")]["trainable_params"]
        # our LoRA on query/value of every layer + head == peft's LoRA on query/value + head
        assert by[(model, "uniform_lora")]["trainable_params"] == by[(model, "peft_lora")]["trainable_params"]
    assert report["env"]["precision"] == "fp32" and report["env"]["smoke"] is True
    table = proc.stdout
    assert "| model | arm |" in table and "peft_lora" in table and "estimate / peak" in table
