"""The Light-PEFT arm (`strategy=light_peft`, issue 14 Deliver 3): the unit phase's stop at
B / (1 − search.rank_ratio), the rank stage to within one rank of B, and the retrain's start
(`search.retrain_init=warm|fresh`) across a kill at the estimation/retrain handoff.

tiny_bert (hidden 32, 4 layers), search_space [lora, adapter]: a LoRA unit (r=4 on query and value)
is 512 parameters, an adapter (b=8) 552, so the supernet is 4 × 1064 = 4256.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load as load_bytes

from prunepeft.commands import search as search_cmd
from prunepeft.errors import UserError
from prunepeft.run.io import read_json, read_jsonl
from prunepeft.peft.weights import HEAD_PREFIX
from prunepeft.arms.rank_stage import RANK_PREFIX, module_stop, select_round_for_ranks
from prunepeft.pruning.selection import removal_order

UNIT = {"lora": 512, "adapter": 552}
RANK = {"lora": 64, "adapter": 65}  # one rank: d_in + d_out per LoRA site; 2h + 1 per adapter dimension
# A short estimation (6 steps instead of N = 100) keeps the tests fast; the N rule: test_rank_stage.py.
ARM = ["strategy=light_peft", "search.round_steps=6", "search.retrain_epochs=1"]


# ------------------------------------------------------------------------------ the unit phase's stop
def test_module_stop_is_b_over_one_minus_the_rank_ratio():
    assert module_stop(2000, 0.5) == 4000 and module_stop(1200, 0.5) == 2400
    assert module_stop(2000, 0.0) == 2000  # ratio 0: the stop is B itself
    assert module_stop(1000, 0.3) == 1428  # floor(1428.57): totals are integers


def test_unit_phase_stops_at_the_first_total_within_the_stop_by_hand():
    p = {(0, "lora"): 0.9, (1, "lora"): 0.7, (2, "lora"): 0.5, (3, "lora"): 0.1}  # removal order 0, 1, 2, 3
    counts = {u: 100 for u in p}  # total 400
    # B = 120, stop 240: 400 -> 300 -> 200 <= 240 (and > B): two units, the last unit round
    assert select_round_for_ranks(p, 4, counts, 400, 120, 0, stop=module_stop(120, 0.5)) == (
        [(0, "lora"), (1, "lora")], True)
    # B = 150, stop 300: the boundary itself stops it (300 <= 300)
    assert select_round_for_ranks(p, 4, counts, 400, 150, 0, stop=300) == ([(0, "lora")], True)
    # a top-k that stays above the stop is an ordinary round
    assert select_round_for_ranks(p, 1, counts, 400, 120, 0, stop=240) == ([(0, "lora")], False)
    # a unit that would jump from above the stop to <= B is kept: the rank stage needs something to remove
    big = {(0, "adapter"): 300, **{u: 100 for u in list(p)[1:]}}
    pb = {(0, "adapter"): 0.9, **{u: v for u, v in p.items() if u != (0, "lora")}}
    assert select_round_for_ranks(pb, 4, big, 600, 290, 0, stop=580) == ([(0, "adapter")], True)  # 300 > B
    assert select_round_for_ranks(pb, 4, big, 600, 310, 0, stop=320) == ([], True)  # 300 <= B: backs off
    # stop = B: our search's rule (the longest prefix that stays above B)
    assert select_round_for_ranks(p, 4, counts, 400, 150, 0, stop=150) == select_round_for_ranks(p, 4, counts, 400,
                                                                                                  150, 0)
    with pytest.raises(ValueError, match="below the budget"):
        select_round_for_ranks(p, 4, counts, 400, 150, 0, stop=100)


# ------------------------------------------------------------------------------ the settings
@pytest.mark.parametrize("extra, message", [
    (["search.retrain_init=hot"], r"search.retrain_init 'hot'.*fresh, warm"),
    (["search.rank_ratio=1.0"], r"search.rank_ratio must be a number in \[0, 1\).*got 1.0"),
    (["search.rank_ratio=-0.1"], r"search.rank_ratio must be a number in \[0, 1\).*got -0.1"),
    (["search.granularity=unit"], r"search.rank_ratio=0.5 .*needs search.granularity=rank.*choices: rank, unit"),
    (["search.fill_budget=true"], r"search.retrain_init=warm does not combine with search.fill_budget=true"),
])
def test_bad_settings_are_refused_naming_the_value(compose_cfg, tiny_overrides, extra, message):
    from prunepeft.pruning.search import validate

    with pytest.raises(UserError, match=message):
        validate(compose_cfg("search", tiny_overrides + ARM + extra))


def test_bad_retrain_init_exits_2_from_the_cli(glue_dir, tmp_path, capsys):
    from prunepeft import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["search", "model=tiny_bert", "task=rte", "train=test", f"data.dir={glue_dir}", *ARM,
                  "search.retrain_init=cold", f"hydra.run.dir={tmp_path / 'run'}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "search.retrain_init" in err and "'cold'" in err and "fresh, warm" in err and "Traceback" not in err


def test_presets_other_than_light_peft_keep_the_fresh_retrain_and_the_old_stop(compose_cfg, tiny_overrides):
    from prunepeft.config.typed import SearchSettings

    for strategy in ("hybrid", "random", "single", "none", "hybrid_no_partition", "reference"):
        s = SearchSettings.from_config(compose_cfg("search", tiny_overrides + [f"strategy={strategy}"]))
        assert (s.retrain_init, s.rank_ratio) == ("fresh", 0.0), strategy
    s = SearchSettings.from_config(compose_cfg("search", tiny_overrides + ["strategy=light_peft"]))
    assert (s.retrain_init, s.rank_ratio, s.granularity) == ("warm", 0.5, "rank")


# ------------------------------------------------------------------------------ end to end
def _capture_retrain_start(monkeypatch) -> dict:
    """Record the retrain's units and head at step 0 (before its first optimizer step)."""
    from prunepeft.peft.weights import trained_tensors
    from prunepeft.pruning import stages

    seen: dict = {}
    real = stages.train_supernet

    def spy(supernet, *args, **kwargs):
        if kwargs.get("phase") == "retrain":
            seen.update(trained_tensors(supernet))
        return real(supernet, *args, **kwargs)

    monkeypatch.setattr(stages, "train_supernet", spy)
    return seen


