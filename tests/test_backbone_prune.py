"""Early pruning of the backbone (issue 14, Deliver 4): masks, L1 penalty, selection, physical removal."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from prunepeft.errors import UserError
from prunepeft.models import build_tiny, get_family
from prunepeft.models.backbone_prune import (
    BackboneMasks,
    KeptStructures,
    L1Penalty,
    prune,
    removed_params,
    select,
)
from prunepeft.models.families import base_model_parameter_count

H, HEADS, FF, LAYERS = 32, 4, 64, 3


def tiny(family: str = "bert"):
    cfg = OmegaConf.create({"name": "t", "family": family, "kind": "tiny",
                            "tiny": {"hidden_size": H, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                                     "intermediate_size": FF, "vocab_size": 512}})
    model, tok = build_tiny(cfg, 2, 0)
    return model.eval(), tok, get_family(family)


def batch(tok):
    enc = tok(["the story was good and the day was long", "not a great day"], padding=True, return_tensors="pt")
    return {k: v for k, v in enc.items()}


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_masks_at_one_change_nothing(family):
    model, tok, fam = tiny(family)
    inputs = batch(tok)
    before = logits(model, inputs)
    masks = BackboneMasks.install(model, fam)
    assert torch.equal(logits(model, inputs), before)
    assert base_model_parameter_count(model, fam) == base_model_parameter_count(tiny(family)[0], fam)
    masks.remove()
    assert torch.equal(logits(model, inputs), before)


def _zero_one_masks(masks: BackboneMasks) -> None:
    """Exactly 0/1 masks: layer l loses head l (layer 0 also head 3); neurons: every third is 0."""
    with torch.no_grad():
        for layer, m in enumerate(masks.heads):
            m[layer % HEADS] = 0.0
        masks.heads[0][3] = 0.0
        for m in masks.neurons:
            m[::3] = 0.0


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_physical_removal_equals_masked_model(family):
    model, tok, fam = tiny(family)
    inputs = batch(tok)
    fresh = copy.deepcopy(model)
    before = base_model_parameter_count(model, fam)
    masks = BackboneMasks.install(model, fam)
    _zero_one_masks(masks)
    masked = logits(model, inputs)
    kept = select(masks, heads=0.3, ffn=0.3)
    assert kept.heads[0] == [1, 2] and kept.heads[1] == [0, 2, 3] and kept.heads[2] == [0, 1, 3]
    assert all(n == [i for i in range(FF) if i % 3] for n in kept.neurons)
    prune(fresh, fam, kept)
    assert torch.allclose(logits(fresh, inputs), masked, atol=1e-5)
    # the attention modules read the new head count; the closed form matches the parameter count
    attn = fresh.get_submodule(f"{fam.layers_path}.0.attention.self")
    assert attn.num_attention_heads == 2 and attn.all_head_size == 2 * (H // HEADS)
    after = base_model_parameter_count(fresh, fam)
    assert before - after == removed_params(H, H // HEADS, kept, LAYERS)
    with pytest.raises(UserError, match="already pruned"):
        prune(fresh, fam, kept)


def decoder(family: str, kv_heads: int | None = None):
    """A tiny decoder (4 heads of 8, 3 layers); `kv_heads` < 4 gives grouped-query attention."""
    cfg = OmegaConf.create({"name": "t", "family": family, "kind": "tiny",
                            "tiny": {"hidden_size": H, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                                     "intermediate_size": FF, "vocab_size": 512}})
    model, tok = build_tiny(cfg, 2, 0)
    if kv_heads is not None:
        from transformers import AutoModelForSequenceClassification

        model.config.num_key_value_heads = kv_heads
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(model.config)
    return model.eval(), tok, get_family(family)


@pytest.mark.parametrize("family, kv_heads", [("llama", None), ("qwen2", None), ("llama", 2)])
def test_decoder_masked_equals_pruned(family, kv_heads):
    """Decoders: masks at 1 change nothing; 0/1 masks == the physically pruned model (logits within 1e-5);
    under grouped-query attention whole key/value groups go; the parameter count matches by hand."""
    model, tok, fam = decoder(family, kv_heads)
    inputs = batch(tok)
    before_logits = logits(model, inputs)
    fresh = copy.deepcopy(model)
    before = base_model_parameter_count(model, fam)
    masks = BackboneMasks.install(model, fam)
    assert torch.equal(logits(model, inputs), before_logits)
    g = HEADS // (kv_heads or HEADS)
    assert masks.group == [g] * LAYERS
    with torch.no_grad():
        for layer, m in enumerate(masks.heads):  # layer l loses key/value group l % (4 / g)
            k = layer % (HEADS // g)
            m[k * g:(k + 1) * g] = 0.0
        for m in masks.neurons:
            m[::3] = 0.0
    masked = logits(model, inputs)
    assert not torch.allclose(masked, before_logits)
    kept = select(masks, heads=0.3, ffn=0.3)
    k0 = [h for h in range(HEADS) if h // g != 0]
    assert kept.heads[0] == k0 and len(kept.heads[1]) == HEADS - g
    prune(fresh, fam, kept)
    assert torch.allclose(logits(fresh, inputs), masked, atol=1e-5)
    attn = fresh.get_submodule(f"{fam.layers_path}.0.self_attn")
    d = H // HEADS
    assert attn.q_proj.out_features == (HEADS - g) * d and attn.k_proj.out_features == (HEADS // g - 1) * d
    assert attn.num_key_value_groups == g
    # by hand: a cut group = g query rows + 1 key row + 1 value row + g o_proj columns of d each
    # (qwen2: q/k/v biases); a cut neuron = a gate row, an up row and a down column
    qkv_bias = 1 if family == "qwen2" else 0
    per_group = (g + 2) * d * (H + qkv_bias) + g * d * H
    assert before - base_model_parameter_count(fresh, fam) == LAYERS * per_group + LAYERS * (FF // 3 + 1) * 3 * H
    with pytest.raises(UserError, match="already pruned"):
        prune(fresh, fam, kept)
    if g > 1:
        split = KeptStructures([[0, 2, 3]] + kept.heads[1:], kept.neurons, HEADS, FF)
        with pytest.raises(UserError, match="split a group"):
            prune(decoder(family, kv_heads)[0], fam, split)


def test_kept_indices_round_trip_reprune_identically(tmp_path):
    model, tok, fam = tiny()
    masks = BackboneMasks.install(model, fam)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in list(masks.heads) + list(masks.neurons):
            m.copy_(torch.rand(m.shape, generator=g))
    kept = select(masks, heads=1 / 3, ffn=1 / 3)
    kept.save(tmp_path / "backbone_prune.json")
    again = KeptStructures.load(tmp_path / "backbone_prune.json")
    assert again == kept
    a, b = tiny()[0], tiny()[0]
    prune(a, fam, kept)
    prune(b, fam, again)
    inputs = batch(tok)
    assert torch.equal(logits(a, inputs), logits(b, inputs))
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_selection_rules():
    model, _, fam = tiny()
    masks = BackboneMasks.install(model, fam)
    with torch.no_grad():
        masks.heads[0].copy_(torch.tensor([0.1, 0.1, 0.1, 0.1]))  # all equal: keeps one head (>= 1 per layer)
        masks.heads[1].copy_(torch.tensor([-0.5, 0.2, 0.9, 0.4]))  # raw values, not |m|
        masks.neurons[0].fill_(0.0)  # the global cut empties layer 0: it keeps one neuron
    kept = select(masks, heads=0.25, ffn=1 / 3)
    assert len(kept.heads[0]) == 1 and kept.heads[1] == [1, 2, 3] and kept.heads[2] == [0, 1, 2, 3][: len(kept.heads[2])]
    assert len(kept.neurons[0]) == 1
    assert select(masks, heads=0.0, ffn=0.0).counts() == (LAYERS * HEADS, LAYERS * FF)
    with pytest.raises(UserError, match="backbone_prune.heads"):
        select(masks, heads=1.0, ffn=0.0)


def test_l1_penalty_gradient_is_coef_times_sign():
    model, tok, fam = tiny()
    masks = BackboneMasks.install(model, fam)
    with torch.no_grad():
        masks.heads[0].copy_(torch.tensor([1.0, -0.5, 0.0, 2.0]))
    model.train()
    out = model(**batch(tok), labels=torch.tensor([0, 1]))
    out.loss.backward()
    task_grads = [m.grad.clone() for m in masks.parameters()]
    L1Penalty(masks, 1e-4).on_before_optimizer_step(1)
    for m, g in zip(masks.parameters(), task_grads):
        assert torch.allclose(m.grad - g, 1e-4 * torch.sign(m.detach()), atol=1e-10, rtol=0)  # float rounding of g + λs
    # the same as differentiating 1e-4 * sum|m| added to the loss
    ref = [torch.autograd.grad(1e-4 * m.abs().sum(), m)[0] for m in masks.parameters()]
    for m, g, r in zip(masks.parameters(), task_grads, ref):
        assert torch.allclose(m.grad - g, r, atol=1e-10, rtol=0)


def test_masks_train_in_fit_and_penalty_shrinks_them():
    from prunepeft.config.schema import TaskConfig, TrainConfig
    from prunepeft.train import build_param_groups, fit
    from datasets import Dataset
    import dataclasses

    model, tok, fam = tiny()
    for p in model.parameters():
        p.requires_grad_(False)
    masks = BackboneMasks.install(model, fam)
    enc = tok(["good day", "not good", "great story", "never right"] * 4, truncation=True, max_length=16)
    ds = Dataset.from_dict({**enc, "labels": [1, 0, 1, 0] * 4})
    tc = dataclasses.replace(TrainConfig(), batch_size=8, grad_accum=1, lr_peft=1e-2, lr_head=1e-2,
                             lr_backbone=0.0, weight_decay=0.0, warmup_ratio=0.0, device="cpu",
                             precision="fp32", progress=False, max_grad_norm=1.0)
    task = TaskConfig(name="toy", hub_config="toy", metrics=["accuracy"], primary_metric="accuracy")
    groups = build_param_groups(peft=list(masks.parameters()), train_cfg=tc)
    l1_before = float(masks.l1().detach())
    # a large coefficient so two steps move every mask down
    fit(model, groups, ds, {}, tok, train_cfg=tc, task=task, epochs=1, seed=0, callbacks=[L1Penalty(masks, 10.0)])
    assert float(masks.l1().detach()) < l1_before
    assert all(np.all(v < 1.0) for v in masks.values()[0])


def test_unsupported_family_and_wrapped_sites_are_refused():
    cfg = OmegaConf.create({"name": "t", "family": "mistral", "kind": "tiny",
                            "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                     "intermediate_size": 64, "vocab_size": 512}})
    with pytest.raises(UserError, match="not supported"):
        BackboneMasks.install(build_tiny(cfg, 2, 0)[0], get_family("mistral"))
    model, _, fam = tiny()
    layer0 = model.get_submodule(f"{fam.layers_path}.0")
    layer0.attention.self.query = torch.nn.Sequential(layer0.attention.self.query)  # stands in for a PEFT wrapper
    kept = KeptStructures([[0, 1]] + [[0, 1, 2, 3]] * (LAYERS - 1), [list(range(FF))] * LAYERS, HEADS, FF)
    with pytest.raises(UserError, match="before PEFT units"):
        prune(model, fam, kept)


# -- end to end: a tiny search with early backbone pruning ----------------------------------------
SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2", "search.max_rounds=1",
          "search.retrain_epochs=1", "budget.params=2000", "strategy=random"]
BP = ["backbone_prune.enabled=true", "backbone_prune.steps=4", "backbone_prune.heads=0.5", "backbone_prune.ffn=0.5"]


def test_search_with_backbone_pruning_records_and_reloads(compose_cfg, tiny_overrides, tmp_path):
    from prunepeft.api import load_run
    from prunepeft.commands import search as search_cmd
    from prunepeft.io import read_json
    from prunepeft.models.backbone_prune import FILE

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
    from prunepeft.models.backbone_prune import FILE

    crashed = compose_cfg("search", tiny_overrides + SEARCH + BP + ["debug.crash_after_round=1"])
    with pytest.raises(Exception, match="crash_after_round"):
        search_cmd.run(crashed, tmp_path)
    written = (tmp_path / FILE).read_text()
    (tmp_path / FILE).touch()
    stamp = (tmp_path / FILE).stat().st_mtime_ns
    summary = search_cmd.run(compose_cfg("search", tiny_overrides + SEARCH + BP), tmp_path)
    assert (tmp_path / FILE).read_text() == written and (tmp_path / FILE).stat().st_mtime_ns == stamp
    assert summary["backbone"]["heads_kept"] == 4


def test_budget_is_a_share_of_the_unpruned_base():
    from prunepeft.peft import Supernet, UnitSizes, count_parameters
    from prunepeft.pruning.backbone_stage import BASE_BEFORE
    from prunepeft.pruning.stages import budget_of

    model, _, fam = tiny()
    before = base_model_parameter_count(model, fam)
    kept = KeptStructures([[0, 1]] * LAYERS, [list(range(FF // 2))] * LAYERS, HEADS, FF)
    prune(model, fam, kept)
    setattr(model, BASE_BEFORE, before)
    supernet = Supernet.build(model, fam, ["lora"], UnitSizes(lora_r=4, lora_alpha=8.0, adapter_bottleneck=8), H)
    assert count_parameters(supernet).base < before
    cfg = OmegaConf.create({"budget": {"percent": 1.0, "params": None}})
    strategy = type("S", (), {"prunes": True})()
    from prunepeft.pruning.budget import budget_params
    assert budget_of(supernet, strategy, cfg)[0] == budget_params(1.0, None, before)


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


# -- report: one backbone kind per report ----------------------------------------------------------
def _pruned(run_dir, heads=1 / 3, ffn=1 / 3):
    """Give a synthetic run's summary.json the `backbone` entry a pruned search writes."""
    import json

    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    summary["backbone"] = {"heads": heads, "ffn": ffn, "params_before": 22713216, "params_after": 19115867,
                           "heads_kept": 48, "neurons_kept": 6144, "fraction_removed": 0.158}
    path.write_text(json.dumps(summary))
    return run_dir


