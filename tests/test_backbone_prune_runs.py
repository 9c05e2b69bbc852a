"""Early pruning of the backbone (issue 14, Deliver 4) end to end: tiny searches and baselines that prune
their backbone, what they record, resume after a crash or a kill, export and load_run re-pruning.
"""
from __future__ import annotations

import pytest
import torch
from backbone_prune_helpers import batch

from prunepeft.errors import UserError
from prunepeft.arms.backbone_prune import KeptStructures, removed_params


# -- end to end: a tiny search with early backbone pruning ----------------------------------------
SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2", "search.max_rounds=1",
          "search.retrain_epochs=1", "budget.params=2000", "strategy=random"]
BP = ["backbone_prune.enabled=true", "backbone_prune.steps=4", "backbone_prune.heads=0.5", "backbone_prune.ffn=0.5"]


def test_search_with_backbone_pruning_records_and_reloads(compose_cfg, tiny_overrides, tmp_path):
    from prunepeft.api import load_run
    from prunepeft.commands import search as search_cmd
    from prunepeft.run.io import read_json
    from prunepeft.arms.backbone_prune import FILE

    # LoRA only, so that `to=peft` reaches the backbone check (adapters are refused before it)
    cfg = compose_cfg("search", tiny_overrides + SEARCH + BP + ["search_space=[lora]", "budget.params=1000"])
    summary = search_cmd.run(cfg, tmp_path)
    kept = KeptStructures.load(tmp_path / FILE)
    bb = summary["backbone"]
    assert bb["heads_kept"] == 4 and kept.counts() == (bb["heads_kept"], bb["neurons_kept"])  # 2 heads -> 1 per layer
    assert bb["neurons_kept"] <= 4 * 64 // 2 + 4
    hidden, head_size = 32, 16  # tiny_bert: 4 layers, 2 heads of 16, intermediate 64
    assert bb["params_before"] - bb["params_after"] == removed_params(hidden, head_size, kept, 4)
    assert read_json(tmp_path / "summary.json")["backbone"] == bb
    # B is a share of the unpruned base: the budget is in absolute params (budget.params here)
    assert summary["params"]["base"] == bb["params_after"] and summary["params"]["peft"] <= 1000
    # load_run re-prunes the fresh backbone identically and reproduces the run's evaluation
    model, tok = load_run(tmp_path)
    attn = model.get_submodule("bert.encoder.layer.0.attention.self")
    assert attn.num_attention_heads == 1
    assert model.get_submodule("bert.encoder.layer.0.intermediate.dense").out_features == len(kept.neurons[0])
    with torch.no_grad():
        run_logits = model(**batch(tok)).logits
    assert run_logits.shape == (2, 2)
    # export: the self-contained format carries backbone_prune.json and re-prunes; peft is refused
    import prunepeft
    from prunepeft.commands import export as export_cmd

    export_cmd.run(compose_cfg("export", [f"run={tmp_path}", "to=prunepeft", f"out={tmp_path / 'exp'}"]))
    exported, etok = prunepeft.load_export(tmp_path / "exp")
    with torch.no_grad():
        assert torch.allclose(exported(**batch(etok)).logits, run_logits, atol=1e-6)
    with pytest.raises(UserError, match="pruned its backbone"):
        export_cmd.run(compose_cfg("export", [f"run={tmp_path}", "to=peft", f"out={tmp_path / 'peft'}"]))


def test_search_without_backbone_pruning_has_no_backbone_fields(compose_cfg, tiny_overrides, tmp_path):
    from prunepeft.pruning.search import validate

    cfg = compose_cfg("search", tiny_overrides + SEARCH + ["backbone_prune.heads=0.5"])
    assert cfg.backbone_prune.enabled is False
    bad = compose_cfg("search", tiny_overrides + SEARCH + ["backbone_prune.enabled=true", "backbone_prune.ffn=1.0"])
    with pytest.raises(UserError, match="backbone_prune.ffn"):
        validate(bad)


def test_resume_reprunes_from_the_file_without_re_estimating(compose_cfg, tiny_overrides, tmp_path):
    from prunepeft.commands import search as search_cmd
    from prunepeft.arms.backbone_prune import FILE

    crashed = compose_cfg("search", tiny_overrides + SEARCH + BP + ["debug.crash_after_round=1"])
    with pytest.raises(Exception, match="crash_after_round"):
        search_cmd.run(crashed, tmp_path)
    written = (tmp_path / FILE).read_text()
    (tmp_path / FILE).touch()
    stamp = (tmp_path / FILE).stat().st_mtime_ns
    summary = search_cmd.run(compose_cfg("search", tiny_overrides + SEARCH + BP), tmp_path)
    assert (tmp_path / FILE).read_text() == written and (tmp_path / FILE).stat().st_mtime_ns == stamp
    assert summary["backbone"]["heads_kept"] == 4


def test_baseline_refuses_backbone_pruning(compose_cfg, tiny_overrides, tmp_path):
    from prunepeft.commands.baseline import validate

    (tmp_path / "found_config.json").write_text("{}")
    for method in (["method=lora"], ["method=found", f"run={tmp_path}"]):
        with pytest.raises(UserError, match="does not estimate a backbone pruning"):
            validate(compose_cfg("baseline", tiny_overrides + method + ["backbone_prune.enabled=true"]))


