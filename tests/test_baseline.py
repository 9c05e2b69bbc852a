"""`prunepeft baseline` in-process on tiny_bert with a real RTE slice: outputs, skip, every method, errors."""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from prunepeft.commands import baseline
from prunepeft.errors import UserError
from prunepeft.run.io import RunFileError
from prunepeft.run.io import read_json, read_jsonl
from prunepeft.models import build_tiny, get_family
from prunepeft.peft import FoundConfig, Supernet, UnitSizes
from prunepeft.peft.weights import load_trained, trained_tensors


def run_baseline(compose_cfg, overrides, run_dir):
    return baseline.run(compose_cfg("baseline", overrides), run_dir)


def test_fft_writes_run_outputs_and_rerun_skips(compose_cfg, tiny_overrides, tmp_path, capsys):
    out = tmp_path / "fft"
    summary = run_baseline(compose_cfg, [*tiny_overrides, "method=fft", "train.epochs=2", "train.log_every=2"], out)
    for name in ("run.json", "events.jsonl", "summary.json", "DONE"):
        assert (out / name).exists(), name
    # fft trains no units: every trained weight is in model.safetensors, beside a configuration with
    # no units (what load_run / predict / evaluate / export read, tests/test_baseline_runs.py)
    assert load_file(out / "units.safetensors") == {} and read_json(out / "found_config.json")["units"] == []
    assert (out / "model.safetensors").is_file() and (out / "head.safetensors").is_file()
    info = read_json(out / "run.json")
    assert info["status"] == "done" and info["command"] == "baseline" and info["seed"] == 42
    assert info["device"] == "cpu" and "torch" in info["versions"] and info["wall_s"] > 0
    assert info["config"]["model"]["name"] == "tiny_bert"
    assert read_json(out / "summary.json") == summary
    assert (summary["command"], summary["task"], summary["model"], summary["method"]) == ("baseline", "rte", "tiny_bert", "fft")
    acc = summary["metrics"]["validation"]["accuracy"]
    assert 0.0 <= acc <= 1.0
    assert summary["primary"] == {"split": "validation", "metric": "accuracy", "value": acc}
    assert summary["metrics"] == summary["history"][-1]["metrics"]  # the headline is the LAST epoch
    assert summary["best_epoch"] in (1, 2)
    assert summary["best_metrics"]["validation"]["accuracy"] >= acc
    params = summary["params"]
    assert params["head"] > 0 and params["peft"] == params["base"] and params["percent"] == 100.0
    assert params["trainable"] == params["base"] + params["head"]
    # 64 train examples, batch 16 -> 4 steps per epoch; the eval slice is 32 examples.
    assert summary["train"] == {"epochs": 2, "wall_s": pytest.approx(summary["train"]["wall_s"]), "examples_seen": 128,
                                "steps": 8, "train_size": 64, "train_size_full": 2490}
    assert summary["lr"]["backbone"] == 1e-3
    events = read_jsonl(out / "events.jsonl")
    assert [e["step"] for e in events if e["kind"] == "step"] == [2, 4, 6, 8]
    assert [e["epoch"] for e in events if e["kind"] == "eval"] == [1, 2]
    assert "accuracy = " in capsys.readouterr().out

    (out / "summary.json").write_text('{"marker": 1}\n')  # a finished dir is not re-run
    again = run_baseline(compose_cfg, [*tiny_overrides, "method=fft", "train.epochs=2"], out)
    assert again == {"marker": 1}
    assert "already finished" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"finished run with a different configuration \(train.epochs: 2 -> 1\)"):
        run_baseline(compose_cfg, [*tiny_overrides, "method=fft"], out)
    assert read_json(out / "summary.json") == {"marker": 1}


def test_head_only_trains_only_the_head(compose_cfg, tiny_overrides, tmp_path):
    summary = run_baseline(compose_cfg, [*tiny_overrides, "method=head"], tmp_path / "head")
    params = summary["params"]
    assert params["peft"] == 0 and params["percent"] == 0.0 and params["trainable"] == params["head"] > 0
    # tiny bert classifier: hidden 32 x 2 labels + 2 biases
    assert params["head"] == 32 * 2 + 2


@pytest.mark.parametrize("method", ["lora", "dora", "adapter", "houlsby"])
def test_uniform_peft_methods(compose_cfg, tiny_overrides, tmp_path, method):
    summary = run_baseline(compose_cfg, [*tiny_overrides, f"method={method}"], tmp_path / method)
    params = summary["params"]
    # tiny_bert: 4 layers, hidden 32, lora r=4 on q and v, adapter bottleneck 8.
    expected = {"lora": 4 * 2 * 4 * (32 + 32), "dora": 4 * 2 * (4 * 64 + 32),
                "adapter": 4 * (2 * 32 * 8 + 8 + 32), "houlsby": 4 * 2 * (2 * 32 * 8 + 8 + 32)}[method]
    assert params["peft"] == expected
    assert params["trainable"] == params["peft"] + params["head"]
    assert params["sizes"] == {"lora_r": 4, "adapter_bottleneck": 8}
    assert params["percent"] == pytest.approx(100 * expected / params["base"], abs=1e-4)
    assert (tmp_path / method / "DONE").exists()
    # the trained units and head, saved the one way (prunepeft.peft.weights), load into the same method
    cfg = compose_cfg("baseline", [*tiny_overrides, f"method={method}"])
    fresh = baseline.prepare(cfg, build_tiny(cfg.model, 2, 0)[0], get_family("bert")).supernet
    load_trained(fresh, tmp_path / method)
    assert trained_tensors(fresh).keys() == {**load_file(tmp_path / method / "units.safetensors"),
                                             **{f"head::{k}": 0 for k in load_file(tmp_path / method / "head.safetensors")}}.keys()


