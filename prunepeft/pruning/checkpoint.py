"""Resumable search state: what has been removed so far, and the counters of the search cost.

Written atomically after the warm-up and after every round to `<run>/checkpoint/`; a search
re-invoked on the same run directory continues from its last finished round (DESIGN.md Outputs).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from prunepeft.io import atomic_write_json, read_json
from prunepeft.models.families import head_parameters

STATE_FILE = "state.json"
WEIGHTS_FILE = "supernet.safetensors"


@dataclass
class SearchState:
    """Counters and decisions that survive a crash.

    Attributes:
        rounds_done: finished pruning rounds.
        removed: unit keys ("layer:type") in removal order.
        warmup_done: the warm-up finished (warmup.json written).
        examples: training examples processed by the warm-up and the rounds (search cost).
        wall_s: wall-clock of the finished phases.
    """

    rounds_done: int = 0
    removed: list[str] = field(default_factory=list)
    warmup_done: bool = False
    examples: int = 0
    wall_s: float = 0.0

    @classmethod
    def load(cls, directory: Path) -> "SearchState":
        path = Path(directory) / STATE_FILE
        return cls(**read_json(path)) if path.exists() else cls()

    def save(self, directory: Path, tensors: dict[str, torch.Tensor] | None = None) -> None:
        """Write the weights first, then the state: a state file always has its weights."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if tensors is not None:
            tmp = directory / f".{WEIGHTS_FILE}.tmp"
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
            tmp.replace(directory / WEIGHTS_FILE)
        atomic_write_json(directory / STATE_FILE, asdict(self))


HEAD_PREFIX = "head::"


def supernet_tensors(supernet) -> dict[str, torch.Tensor]:
    """The active units' tensors and the head's (both are trained in a round; `reinit=keep` carries them)."""
    head = {f"{HEAD_PREFIX}{name}": p.detach().cpu().clone()
            for name, p in head_parameters(supernet.model, supernet.family)}
    return {**supernet.state_dict_units(), **head}


def restore_weights(directory: Path, supernet) -> bool:
    """Load the tensors saved with the state into `supernet` (pruned units already deactivated)."""
    path = Path(directory) / WEIGHTS_FILE
    if not path.exists():
        return False
    tensors = load_file(str(path))
    units = {k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIX)}
    supernet.load_state_dict_units(units)
    head = dict(head_parameters(supernet.model, supernet.family))
    with torch.no_grad():
        for key, value in tensors.items():
            if key.startswith(HEAD_PREFIX):
                head[key[len(HEAD_PREFIX):]].copy_(value)
    return True
