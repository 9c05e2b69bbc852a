"""The hooks Algorithm 1 offers the methods that run beside it (prunepeft.arms: the Light-PEFT arm's
rank stage and round length, early backbone pruning).

An arm is an `Arm` registered here (`register_arm`); the search calls every registered arm at the
fixed points below and never names one. An arm reads the config once: `configure(cfg)` checks its
settings and returns them typed (in `pruning.setup.validate`, before the run directory exists), and
the hooks that decide something get those settings back as their first argument (`ask`, `each`),
so no hook sees the whole config. Every hook's default is "not involved", so an arm whose
settings are off changes nothing, and the search without any arm is Algorithm 1 as the paper has it.
The built-in arms are registered by importing `prunepeft.arms` (the commands, the API and the
plug-in loader `prunepeft.plugins` do); arms from other packages through the `prunepeft.arms` entry
point group.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional

from prunepeft.pruning.statistics import UnitId

# Attribute an arm that shrinks the backbone sets on the model: its base parameter count before
# (budget B is a share of the unpruned base).
BASE_BEFORE = "prunepeft_base_before"


class Arm:
    """A method beside Algorithm 1. Subclasses override the hooks they need."""

    name = ""
    tensor_prefix: Optional[str] = None  # checkpoint keys this arm owns (`checkpoint_tensors`)

    def configure(self, cfg: Any) -> Any:
        """Check the arm's raw settings (cheap: before the run directory is written) and return them
        typed; the hooks below that take `settings` get this object back. None: nothing to configure,
        and a hook given None (also: an arm registered after the setup was built) is not involved."""
        return None

    def prepare_backbone(self, settings: Any, run_settings: Any, model: Any, train_ds: Any, run: Any) -> bool:
        """Change the fresh backbone before units are injected; True when it did. `run_settings`: the
        run's stage settings (`config.typed.RunSettings`: seed, model, train)."""
        return False

    def on_backbone_loaded(self, model: Any, family: Any, run_dir: Any) -> None:
        """A backbone was loaded again for a finished (or retraining) run at `run_dir`: redo what the run did."""

    def round_data(self, settings: Any, train_ds: Any, seed: int) -> Optional[tuple[Any, int]]:
        """(rows, epochs) a round trains on, or None for Algorithm 1's one epoch over its set."""
        return None

    def round_callbacks(self, settings: Any, supernet: Any) -> list:
        """Extra training callbacks of a round's statistics pass."""
        return []

    def attach_round_stats(self, stats: Mapping[UnitId, Any], callbacks: list) -> None:
        """Put what `round_callbacks` gathered on the round's unit statistics."""

    def choose_removals(self, settings: Any, p: Mapping[UnitId, float], k: int, counts: Any, budget: int,
                        seed: int) -> Optional[tuple[list[UnitId], bool]]:
        """The round's (removed, last) when the arm decides it, else None (`selection.select_round`)."""
        return None

    def after_removal(self, settings: Any, supernet: Any, stats: Mapping[UnitId, Any], budget: int, last: bool,
                      seed: int, run: Any) -> list[UnitId]:
        """After the round's units are deactivated: further units removed by the arm."""
        return []

    def checkpoint_tensors(self, supernet: Any) -> dict:
        """Tensors the search checkpoint keeps for the arm (keys under `tensor_prefix`)."""
        return {}

    def restore_tensors(self, supernet: Any, tensors: Mapping[str, Any]) -> None:
        """Re-install what `checkpoint_tensors` saved."""

    def start_retrain(self, final: Any, supernet: Any, how: str) -> None:
        """The found configuration `final` is built; the retrain starts next (`search.retrain_init`)."""

    def summary_fields(self, settings: Any, model: Any, base_after: int, run_dir: Any) -> Optional[dict]:
        """summary.json's `backbone` entry, when the arm changed the backbone."""
        return None


ARMS: dict[str, Arm] = {}


def register_arm(arm: Arm) -> None:
    """Add `arm` (by its name; registering the same name again replaces it, so a reload is harmless)."""
    ARMS[arm.name] = arm


def arms() -> list[Arm]:
    return list(ARMS.values())


def first(hook: str, *args: Any) -> Any:
    """The first registered arm's non-None answer to `hook`, else None."""
    for arm in ARMS.values():
        answer = getattr(arm, hook)(*args)
        if answer is not None:
            return answer
    return None


def each(settings: Mapping[str, Any], hook: str, *args: Any) -> Iterator[Any]:
    """Every registered arm's answer to `hook` (lazily, in registration order), each arm given its own
    settings (`Arm.configure`; None for an arm registered after the setup was built)."""
    return (getattr(arm, hook)(settings.get(arm.name), *args) for arm in ARMS.values())


def ask(settings: Mapping[str, Any], hook: str, *args: Any) -> Any:
    """The first non-None answer of `each`, else None."""
    return next((answer for answer in each(settings, hook, *args) if answer is not None), None)


def call_all(hook: str, *args: Any) -> None:
    for arm in ARMS.values():
        getattr(arm, hook)(*args)


def round_callbacks(settings: Mapping[str, Any], supernet: Any) -> dict[str, list]:
    """Every arm's extra callbacks of a round's statistics pass, by arm."""
    return {arm.name: arm.round_callbacks(settings.get(arm.name), supernet) for arm in ARMS.values()}


def attach_round_stats(stats: Mapping[UnitId, Any], callbacks: dict[str, list]) -> None:
    for arm in ARMS.values():
        arm.attach_round_stats(stats, callbacks.get(arm.name, []))


def checkpoint_tensors(supernet: Any) -> dict:
    return {key: value for arm in ARMS.values() for key, value in arm.checkpoint_tensors(supernet).items()}


def owns_tensor(key: str) -> bool:
    """Whether a checkpoint key belongs to an arm (not to the units or the head)."""
    return any(arm.tensor_prefix and key.startswith(arm.tensor_prefix) for arm in ARMS.values())