def test_sizes_from_overrides_and_budget(compose_cfg, tiny_overrides, tmp_path):
    cfg = compose_cfg("baseline", [*tiny_overrides, "method=lora", "lora_r=2"])
    model, _ = build_tiny(cfg.model, 2, 0)
    _, groups, params, _ = baseline.prepare(cfg, model, get_family("bert"))
    assert params["peft"] == 4 * 2 * 2 * 64 and params["sizes"]["lora_r"] == 2
    assert sum(p.numel() for p in groups["peft"]) == params["peft"]

    cfg = compose_cfg("baseline", [*tiny_overrides, "method=adapter", "size_to_budget=true", "budget.params=2000"])
    model, _ = build_tiny(cfg.model, 2, 0)
    params = baseline.prepare(cfg, model, get_family("bert")).params
    b = params["sizes"]["adapter_bottleneck"]
    assert params["peft"] <= 2000 < 4 * (2 * 32 * (b + 1) + (b + 1) + 32)  # the largest width that fits
    with pytest.raises(UserError, match="size_to_budget"):
        cfg = compose_cfg("baseline", [*tiny_overrides, "method=lora", "size_to_budget=true", "lora_r=2"])
        baseline.prepare(cfg, build_tiny(cfg.model, 2, 0)[0], get_family("bert"))


def test_found_retrains_a_saved_configuration(compose_cfg, tiny_overrides, tmp_path):
    cfg = compose_cfg("baseline", [*tiny_overrides])
    model, _ = build_tiny(cfg.model, 2, 0)
    units = {(0, "lora"): UnitSizes(lora_r=4), (3, "adapter"): UnitSizes(adapter_bottleneck=8)}
    net = Supernet.from_units(model, get_family("bert"), units, 32)
    search_dir = tmp_path / "search"
    FoundConfig.from_supernet(net, cfg.model).save(search_dir / "found_config.json")
    summary = run_baseline(compose_cfg, [*tiny_overrides, "method=found", f"run={search_dir}"], tmp_path / "found")
    assert summary["params"]["peft"] == 2 * 4 * 64 + (2 * 32 * 8 + 8 + 32)
    assert summary["run"] == str(search_dir)
    assert (tmp_path / "found" / "DONE").exists()


@pytest.mark.parametrize("overrides, message", [
    (["method=nope"], r"unknown method 'nope'; valid choices: adapter, dora, fft, found, head, houlsby, lora"),
    (["method=found"], r"method=found needs run="),
    (["method=found", "run=/nonexistent/dir"], r"has no found_config.json"),
    # Checked before training: these used to fail after an epoch (KeyError) or with run.json written.
    (["task.primary_metric=f2"], r"task.primary_metric='f2' is not one of task.metrics; valid choices: accuracy"),
    (["task.metrics=[accuracy,bleu]"], r"unknown metric 'bleu'; valid choices: accuracy, f1, mcc, pearson, spearman"),
    (["train.precision=fp8"], r"unknown train.precision 'fp8'; valid choices: auto, bf16, fp32"),
    (["train.grad_accum=3"], r"train.batch_size=16 must be a multiple of train.grad_accum=3"),
    (["train.epochs=0"], r"train.epochs must be >= 1, got 0"),
])
def test_user_errors_write_nothing(compose_cfg, tiny_overrides, tmp_path, overrides, message):
    out = tmp_path / "bad"
    with pytest.raises(UserError, match=message):
        run_baseline(compose_cfg, [*tiny_overrides, *overrides], out)
    assert not (out / "run.json").exists()


def test_missing_data_dir_is_a_user_error(compose_cfg, tiny_overrides, tmp_path):
    overrides = [o for o in tiny_overrides if not o.startswith("data.dir")] + [f"data.dir={tmp_path / 'none'}"]
    with pytest.raises(UserError, match="none"):
        run_baseline(compose_cfg, overrides, tmp_path / "run")
    assert not (tmp_path / "run" / "run.json").exists()


# ---------------------------------------------------------------- match_compute (issue 22, item 5)
def _search_summary(tmp_path, examples):
    src = tmp_path / "search"
    src.mkdir()
    (src / "summary.json").write_text(json.dumps({"command": "search", "cost": {"examples": examples}}))
    return src


