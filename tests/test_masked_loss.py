"""The `masked_loss` criterion (issue 26): by-hand rises on a toy supernet, exact zero for a no-op unit on a
real tiny supernet, its probe rows disjoint from the other probes, and end to end as a single-criterion arm
with its cost charged to its own phases."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from datasets import Dataset
from omegaconf import OmegaConf

from prunepeft.errors import UserError
from prunepeft.pruning.collector import StatisticsCollector
from prunepeft.pruning.criteria import CRITERIA, HYBRID_CRITERIA, CriterionContext, get_criterion, needs_of
from prunepeft.pruning.criteria.masked_loss import MASKED_LOSS_SEED_OFFSET, MaskedLossSettings, probe_size
from prunepeft.pruning.masked import MaskedProbe
from prunepeft.pruning.masked_probe import masked_loss_rows
from prunepeft.pruning.scoring import score_snapshot
from prunepeft.pruning.statistics import UnitStatistics


# ---------------------------------------------------------------- a toy supernet whose rises are known
class ToyModel(torch.nn.Module):
    """loss = 1 + Σ over masked units of c_u (a unit's contribution is what masking it adds)."""

    def __init__(self, contributions: dict) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the model a device
        self.contributions = contributions
        self.masked: set = set()

    def forward(self, labels, **_):
        loss = torch.tensor(1.0, dtype=torch.float64) + sum(self.contributions[u] for u in self.masked)
        return type("Out", (), {"loss": loss})()


class ToySupernet:
    def __init__(self, contributions: dict) -> None:
        self.model = ToyModel(contributions)
        self._active = sorted(contributions)

    def active_ids(self):
        return list(self._active)

    def criterion_parameters(self, uid):
        return [torch.full((2, 2), float(uid[0]))]

    @contextmanager
    def masked(self, uids):
        before = set(self.model.masked)
        self.model.masked |= set(uids)
        try:
            yield
        finally:
            self.model.masked = before


def toy_probe() -> MaskedProbe:
    rows = {"labels": torch.tensor([0, 1])}
    return MaskedProbe([rows, rows, rows], num_labels=2, precision="fp32", seed=0)


def test_masked_loss_by_hand_on_a_toy_supernet():
    # asymmetric: one unit does nothing (rise exactly 0), one HELPS when masked (negative rise), three distinct
    # (binary fractions: the probe reads the loss in float32, and these are exact there)
    c = {(0, "lora"): 0.0, (0, "adapter"): 0.375, (1, "lora"): 0.125, (1, "adapter"): 0.25, (2, "lora"): -0.0625}
    net = ToySupernet(c)
    probe = toy_probe()
    collector = StatisticsCollector(net, needs_of(["masked_loss"]), probe=probe)
    stats = collector.snapshot()
    assert {u: s.masked_loss for u, s in stats.items()} == c
    assert stats[(0, "lora")].masked_loss == 0.0  # exactly: the same loss with and without it
    scores = score_snapshot(stats, ["masked_loss"], CriterionContext())["masked_loss"]
    assert scores.raw == pytest.approx(c, abs=1e-12)
    assert scores.oriented == pytest.approx({u: -v for u, v in c.items()}, abs=1e-12)
    # ranked by harm: the unit whose removal lowers the loss is the most prunable, then the no-op, ...
    order = sorted(scores.oriented, key=scores.oriented.get, reverse=True)
    assert order == [(2, "lora"), (0, "lora"), (1, "lora"), (1, "adapter"), (0, "adapter")]
    assert scores.rank == pytest.approx({(2, "lora"): 1.0, (0, "lora"): 0.8, (1, "lora"): 0.6,
                                         (1, "adapter"): 0.4, (0, "adapter"): 0.2})
    # Θ̃ = (s − min) / (max − min) with s = −rise: max −(−0.0625), min −0.375
    assert scores.normalised[(0, "lora")] == pytest.approx(0.375 / 0.4375)
    # one base pass + one masked pass per unit, 2 rows each, over 3 batches; masking leaves nothing masked
    seconds, rows = probe.take_cost()
    assert rows == 6 * (1 + len(c)) and seconds >= 0.0 and net.model.masked == set()


def test_masked_loss_is_registered_but_not_a_default_hybrid_candidate():
    crit = get_criterion("masked_loss")
    assert "masked_loss" in CRITERIA and "masked_loss" not in HYBRID_CRITERIA
    assert crit.needs == {"masked_loss"} and needs_of(["weight", "masked_loss"]) == {"weights", "masked_loss"}
    assert CriterionContext().settings_of(crit) == MaskedLossSettings(probe=256)
    assert CriterionContext(masked_loss_probe=64).settings_of(crit).probe == 64
    with pytest.raises(UserError, match="search.masked_loss.probe must be an integer >= 2"):
        MaskedLossSettings(probe=1)
    with pytest.raises(ValueError, match="masked_loss statistic needs a probe"):
        StatisticsCollector(object(), {"masked_loss"})
    with pytest.raises(ValueError, match="needs the 'masked_loss' statistic"):
        crit.raw({(0, "lora"): UnitStatistics(weights=torch.ones(2))}, CriterionContext())


def test_a_no_op_unit_rises_exactly_zero_on_a_real_tiny_supernet():
    """Paper init everywhere, then one LoRA unit's B zeroed: its branch adds exactly 0, so masking it
    changes no logit and its rise is exactly 0; the others rise by distinct amounts, ranked as a hand
    computation (mask, forward, subtract) ranks them."""
    from test_diagnostics import supernet
    from test_supernet import batch

    net = supernet(4)
    noop = (1, "lora")
    with torch.no_grad():
        for _, branch in net.branches(noop):
            branch.lora_B.weight.zero_()
    inputs = batch(2)
    batches = [{**inputs, "labels": torch.tensor([0, 1, 1])}, {**batch(3), "labels": torch.tensor([1, 0, 1])}]
    probe = MaskedProbe(batches, num_labels=2, precision="fp32", seed=0)
    net.model.train()
    stats = StatisticsCollector(net, {"masked_loss"}, probe=probe).snapshot()
    assert net.model.training  # restored after the probe's eval passes

    def loss() -> float:
        net.model.eval()
        with torch.no_grad():
            total = sum(float(net.model(**b).loss) * len(b["labels"]) for b in batches)
        return total / sum(len(b["labels"]) for b in batches)

    base = loss()
    by_hand = {}
    for uid in net.active_ids():
        with net.masked([uid]):
            by_hand[uid] = loss() - base
    assert stats[noop].masked_loss == 0.0
    assert {u: s.masked_loss for u, s in stats.items()} == pytest.approx(by_hand, abs=1e-6)
    others = [v for u, v in by_hand.items() if u != noop]
    assert len({round(v, 7) for v in others}) == len(others)  # distinct rises
    oriented = get_criterion("masked_loss").oriented(stats, CriterionContext())
    assert sorted(oriented, key=oriented.get) == sorted(by_hand, key=by_hand.get, reverse=True)


# ---------------------------------------------------------------- probe rows
def test_probe_rows_are_disjoint_from_the_diagnostics_and_agreement_probes():
    from prunepeft.data.subsets import stratified_subset
    from prunepeft.pruning.assign_rules import agreement_rows
    from prunepeft.pruning.masked import PROBE_SEED_OFFSET

    pool = Dataset.from_dict({"row": list(range(400)), "label": [i % 2 for i in range(400)]})
    cfg = OmegaConf.create({"seed": 3, "task": {"num_labels": 2, "label_field": "label"},
                            "search": {"warmup": {"agreement_probe": 100}, "diagnostics": {"probe": 100},
                                       "masked_loss": {"probe": 150}}})
    diag = set(stratified_subset(pool, 100, 3 + PROBE_SEED_OFFSET, "label", False)["row"])
    agree = set(agreement_rows(_probes(cfg), pool)["row"])
    rows = masked_loss_rows(_probes(cfg), int(cfg.search.masked_loss.probe), pool)
    mine = set(rows["row"])
    assert len(mine) == 150 and not mine & diag and not mine & agree
    assert sum(rows["label"]) == 75  # label-stratified
    # its own seed: a different seed draws other rows from the same 200 left
    cfg.seed = 4
    assert set(masked_loss_rows(_probes(cfg), int(cfg.search.masked_loss.probe), pool)["row"]) != mine
    cfg.seed, cfg.search.masked_loss.probe = 3, 201
    with pytest.raises(UserError, match="masked_loss criterion needs 201 training rows .* only 200 are left"):
        masked_loss_rows(_probes(cfg), int(cfg.search.masked_loss.probe), pool)
    with pytest.raises(UserError, match="only 0 are left"):
        masked_loss_rows(_probes(cfg), int(cfg.search.masked_loss.probe), None)
    from prunepeft.pruning.assign_rules import AGREEMENT_SEED_OFFSET

    assert len({MASKED_LOSS_SEED_OFFSET, PROBE_SEED_OFFSET, AGREEMENT_SEED_OFFSET}) == 3


def test_probe_size_reads_the_section_then_criterion_settings():
    search = OmegaConf.create({"masked_loss": {"probe": 64}})
    assert probe_size(search) == 64
    search = OmegaConf.create({"masked_loss": {"probe": 64}, "criterion_settings": {"masked_loss": {"probe": 32}}})
    assert probe_size(search) == 32
    with pytest.raises(UserError):
        probe_size(OmegaConf.create({"masked_loss": {"probe": 0}}))


def test_the_config_composes_its_yaml(compose_cfg):
    cfg = compose_cfg("search", ["model=tiny_bert"])
    assert cfg.search.masked_loss.probe == 256
    cfg = compose_cfg("search", ["model=tiny_bert", "search.masked_loss.probe=32"])
    assert CriterionContext.from_search_config(cfg.search, 0).settings_of(get_criterion("masked_loss")).probe == 32


# ---------------------------------------------------------------- end to end
SEARCH = ["search.retrain_epochs=1", "budget.params=2000", "search.k=3", "search.masked_loss.probe=16"]


def test_single_masked_loss_arm_end_to_end(tmp_path, compose_cfg, tiny_overrides):
    from prunepeft.commands import search as search_cmd
    from prunepeft.run.io import read_jsonl

    cfg = compose_cfg("search", tiny_overrides + SEARCH + ["strategy=single", "strategy.criterion=masked_loss"])
    summary = search_cmd.run(cfg, tmp_path)
    rounds = read_jsonl(tmp_path / "rounds.jsonl")
    assert rounds and all(set(r["criteria"]) == {"masked_loss"} for r in rounds)
    first = rounds[0]["criteria"]["masked_loss"]
    assert set(first["raw"]) == set(rounds[0]["active_before"])
    # the round removed the units whose masking hurt least (k = 3, first round not the last)
    if not rounds[0]["last"]:
        least = sorted(first["raw"], key=lambda u: (first["raw"][u], u))[:3]
        assert set(rounds[0]["removed"]) <= set(first["raw"])
        assert sorted(first["raw"][u] for u in rounds[0]["removed"]) == pytest.approx(
            sorted(first["raw"][u] for u in least))
    phases = summary["cost"]["phases_s"]
    assert phases["round_probes"] > 0 and phases["warmup_probes"] == 0  # no warm-up for a single criterion
    # forward-only: per round, 16 probe rows x (1 base + 1 per active unit), plus the dev slice (32)
    expected = sum(16 * (1 + len(r["active_before"])) + 32 for r in rounds)
    assert summary["cost"]["examples"]["search_forward_only"] == expected


def test_masked_loss_as_a_hybrid_candidate(tmp_path, compose_cfg, tiny_overrides):
    from prunepeft.commands import search as search_cmd
    from prunepeft.run.io import read_json

    criteria = "[weight,zeros,threshold,activation,taylor,gradient,masked_loss]"
    cfg = compose_cfg("search", tiny_overrides + SEARCH + [
        "strategy=hybrid", f"search.criteria={criteria}", "search.warmup.subset=32", "search.warmup.epochs=1",
        "search.warmup.snapshots=2"])
    summary = search_cmd.run(cfg, tmp_path)
    warm = read_json(tmp_path / "warmup.json")
    assert "masked_loss" in warm["criteria"] and "masked_loss" in warm["tendencies"]
    phases = summary["cost"]["phases_s"]
    assert phases["warmup_probes"] > 0 and phases["round_probes"] > 0


def _probes(cfg):
    """The probe settings the search types once (config.typed.RunSettings.probes) of a small config."""
    from prunepeft.config.typed import ProbeSettings

    asked = cfg.search.warmup.get("agreement_probe")
    return ProbeSettings(task=cfg.task, seed=int(cfg.seed), diagnostics_rows=int(cfg.search.diagnostics.probe),
                         agreement_rows=None if asked is None else int(asked))