def _estimation_tensors(run_dir) -> dict:
    """The search checkpoint's supernet tensors (the estimation's trained units, head, rank masks)."""
    from prunepeft.pruning.checkpoint import SearchState

    state = SearchState.load(run_dir / "checkpoint")
    return load_bytes((run_dir / "checkpoint" / state.weights).read_bytes())


def _sliced_by_hand(tensors: dict) -> dict:
    """Slice each masked site to its kept ranks (LoRA: rows of A, columns of B; adapter: down rows and
    bias, up columns; the up-bias whole); sites with no rank left dropped. Written independently of
    rank_stage.kept_tensors."""
    masks = {k[len(RANK_PREFIX):]: v for k, v in tensors.items() if k.startswith(RANK_PREFIX)}
    out = {}
    for key, t in tensors.items():
        if key.startswith((RANK_PREFIX, HEAD_PREFIX)):
            continue
        unit, site, param = key.split(".", 2)
        mask = masks.get(f"{unit}.{site}")
        if mask is None:
            out[key] = t
            continue
        keep = [i for i, m in enumerate(mask.tolist()) if m > 0]
        if not keep:
            continue
        dim = {"lora_A.weight": 0, "lora_B.weight": 1, "down.weight": 0, "down.bias": 0, "up.weight": 1}.get(param)
        out[key] = t if dim is None else t[keep] if dim == 0 else t[:, keep]
    return out