def _tree(root):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from report_fixtures import make_run

    for seed in (1, 2):
        make_run(root, f"plain/s{seed}", command="search", task="sst2", seed=seed, value=0.9)
        make_run(root, f"lora/s{seed}", command="baseline", method="lora", task="sst2", seed=seed, value=0.88)
    return make_run


def test_backbone_label():
    from prunepeft.report.backbone_check import backbone_label

    assert backbone_label({}) == "unpruned" and backbone_label({"backbone": None}) == "unpruned"
    assert backbone_label({"backbone": {"heads": 1 / 3, "ffn": 0.5}}) == "pruned (heads 0.333, ffn 0.5)"


def test_report_refuses_mixed_backbones_naming_the_runs(tmp_path):
    from prunepeft.report import build_tables, collect_runs

    make_run = _tree(tmp_path)
    _pruned(make_run(tmp_path, "light/s1", command="search", task="sst2", seed=1, value=0.87, strategy="single",
                     criterion="output_ratio"))
    # an unfinished pruned run and a pruned run with a different setting that never finished: not in any table
    _pruned(make_run(tmp_path, "light/s2", command="search", task="sst2", seed=2, value=0.1, done=False), heads=0.5)
    df = collect_runs(tmp_path)
    assert dict(zip(df["run"], df["backbone"]))["light/s1"] == "pruned (heads 0.333, ffn 0.333)"
    with pytest.raises(UserError) as err:
        build_tables(df, ["table2"])
    msg = str(err.value)
    assert "unpruned backbone (4 runs): lora/s1, lora/s2, plain/s1, plain/s2" in msg
    assert "pruned (heads 0.333, ffn 0.333) backbone (1 runs): light/s1" in msg and "light/s2" not in msg
    # two pruning settings do not mix either; one kind alone is fine
    only = tmp_path / "only"
    _pruned(make_run(only, "a/s1", command="search", task="sst2", seed=1, value=0.87))
    _pruned(make_run(only, "b/s1", command="search", task="sst2", seed=1, value=0.86), heads=0.5)
    with pytest.raises(UserError, match=r"heads 0.5, ffn 0.333\) backbone \(1 runs\): b/s1"):
        build_tables(collect_runs(only), ["table2"])
    (only / "b/s1/summary.json").unlink()
    (only / "b/s1/DONE").unlink()
    tables = build_tables(collect_runs(only), ["table2"])
    assert tables[0].rows == [("minilm_l6", "PrunePEFT")]


