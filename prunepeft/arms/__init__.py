"""Methods beside the paper's Algorithm 1, plugged into the search through `pruning.arms` hooks.

- the Light-PEFT arm: `light_peft` (round length `search.round_steps`, `search.retrain_init=warm`)
  and `rank_stage` (`search.granularity=rank`: rank scores in each round, ranks pruned to B at the end);
- early backbone pruning: `backbone_prune` (the mechanism: masks, selection, pruning in place) and
  `backbone_stage` (when the search estimates and re-applies it).

Importing this package registers them (`pruning.arms.register_arm`); `prunepeft.plugins.load` does.
"""
from __future__ import annotations

from typing import Any

from prunepeft.arms import backbone_stage, light_peft, rank_stage
from prunepeft.pruning.arms import Arm, register_arm


class LightPeftArm(Arm):
    """`search.round_steps` and `search.retrain_init` (Light-PEFT's short rounds and warm stage 2)."""

    name = "light_peft"

    def validate(self, cfg: Any) -> None:
        light_peft.validate(cfg.search)  # search.round_steps: null | light_peft | n

    def round_data(self, cfg: Any, train_ds: Any, seed: int) -> Any:
        return light_peft.round_data(cfg, train_ds, seed)

    def start_retrain(self, final: Any, supernet: Any, how: str) -> None:
        light_peft.start_retrain(final, supernet, how)  # fresh | warm (the search's trained units)


class RankStageArm(Arm):
    """`search.granularity=rank`: rank scores in each round's pass, ranks pruned to B after the unit rounds."""

    name = "rank_stage"
    tensor_prefix = rank_stage.RANK_PREFIX

    def validate(self, cfg: Any) -> None:
        rank_stage.granularity(cfg.search)  # unit | rank

    def round_callbacks(self, cfg: Any, supernet: Any) -> list:
        return rank_stage.rank_callbacks(cfg.search, supernet)

    def attach_round_stats(self, stats: Any, callbacks: list) -> None:
        rank_stage.attach_rank_scores(stats, callbacks)

    def choose_removals(self, p: Any, k: int, counts: Any, budget: int, seed: int, s: Any) -> Any:
        if s.granularity != "rank":
            return None
        return rank_stage.select_round_for_ranks(p, k, counts.per_unit, counts.peft, budget, seed,
                                                 stop=rank_stage.module_stop(budget, s.rank_ratio))

    def after_removal(self, supernet: Any, stats: Any, cfg: Any, budget: int, last: bool, seed: int,
                      run: Any) -> list:
        return rank_stage.prune_ranks(supernet, stats, cfg.search, budget, last, seed, run)

    def checkpoint_tensors(self, supernet: Any) -> dict:
        return rank_stage.rank_tensors(supernet)

    def restore_tensors(self, supernet: Any, tensors: Any) -> None:
        rank_stage.restore_rank_tensors(supernet, tensors)


class BackbonePruneArm(Arm):
    """`backbone_prune.*`: estimate head/neuron masks, prune the backbone before the units, re-prune on load."""

    name = "backbone_prune"

    def validate(self, cfg: Any) -> None:
        backbone_stage.validate(getattr(cfg, "backbone_prune", None), str(cfg.model.family))

    def prepare_backbone(self, model: Any, cfg: Any, train_ds: Any, run: Any) -> bool:
        return backbone_stage.prepare(model, cfg, train_ds, run) is not None

    def on_backbone_loaded(self, model: Any, family: Any, run_dir: Any) -> None:
        backbone_stage.reprune(model, family, run_dir)

    def summary_fields(self, cfg: Any, model: Any, base_after: int, run_dir: Any) -> Any:
        return backbone_stage.summary_fields(getattr(cfg, "backbone_prune", None), model, base_after, run_dir)


# Registration order is the order the search calls them in (validate: granularity, round length, backbone).
for _arm in (RankStageArm(), LightPeftArm(), BackbonePruneArm()):
    register_arm(_arm)
