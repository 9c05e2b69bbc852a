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

    def configure(self, cfg: Any) -> light_peft.RoundSettings:
        light_peft.validate(cfg.search)  # search.round_steps: null | light_peft | n
        return light_peft.RoundSettings.of(cfg.search, cfg.train, int(cfg.task.num_labels))

    def round_data(self, settings: light_peft.RoundSettings | None, train_ds: Any, seed: int) -> Any:
        return None if settings is None else light_peft.round_data(settings, train_ds, seed)

    def start_retrain(self, final: Any, supernet: Any, how: str) -> None:
        light_peft.start_retrain(final, supernet, how)  # fresh | warm (the search's trained units)


class RankStageArm(Arm):
    """`search.granularity=rank`: rank scores in each round's pass, ranks pruned to B after the unit rounds."""

    name = "rank_stage"
    tensor_prefix = rank_stage.RANK_PREFIX

    def configure(self, cfg: Any) -> rank_stage.RankSettings:
        return rank_stage.RankSettings.of(cfg.search)  # search.granularity: unit | rank

    def round_callbacks(self, settings: rank_stage.RankSettings | None, supernet: Any) -> list:
        return [] if settings is None else rank_stage.rank_callbacks(settings, supernet)

    def attach_round_stats(self, stats: Any, callbacks: list) -> None:
        rank_stage.attach_rank_scores(stats, callbacks)

    def choose_removals(self, settings: rank_stage.RankSettings | None, p: Any, k: int, counts: Any, budget: int,
                        seed: int) -> Any:
        if settings is None or settings.granularity != "rank":
            return None
        return rank_stage.select_round_for_ranks(p, k, counts.per_unit, counts.peft, budget, seed,
                                                 stop=rank_stage.module_stop(budget, settings.rank_ratio))

    def after_removal(self, settings: rank_stage.RankSettings | None, supernet: Any, stats: Any, budget: int,
                      last: bool, seed: int, run: Any) -> list:
        return [] if settings is None else rank_stage.prune_ranks(supernet, stats, settings, budget, last, seed, run)

    def checkpoint_tensors(self, supernet: Any) -> dict:
        return rank_stage.rank_tensors(supernet)

    def restore_tensors(self, supernet: Any, tensors: Any) -> None:
        rank_stage.restore_rank_tensors(supernet, tensors)


class BackbonePruneArm(Arm):
    """`backbone_prune.*`: estimate head/neuron masks, prune the backbone before the units, re-prune on load."""

    name = "backbone_prune"

    def configure(self, cfg: Any) -> Any:
        """The `backbone_prune` section (typed by the schema's BackbonePruneConfig), checked; None when off."""
        section = getattr(cfg, "backbone_prune", None)
        backbone_stage.validate(section, str(cfg.model.family))
        return section if backbone_stage.enabled(section) else None

    def prepare_backbone(self, settings: Any, run_settings: Any, model: Any, train_ds: Any, run: Any) -> bool:
        return backbone_stage.prepare(model, settings, run_settings, train_ds, run) is not None

    def on_backbone_loaded(self, model: Any, family: Any, run_dir: Any) -> None:
        backbone_stage.reprune(model, family, run_dir)

    def summary_fields(self, settings: Any, model: Any, base_after: int, run_dir: Any) -> Any:
        return backbone_stage.summary_fields(settings, model, base_after, run_dir)


# Registration order is the order the search calls them in (validate: granularity, round length, backbone).
for _arm in (RankStageArm(), LightPeftArm(), BackbonePruneArm()):
    register_arm(_arm)
