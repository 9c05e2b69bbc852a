"""Smoke test of benchmarks/gpu_check.py (issue 12, Deliver 5): tiny shapes, CPU, in-process."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_smoke(tmp_path, capsys):
    gpu_check = _load()
    out = tmp_path / "gpu_check.json"
    report = gpu_check.run(["--smoke", "--device", "cpu", "--out", str(out)])
    results = report["results"]
    assert {(r["model"], r["arm"]) for r in results} == {(m, a) for m in gpu_check.MODELS for a in gpu_check.ARMS}
    for r in results:
        assert math.isfinite(r["tokens_per_s"]) and r["tokens_per_s"] > 0, r
        assert math.isfinite(r["final_loss"]), r
        assert r["hidden_size"] == 32 and r["num_hidden_layers"] == 2
        assert 0 < r["est_allocated_mib"] <= r["est_total_mib"], r  # the memory estimate beside the peak
    by = {(r["model"], r["arm"]): r for r in results}
    for model in gpu_check.MODELS:
        assert by[(model, "supernet")]["trainable_params"] > by[(model, "uniform_lora")]["trainable_params"]
        # our LoRA on query/value of every layer + head == peft's LoRA on query/value + head
        assert by[(model, "uniform_lora")]["trainable_params"] == by[(model, "peft_lora")]["trainable_params"]
    assert report["env"]["precision"] == "fp32" and report["env"]["smoke"] is True
    assert json.loads(out.read_text())["results"] == json.loads(json.dumps(results))
    table = capsys.readouterr().out
    assert "| model | arm |" in table and "peft_lora" in table and "estimate / peak" in table