@pytest.mark.parametrize("search_trained, retrain_trained, size, epochs", [
    (1500, 2000, 1000, 4),   # 3.5 epochs: halves go up (not Python's round-half-even, which gives 4 here too)
    (500, 2000, 1000, 3),    # 2.5 -> 3 (round() would give 2)
    (1400, 2000, 1000, 3),   # 3.4 -> 3
    (30, 40, 1000, 1),       # never fewer than one epoch
    (3072, 4000, 2000, 4),   # the demo's search (3,072) + retrain (4,000) on 2k rows: 3.54 -> 4
])
def test_matched_epochs_are_the_nearest_whole_epochs(tmp_path, search_trained, retrain_trained, size, epochs):
    src = _search_summary(tmp_path, {"search_trained": search_trained, "retrain_trained": retrain_trained,
                                     "search_forward_only": 999_999})  # forward-only passes are not counted
    got, record = baseline.matched_epochs(src, size)
    assert got == epochs
    assert record == {"run": str(src), "target_examples": search_trained + retrain_trained, "epochs": epochs,
                      "examples": epochs * size}


def test_matched_epochs_refuses_a_run_without_cost_or_summary(tmp_path):
    src = _search_summary(tmp_path, {"search_trained": 10})
    with pytest.raises(UserError, match=r"match_compute=.*no trained examples.*re-run that search"):
        baseline.matched_epochs(src, 100)
    with pytest.raises(RunFileError, match=r"summary\.json"):
        baseline.matched_epochs(tmp_path / "absent", 100)


def test_a_match_compute_baseline_trains_the_matched_epochs(compose_cfg, tiny_overrides, tmp_path):
    # tiny_overrides train on 64 rows: 100 + 60 examples -> 2.5 -> 3 epochs, whatever train.epochs says
    src = _search_summary(tmp_path, {"search_trained": 100, "retrain_trained": 60})
    out = tmp_path / "lora"
    summary = run_baseline(compose_cfg, [*tiny_overrides, "method=lora", "train.epochs=1", f"match_compute={src}"], out)
    assert summary["train"]["epochs"] == 3 and len(summary["history"]) == 3
    assert summary["train"]["examples_seen"] == 3 * 64
    assert summary["train"]["match_compute"] == {"run": str(src), "target_examples": 160, "epochs": 3,
                                                 "examples": 192}


# ---------------------------------------------------------------- match_params (claim (a'), Table 2)
def _found_summary(tmp_path, peft, command="search"):
    src = tmp_path / f"{command}-{peft}"
    src.mkdir()
    (src / "summary.json").write_text(json.dumps({"command": command, "params": {"peft": peft, "base": 68128}}))
    return src


def test_matched_params_reads_the_search_runs_found_count(tmp_path):
    src = _found_summary(tmp_path, 1234)
    assert baseline.matched_params(src) == {"run": str(src), "params": 1234}
    with pytest.raises(UserError, match=r"match_params=.*has no summary\.json; point it at a finished `prunepeft search`"):
        baseline.matched_params(tmp_path / "absent")
    with pytest.raises(UserError, match=r"is not a finished search run.*records no params\.peft"):
        baseline.matched_params(_found_summary(tmp_path, 1234, command="baseline"))  # a baseline is not a search
    with pytest.raises(UserError, match=r"records no params\.peft"):
        baseline.matched_params(_found_summary(tmp_path, 0))


def test_a_match_params_baseline_is_sized_to_the_runs_count_not_the_budget(compose_cfg, tiny_overrides, tmp_path):
    # The budget says 5,000 parameters (r = 9); the search run kept 1,500: the LoRA is sized to 1,500, the
    # largest rank that fits (512 parameters per rank, test_sizes_from_overrides_and_budget: r = 2, 1,024;
    # r = 3 would be 1,536).
    src = _found_summary(tmp_path, 1500)
    out = tmp_path / "lora"
    summary = run_baseline(compose_cfg, [*tiny_overrides, "method=lora", "size_to_budget=true", "budget.params=5000",
                                         "budget.percent=null", f"match_params={src}"], out)
    assert summary["params"]["peft"] == 1024 and summary["params"]["sizes"]["lora_r"] == 2
    assert summary["match_params"] == {"run": str(src), "params": 1500}
    assert summary["budget"] == {"percent": None, "params": 1500} and summary["size_to_budget"] is True
    from prunepeft.report import collect_runs

    runs = collect_runs(tmp_path)
    assert list(runs[runs["command"] == "baseline"]["label"]) == ["LoRA, equal parameters"]


@pytest.mark.parametrize("overrides, message", [
    (["method=fft"], r"match_params sizes uniform units to a search run's parameters; method=fft has none: use "
                     r"method=lora\|dora\|adapter\|houlsby, or drop match_params"),
    (["method=lora", "lora_r=2"], r"match_params computes the size from that run's parameters; drop lora_r=/adapter_bottleneck="),
])
def test_match_params_user_errors_write_nothing(compose_cfg, tiny_overrides, tmp_path, overrides, message):
    out = tmp_path / "bad"
    with pytest.raises(UserError, match=message):
        run_baseline(compose_cfg, [*tiny_overrides, *overrides, f"match_params={_found_summary(tmp_path, 1500)}"], out)
    assert not (out / "run.json").exists()