def test_report_command_exits_2_on_mixed_backbones(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    make_run = _tree(tmp_path / "runs")
    _pruned(make_run(tmp_path / "runs", "light/s1", command="search", task="sst2", seed=1, value=0.87))
    cli = Path(sys.executable).with_name("prunepeft")
    proc = subprocess.run([str(cli), "report", f"runs={tmp_path / 'runs'}", f"out={tmp_path / 'out'}", "figures=false"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "mix backbones" in proc.stderr and "light/s1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "table2.md").exists()


# -- kill and resume: the full Light-PEFT arm (pruned backbone, one estimation round, rank stage) ----
@pytest.mark.parametrize("point", ["between_checkpoint_writes:1", "after_checkpoint:1"])
def test_light_peft_with_pruned_backbone_killed_at_the_handoff_resumes_identically(glue_dir, tmp_path, simulated_kill,
                                                                                   point):
    """SIGKILL (in-process stand-in) while the estimation round is committed, or right after it (before
    the retrain): the resumed run re-prunes from backbone_prune.json and ends exactly like an
    uninterrupted one (found configuration with its per-site ranks, metrics, one round)."""
    from conftest import Killed, cli_ok
    from prunepeft.io import read_json, read_jsonl
    from prunepeft.models.backbone_prune import FILE

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
    from prunepeft.models.backbone_prune import FILE

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