def _assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_light_peft_arm_end_to_end_stop_rule_budget_and_warm_start(compose_cfg, tiny_overrides, tmp_path, monkeypatch):
    """B = 1200: the stop is 2400. The unit phase removes units lowest output ratio first until the
    rest is <= 2400 (4256 -> four units of ~530 -> about 2100, which is > B), the rank stage then
    removes ranks to <= B, within one rank; the retrain starts from the estimation's sliced units."""
    seen = _capture_retrain_start(monkeypatch)
    budget, stop = 1200, 2400
    summary = search_cmd.run(compose_cfg("search", tiny_overrides + ARM + [f"budget.params={budget}"]), tmp_path)
    (row,) = read_jsonl(tmp_path / "rounds.jsonl")
    rank = read_json(tmp_path / "rank_stage.json")
    assert (rank["rank_ratio"], rank["module_stop"]) == (0.5, stop)
    assert row["last"] and set(row["criteria"]) == {"output_ratio"}
    # the unit phase: the shortest prefix of the removal order (descending p = lowest output ratio
    # first, ties seeded with seed + 1) that brings 4256 to <= 2400
    size = {key: UNIT[key.split(":")[1]] for key in row["active_before"]}
    assert sum(size.values()) == 4256
    p = {(int(k.split(":")[0]), k.split(":")[1]): v for k, v in row["combined"]["p"].items()}
    total, expected = 4256, []
    for layer, name in removal_order(p, int(summary["seed"]) + 1):
        if total <= stop:
            break
        expected.append(f"{layer}:{name}")
        total -= UNIT[name]
    module_removed = [k for k in row["removed"] if k not in rank["units_emptied"]]
    assert module_removed == expected and len(expected) == 4
    assert rank["params_before"] == total and budget < total <= stop
    assert total + UNIT[expected[-1].split(":")[1]] > stop  # one unit fewer would have stayed above the stop
    # the rank stage: <= B and within one rank of it
    peft = summary["params"]["peft"]
    assert budget - max(RANK.values()) < peft <= budget and rank["params_after"] == peft == row["params_left"]
    # the warm start: the retrain's units and head at step 0 are the estimation's, sliced to the kept ranks
    estimation = _estimation_tensors(tmp_path)
    assert any(k.startswith(RANK_PREFIX) for k in estimation)  # ranks were removed
    _assert_same({k: v for k, v in seen.items() if not k.startswith(HEAD_PREFIX)}, _sliced_by_hand(estimation))
    _assert_same({k: v for k, v in seen.items() if k.startswith(HEAD_PREFIX)},
                 {k: v for k, v in estimation.items() if k.startswith(HEAD_PREFIX)})
    assert summary["train"]["init"] == "warm"
    assert summary["arm"] == "light_peft" and summary["strategy"] == "single"  # the preset's label
    assert sum(v.numel() for k, v in seen.items() if not k.startswith(HEAD_PREFIX)) == peft


def test_fresh_retrain_starts_from_a_fresh_init_with_the_same_found_configuration(compose_cfg, tiny_overrides,
                                                                                  tmp_path, monkeypatch):
    from prunepeft.models import get_family, load_backbone
    from prunepeft.peft.found_config import FoundConfig, build_from_found
    from prunepeft.peft.weights import trained_tensors
    from prunepeft.seed import seed_everything

    seen = _capture_retrain_start(monkeypatch)
    cfg = compose_cfg("search", tiny_overrides + ARM + ["search.retrain_init=fresh", "search.retrain_epochs=0"])
    search_cmd.run(cfg, tmp_path / "found")  # search only: the found configuration of this seed
    assert not seen
    fresh = compose_cfg("search", tiny_overrides + ARM + ["search.retrain_init=fresh"])
    summary = search_cmd.run(fresh, tmp_path / "fresh")
    assert summary["train"]["init"] == "fresh"
    assert read_json(tmp_path / "found" / "found_config.json") == read_json(tmp_path / "fresh" / "found_config.json")
    # a fresh init, built independently: seeded backbone + the found units (standard init)
    seed_everything(int(fresh.seed))
    model, _ = load_backbone(fresh.model, int(fresh.task.num_labels), int(fresh.seed))
    found = FoundConfig.load(tmp_path / "fresh")
    _assert_same(seen, trained_tensors(build_from_found(model, get_family(fresh.model.family), found,
                                                        int(model.config.hidden_size))))
    assert all(float(v.abs().max()) == 0 for k, v in seen.items() if k.endswith(("lora_B.weight", "up.weight")))


