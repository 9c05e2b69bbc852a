"""The training phases' seeds and snapshot windows (mutation audit M26, M38), with fakes: no model."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from prunepeft.pruning import phases
from prunepeft.pruning.criteria.base import CriterionContext
from prunepeft.pruning.statistics import UnitStatistics
from prunepeft.train.loop import FitResult

UNITS = [(0, "lora"), (0, "adapter"), (1, "lora")]


def _setup(reinit: str):
    """What `run_round` reads of the search's setup (pruning.setup.SearchSetup): the seed, the reinit
    scheme, the criteria's context; no arm configured (each is then not involved)."""
    return SimpleNamespace(search=SimpleNamespace(seed=42, reinit=reinit), arms={}, criteria=CriterionContext(),
                           run=SimpleNamespace(train=None))


class FakeSupernet:
    """What `run_round` and the collector touch: ids, weights, reinit (records its generator's seed)."""

    model = None

    def __init__(self):
        self.weights = {u: torch.nn.Parameter(torch.ones(4) * (i + 1)) for i, u in enumerate(UNITS)}
        self.reinit_seeds, self.head_seeds = [], []

    def active_ids(self):
        return list(UNITS)

    def criterion_parameters(self, uid):
        return [self.weights[uid]]

    def reinit(self, uids, scheme, gen):
        self.reinit_seeds.append(gen.initial_seed())

    def reinit_head(self, gen):
        self.head_seeds.append(gen.initial_seed())


def test_round_reinit_is_seeded_with_seed_plus_round(monkeypatch):
    # M26: every round re-initialises its surviving units and the head from generator(seed + r)
    monkeypatch.setattr(phases, "train_supernet", lambda *a, **k: FitResult([], {}))
    net, setup = FakeSupernet(), _setup(reinit="paper")
    for r in (1, 2):
        phases.run_round(net, None, [], {}, setup, round_index=r, criteria=("weight",))  # a (empty) set: round_data takes its len
    assert net.reinit_seeds == [43, 44] and net.head_seeds == [43, 44]


class FakeCollector:
    """Counts steps since its last reset; a snapshot reports that count as every unit's weights."""

    supernet = None

    def __init__(self):
        self.steps, self.resets = 0, 0

    def step(self):
        self.steps += 1

    def snapshot(self):
        return {u: UnitStatistics(weights=torch.full((2,), float(self.steps) + i)) for i, u in enumerate(UNITS)}

    def reset(self):
        self.steps, self.resets = 0, self.resets + 1


def test_warmup_snapshots_see_only_the_steps_since_the_previous_one():
    # M38: T = 2 snapshots over 10 steps; snapshot 2 holds steps 6..10 only (the collector is reset)
    collector = FakeCollector()
    taker = phases.SnapshotTaker(collector, ("weight",), 2, CriterionContext(), seed=0)
    for step in range(1, 11):
        collector.step()
        taker.on_step_end(step, 10)
    assert collector.resets == 2 and len(taker.taken) == 2
    for snapshot in taker.taken:
        assert snapshot["weight"].raw[UNITS[0]] == 25.0  # 5 steps in each window: 5² (not 10² for the second)
