"""Rank-level pruning (search.granularity=rank): masks, accounting, the rank stage, round trips."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from prunepeft.commands import search as search_cmd
from prunepeft.errors import UserError
from prunepeft.run.io import read_json, read_jsonl
from prunepeft.peft import unit_param_count
from prunepeft.peft.found_config import FoundConfig
from prunepeft.peft.units import UnitSizes, get_unit_type
from prunepeft.peft.wrapper import PeftLinear
from prunepeft.arms.rank_stage import select_round_for_ranks, step_rank_scores

SIZES = UnitSizes(lora_r=4, lora_alpha=8.0, adapter_bottleneck=6)
# tiny_bert (hidden 32): LoRA r=4 on q,v = 512/unit (rank: 64 per site); adapter b=8 = 552 (rank: 65).
SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=1", "budget.params=2000", "search.k=2", "search.granularity=rank"]


def _branch(name: str, sizes: UnitSizes = SIZES, in_f: int = 12, out_f: int = 10, site: str | None = None):
    torch.manual_seed(0)
    lin = nn.Linear(in_f, out_f)
    w = PeftLinear(lin)
    b = get_unit_type(name).make_branch(lin, sizes, site)
    b.reset("paper", torch.Generator().manual_seed(1), 16)
    w.add_branch(name, b)
    return w, b


@pytest.mark.parametrize("name", ["lora", "dora", "adapter"])
def test_masked_ranks_equal_zeroed_weights_and_are_counted_out(name):
    w, b = _branch(name)
    x = torch.randn(3, 5, 12)
    full = b.param_count()
    b.drop_rank(1)
    b.drop_rank(3)
    masked = w(x)
    down, up = b.rank_factors()
    with torch.no_grad():
        for i in (1, 3):
            down[i].zero_()
            up[:, i].zero_()
            if name == "adapter":
                b.down.bias[i].zero_()
    b.set_rank_mask(None)
    torch.testing.assert_close(masked, w(x), rtol=0, atol=1e-6)
    per_rank = {"lora": 12 + 10, "dora": 12 + 10, "adapter": 2 * 10 + 1}[name]
    b.drop_rank(1)
    b.drop_rank(3)
    assert b.param_count() == full - 2 * per_rank
    for i in (0, 2) + ((4, 5) if name == "adapter" else ()):
        b.drop_rank(i)
    assert b.param_count() == 0 and not b.active  # the fixed part leaves with the last rank


@pytest.mark.parametrize("name", ["lora", "dora", "adapter"])
def test_physical_site_size_equals_masked_full_unit_under_alpha_over_r_original(name):
    w, b = _branch(name)
    sizes = SIZES.replace(site_sizes={get_unit_type(name).sites[0]: 2})
    w2, b2 = _branch(name, sizes, site=get_unit_type(name).sites[0])
    down, up = b.rank_factors()
    d2, u2 = b2.rank_factors()
    keep = [0, 2]
    with torch.no_grad():
        d2.copy_(down[keep])
        u2.copy_(up[:, keep])
        if name == "adapter":
            b2.down.bias.copy_(b.down.bias[keep])
            b2.up.bias.copy_(b.up.bias)
        if name == "dora":
            b2.lora_magnitude.copy_(b.lora_magnitude)
    for i in range(b.num_ranks):
        if i not in keep:
            b.drop_rank(i)
    x = torch.randn(2, 4, 12)
    torch.testing.assert_close(w(x), w2(x), rtol=0, atol=1e-6)
    assert b2.param_count() == b.param_count() == sum(p.numel() for p in b2.parameters())
    closed = get_unit_type(name).site_param_count(12, 10, sizes, get_unit_type(name).sites[0])
    assert closed == b.param_count()


def test_step_rank_scores_by_hand():
    down = torch.tensor([[1.0, 2.0], [3.0, -1.0]], requires_grad=True)  # r=2, d_in=2
    up = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, 1.0]], requires_grad=True)  # d_out=3
    down.grad = torch.tensor([[1.0, -1.0], [1.0, 3.0]])
    up.grad = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    # rank 0: |1-2|/2 + |1+2+0|/3 = 0.5 + 1; rank 1: |3-3|/2 + |0+1-1|/3 = 0
    torch.testing.assert_close(step_rank_scores(down, up), torch.tensor([1.5, 0.0]))


def test_last_unit_round_stays_above_budget():
    p = {(0, "lora"): 0.9, (1, "lora"): 0.5, (2, "lora"): 0.1}
    counts = {u: 100 for u in p}
    assert select_round_for_ranks(p, 1, counts, 300, 150, 0) == ([(0, "lora")], False)
    assert select_round_for_ranks(p, 2, counts, 300, 150, 0) == ([(0, "lora")], True)  # 100 left would be < B
    assert select_round_for_ranks(p, 2, counts, 300, 250, 0) == ([], True)


def test_granularity_rank_search_lands_within_one_rank_and_round_trips(compose_cfg, tiny_overrides, tmp_path):
    summary = search_cmd.run(compose_cfg("search", tiny_overrides + SEARCH), tmp_path)
    found = read_json(tmp_path / "found_config.json")
    peft = found["params"]["peft"]
    assert 2000 - 65 < peft <= 2000  # within one rank of B (the largest rank costs 65 here)
    assert summary["params"]["peft"] == peft
    # closed form over found_config's per-site sizes == summary == the saved tensors' element count
    cfg = FoundConfig.load(tmp_path)
    closed = sum(unit_param_count(name, cfg.hidden_size, sizes) for (_, name), sizes in cfg.units.items())
    assert closed == peft == sum(t.numel() for t in load_file(str(tmp_path / "units.safetensors")).values())
    assert any(s.site_sizes for s in cfg.units.values())  # something was rank-pruned
    rank = read_json(tmp_path / "rank_stage.json")
    assert rank["params_after"] == peft and rank["ranks_removed"] > 0
    rounds = read_jsonl(tmp_path / "rounds.jsonl")
    assert rounds[-1]["last"] and rounds[-1]["params_left"] == peft
    assert all(r["params_left"] > 2000 for r in rounds[:-1])


def test_bad_granularity_is_refused(compose_cfg, tiny_overrides, tmp_path):
    with pytest.raises(UserError, match="search.granularity 'ranks'.*rank, unit"):
        search_cmd.run(compose_cfg("search", tiny_overrides + SEARCH[:-1] + ["search.granularity=ranks"]), tmp_path)


def test_crash_after_the_rank_stage_resumes_to_the_same_configuration(compose_cfg, tiny_overrides, tmp_path):
    search_cmd.run(compose_cfg("search", tiny_overrides + SEARCH + ["search.retrain_epochs=0"]), tmp_path / "a")
    last = len(read_jsonl(tmp_path / "a" / "rounds.jsonl"))
    crashed = compose_cfg("search", tiny_overrides + SEARCH + ["search.retrain_epochs=0",
                                                               f"debug.crash_after_round={last}"])
    with pytest.raises(Exception, match="crash_after_round"):
        search_cmd.run(crashed, tmp_path / "b")
    search_cmd.run(compose_cfg("search", tiny_overrides + SEARCH + ["search.retrain_epochs=0"]), tmp_path / "b")
    assert len(read_jsonl(tmp_path / "b" / "rounds.jsonl")) == last  # the masks came back: no extra round
    assert read_json(tmp_path / "a" / "found_config.json") == read_json(tmp_path / "b" / "found_config.json")


def test_light_peft_preset_end_to_end_within_one_rank(compose_cfg, tiny_overrides, tmp_path):
    overrides = tiny_overrides + ["strategy=light_peft", "search.retrain_epochs=1", "budget.params=2000"]
    summary = search_cmd.run(compose_cfg("search", overrides), tmp_path)
    rounds = read_jsonl(tmp_path / "rounds.jsonl")
    assert len(rounds) == 1 and rounds[0]["last"]  # one-shot: the estimation round
    assert set(rounds[0]["criteria"]) == {"output_ratio"}
    assert 2000 - 65 < summary["params"]["peft"] <= 2000
    assert not (tmp_path / "warmup.json").exists()
    # the estimation ran N = max(100, ceil(0.04 x 4 retrain steps)) = 100 steps of 16 rows: 25 epochs of the 64
    assert summary["search"]["examples"] == 100 * 16


def _labelled(n: int):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [[1, 2]] * n, "labels": [i % 2 for i in range(n)]})


def test_light_peft_estimation_length_rule():
    """search.round_steps: null = one epoch; light_peft = max(100, ceil(0.04 x retrain steps)); n = n steps."""
    from omegaconf import OmegaConf

    from prunepeft.arms.light_peft import RoundSettings, retrain_steps, round_data, round_steps, validate

    def cfg(value, retrain=1, fidelity="high"):
        return OmegaConf.create({"search": {"round_steps": value, "retrain_epochs": retrain, "fidelity": fidelity},
                                 "train": {"batch_size": 16, "epochs": 7}, "task": {"num_labels": 2}})

    def settings(*args, **kwargs):  # what the arm types once (LightPeftArm.configure)
        c = cfg(*args, **kwargs)
        return RoundSettings.of(c.search, c.train, int(c.task.num_labels))

    assert settings(None, retrain=None).retrain_epochs == 7  # null retrain_epochs: train.epochs
    assert retrain_steps(7, 16, 5000) == 7 * 313
    assert round_steps(settings(None), 5000) is None and round_data(settings(None), ds := _labelled(5000), 0) == (ds, 1)
    assert round_steps(settings("light_peft"), 5000) == 100  # 0.04 x 313 = 12.5 < 100
    assert round_steps(settings("light_peft", retrain=100), 5000) == 1252  # ceil(0.04 x 31,300)
    assert round_steps(settings("light_peft", retrain=100), 50000) == 12500  # ceil(0.04 x 312,500)
    sliced, epochs = round_data(settings("light_peft"), ds, seed=3)
    assert (len(sliced), epochs) == (1600, 1) and sum(sliced["labels"]) == 800  # label-stratified, exactly N steps
    assert round_data(settings("light_peft"), ds, seed=3)[0]["labels"] == sliced["labels"]  # a resume redraws the same rows
    big, epochs = round_data(settings("light_peft", retrain=100), ds, seed=3)
    assert len(big) == 5000 and epochs == 5  # 1252 x 16 = 20,032 rows > 5000: whole epochs, >= N steps
    assert round_data(settings(7), ds, 0)[0].num_rows == 7 * 16
    for bad in ("0", "-3", "fast"):
        with pytest.raises(UserError, match="search.round_steps must be"):
            validate(cfg(bad).search)
    with pytest.raises(UserError, match="does not combine with search.fidelity=low"):
        validate(cfg("light_peft", fidelity="low").search)
    validate(cfg("light_peft").search)
    validate(cfg(12).search)


class _TwoUnits:
    """The supernet surface `prune_ranks` reads: an adapter (h = 32, bottleneck 2) and a LoRA (r = 4)."""

    def __init__(self):
        sizes = UnitSizes(lora_r=4, adapter_bottleneck=2)
        self.sizes = sizes
        self.units = {(0, "adapter"): [("ffn_out", get_unit_type("adapter").make_branch(nn.Linear(32, 32), sizes, "ffn_out"))],
                      (1, "lora"): [("query", get_unit_type("lora").make_branch(nn.Linear(32, 32), sizes, "query"))]}
        self.active = set(self.units)
        self.base_params = 10**6

    def active_ids(self):
        return sorted(self.active)

    def branches(self, uid):
        return self.units[uid]

    def deactivate(self, uid):
        self.active.discard(uid)

    def head_parameters(self):
        return []

    def unit_sizes(self, uid):
        return self.sizes

    def total(self):
        return sum(b.param_count() for u in self.active_ids() for _, b in self.branches(u))


def test_a_sites_last_rank_with_its_fixed_part_is_deferred_to_stay_within_one_rank():
    """The adapter's two dimensions score lowest. Its last one would take the up-bias (h = 32) along and
    land 96 under B (more than the largest rank, 65); it is deferred and a LoRA rank (64) closes the gap."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from prunepeft.arms.rank_stage import RankSettings, prune_ranks
    net = _TwoUnits()
    stats = {(0, "adapter"): SimpleNamespace(rank_scores={"ffn_out": torch.tensor([0.0, 0.1])}),
             (1, "lora"): SimpleNamespace(rank_scores={"query": torch.tensor([1.0, 2.0, 3.0, 4.0])})}
    cfg = OmegaConf.create({"search": {"granularity": "rank", "rank_ratio": 0.0}})
    rank = RankSettings.of(cfg.search)
    budget = net.total() - 65 - 1  # one adapter dimension (2h + 1 = 65) is not enough
    assert prune_ranks(net, stats, rank, budget, True, 0) == []
    assert budget - 65 < net.total() <= budget
    adapter, lora = net.units[(0, "adapter")][0][1], net.units[(1, "lora")][0][1]
    assert (adapter.kept_ranks(), lora.kept_ranks()) == (1, 3)  # dimension 0 went, then LoRA rank 0
    # Nothing else to remove: the deferred rank goes after all (the site leaves with its fixed part).
    net2 = _TwoUnits()
    net2.units.pop((1, "lora"))
    net2.active = set(net2.units)
    assert prune_ranks(net2, stats, rank, net2.total() - 66, True, 0) == [(0, "adapter")]