def test_killed_at_the_handoff_resumes_to_the_same_warm_retrain(glue_dir, tmp_path, simulated_kill):
    """SIGKILL (in-process stand-in) right after the estimation round is committed, before the retrain:
    the resumed run restores the estimation weights and rank masks from the checkpoint, warm-starts
    the retrain from them and ends exactly like an uninterrupted run."""
    from conftest import Killed, cli_ok

    args = ["search", "task=rte", "model=tiny_bert", "train=test", "data.train_subset=64", "data.eval_subset=32",
            f"data.dir={glue_dir}", *ARM, "budget.params=1200"]
    cli_ok([*args, f"hydra.run.dir={tmp_path / 'ref'}"])
    with pytest.raises(Killed):
        cli_ok([*args, f"hydra.run.dir={tmp_path / 'run'}", "debug.kill_at=after_checkpoint:1"])
    assert not (tmp_path / "run" / "summary.json").exists()
    cli_ok([*args, f"hydra.run.dir={tmp_path / 'run'}"])
    ref, got = tmp_path / "ref", tmp_path / "run"
    for name in ("found_config.json", "rank_stage.json"):
        assert read_json(got / name) == read_json(ref / name), name
    assert len(read_jsonl(got / "rounds.jsonl")) == 1
    summary, reference = read_json(got / "summary.json"), read_json(ref / "summary.json")
    assert summary["train"]["init"] == "warm"
    assert summary["metrics"] == reference["metrics"] and summary["params"] == reference["params"]
    assert summary["history"] == reference["history"]
    from safetensors.torch import load_file

    _assert_same(load_file(str(got / "units.safetensors")), load_file(str(ref / "units.safetensors")))


# ------------------------------------------------------------------------------ slicing
@pytest.mark.parametrize("space", [["lora", "adapter"], ["dora", "houlsby"]])
def test_warm_started_units_compute_what_the_masked_supernet_did(space):
    """kept_tensors + a found configuration built with the kept ranks gives the masked supernet's
    logits (α / r_original), for every built-in unit type; emptied sites and units are left out."""
    from omegaconf import OmegaConf

    from prunepeft.models import get_family
    from prunepeft.models.loading import build_tiny
    from prunepeft.peft import Supernet, UnitSizes
    from prunepeft.peft.found_config import FoundConfig, build_from_found
    from prunepeft.peft.weights import load_trained_tensors
    from prunepeft.arms.rank_stage import kept_tensors

    model_cfg = OmegaConf.create({"name": "t", "family": "bert", "kind": "tiny", "tiny": {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "vocab_size": 512}})
    sizes = UnitSizes(lora_r=4, lora_alpha=8.0, adapter_bottleneck=6)

    def fresh():
        torch.manual_seed(0)
        model, tok = build_tiny(model_cfg, 2, 0)
        return model.eval(), tok

    model, tok = fresh()
    net = Supernet.build(model, get_family("bert"), space, sizes, 32)
    net.reinit(net.unit_ids(), "paper", torch.Generator().manual_seed(3))  # every tensor non-zero
    units = net.unit_ids()
    net.deactivate(units[0])  # a unit the module phase removed
    split = next(u for u in units[1:] if len(net.branches(u)) > 1)
    emptied = net.branches(split)[0][1]
    for i in range(emptied.num_ranks):
        emptied.drop_rank(i)  # one site loses every rank, its sibling stays
    for uid in units[1:]:
        for _, b in net.branches(uid):
            if b is not emptied:
                b.drop_rank(1)
                b.drop_rank(3)
    inputs = tok(["the story was good", "not a great day at all"], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = net.model(**inputs).logits
    found = FoundConfig.from_supernet(net)
    model2, _ = fresh()
    final = build_from_found(model2, get_family("bert"), found, 32)
    load_trained_tensors(final, kept_tensors(net))
    with torch.no_grad():
        got = final.model(**inputs).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert sum(p.numel() for p in final.peft_parameters()) == found.peft_params