def test_found_baseline_reprunes_like_the_search_and_reproduces_its_retrain(compose_cfg, tiny_overrides, tmp_path):
    """`baseline method=found run=<pruned search>` retrains on the same pruned backbone: same seed and task
    give the search's own retrain, metric for metric, and the summary carries the backbone record."""
    from prunepeft.commands import baseline as baseline_cmd
    from prunepeft.commands import search as search_cmd
    from prunepeft.report.backbone_check import backbone_label

    search = search_cmd.run(compose_cfg("search", tiny_overrides + SEARCH + BP), tmp_path / "s")
    cfg = compose_cfg("baseline", tiny_overrides + ["method=found", f"run={tmp_path / 's'}", "train.epochs=1"])
    base = baseline_cmd.run(cfg, tmp_path / "b")
    assert base["backbone"] == {**search["backbone"], "heads": 0.5, "ffn": 0.5}
    assert backbone_label(base) == backbone_label(search) == "pruned (heads 0.5, ffn 0.5)"
    assert base["params"]["base"] == search["params"]["base"] == search["backbone"]["params_after"]
    assert base["params"]["peft"] == search["params"]["peft"]
    assert base["metrics"] == search["metrics"]
    # the same found configuration on an unpruned search: no backbone record, the unpruned base
    plain = search_cmd.run(compose_cfg("search", tiny_overrides + SEARCH), tmp_path / "p")
    again = baseline_cmd.run(compose_cfg("baseline", tiny_overrides + ["method=found", f"run={tmp_path / 'p'}",
                                                                       "train.epochs=1"]), tmp_path / "b2")
    assert "backbone" not in again and again["params"]["base"] == search["backbone"]["params_before"]
    assert again["metrics"] == plain["metrics"]


# -- kill and resume: the full Light-PEFT arm (pruned backbone, one estimation round, rank stage) ----
@pytest.mark.parametrize("point", ["between_checkpoint_writes:1", "after_checkpoint:1"])
def test_light_peft_with_pruned_backbone_killed_at_the_handoff_resumes_identically(glue_dir, tmp_path, simulated_kill,
                                                                                   point):
    """SIGKILL (in-process stand-in) while the estimation round is committed, or right after it (before
    the retrain): the resumed run re-prunes from backbone_prune.json and ends exactly like an
    uninterrupted one (found configuration with its per-site ranks, metrics, one round)."""
    from conftest import Killed, cli_ok
    from prunepeft.run.io import read_json, read_jsonl
    from prunepeft.arms.backbone_prune import FILE

    args = ["search", "task=rte", "model=tiny_bert", "train=test", "data.train_subset=64", "data.eval_subset=32",
            f"data.dir={glue_dir}", "strategy=light_peft", "search.retrain_epochs=1", "budget.params=2000",
            "search.round_steps=6", *BP]

    cli_ok([*args, f"hydra.run.dir={tmp_path / 'ref'}"])
    with pytest.raises(Killed):
        cli_ok([*args, f"hydra.run.dir={tmp_path / 'run'}", f"debug.kill_at={point}"])
    assert not (tmp_path / "run" / "DONE").exists() and (tmp_path / "run" / FILE).exists()
    written = (tmp_path / "run" / FILE).read_text()
    cli_ok([*args, f"hydra.run.dir={tmp_path / 'run'}"])
    ref, got = tmp_path / "ref", tmp_path / "run"
    assert (got / FILE).read_text() == written == (ref / FILE).read_text()  # not re-estimated
    assert read_json(got / "found_config.json") == read_json(ref / "found_config.json")
    assert read_json(got / "rank_stage.json") == read_json(ref / "rank_stage.json")
    assert [r["removed"] for r in read_jsonl(got / "rounds.jsonl")] == [r["removed"] for r in read_jsonl(ref / "rounds.jsonl")]
    summary, reference = read_json(got / "summary.json"), read_json(ref / "summary.json")
    assert summary["metrics"] == reference["metrics"] and summary["backbone"] == reference["backbone"]
    assert summary["params"] == reference["params"] and len(read_jsonl(got / "rounds.jsonl")) == 1


def test_search_on_a_pruned_llama_backbone(compose_cfg, glue_dir, tmp_path):
    """tiny_llama end to end: estimation, pruning, search, retrain, load_run re-prunes the same way."""
    from prunepeft.api import load_run
    from prunepeft.commands import search as search_cmd
    from prunepeft.arms.backbone_prune import FILE

    overrides = ["model=tiny_llama", "task=rte", "train=test", f"data.dir={glue_dir}", "data.train_subset=64",
                 "data.eval_subset=32", *SEARCH, *BP, "budget.params=1500"]
    summary = search_cmd.run(compose_cfg("search", overrides), tmp_path)
    kept = KeptStructures.load(tmp_path / FILE)
    assert summary["backbone"]["heads_kept"] == 4 == kept.counts()[0]  # 2 heads per layer -> 1, 4 layers
    assert summary["params"]["base"] == summary["backbone"]["params_after"] < summary["backbone"]["params_before"]
    assert summary["params"]["peft"] <= 1500
    model, _ = load_run(tmp_path)
    assert model.get_submodule("model.layers.0.self_attn.q_proj").out_features == 16  # one head of 16
    assert model.get_submodule("model.layers.0.mlp.down_proj").in_features == len(kept.neurons[0])
