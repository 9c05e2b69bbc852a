"""Spindle partitions of the layers (docs/method.md#partitions).

Layers are cut into len(cuts) + 1 blocks by depth: boundaries b_j = floor(c_j·L + 0.5) and
block(l) = #{j : l >= b_j}. With c = (0.2, 0.5, 0.8): 24 layers → 0–4 | 5–11 | 12–18 | 19–23,
6 layers → 0 | 1–2 | 3–4 | 5, 4 layers → one layer per block. Fixed once from L (never
recomputed from surviving units); empty blocks are allowed. A partition key is (block, unit
type); its JSON form is "b{block}:{type}".
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prunepeft.errors import UserError
from prunepeft.pruning.statistics import UnitId

PartitionKey = tuple[int, str]
DEFAULT_CUTS: tuple[float, ...] = (0.2, 0.5, 0.8)


def boundaries(num_layers: int, cuts: Sequence[float] = DEFAULT_CUTS) -> list[int]:
    """b_j = floor(c_j·L + 0.5) for each cut fraction c_j.

    Raises:
        UserError: L < 1, or cuts not non-decreasing fractions in (0, 1).
    """
    if num_layers < 1:
        raise UserError(f"a partition needs at least one layer, got num_layers={num_layers}")
    cuts = [float(c) for c in cuts]
    if any(not 0.0 < c < 1.0 for c in cuts) or cuts != sorted(cuts):
        raise UserError(
            f"search.partition_cuts must be non-decreasing fractions in (0, 1), got {cuts}"
        )
    # The 1e-9 guards against c·L landing a hair below an exact .5 in floating point.
    return [math.floor(c * num_layers + 0.5 + 1e-9) for c in cuts]


@dataclass(frozen=True)
class Partition:
    """The block of every layer of an L-layer model."""

    num_layers: int
    cuts: tuple[float, ...] = DEFAULT_CUTS
    bounds: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cuts", tuple(float(c) for c in self.cuts))
        object.__setattr__(self, "bounds", tuple(boundaries(self.num_layers, self.cuts)))

    @property
    def num_blocks(self) -> int:
        return len(self.cuts) + 1

    def block(self, layer: int) -> int:
        """block(l) = #{j : l >= b_j}."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer {layer} outside 0..{self.num_layers - 1}")
        return sum(1 for b in self.bounds if layer >= b)

    def layers(self, block: int) -> list[int]:
        """The layers of `block` (possibly empty)."""
        return [layer for layer in range(self.num_layers) if self.block(layer) == block]

    def blocks(self) -> list[list[int]]:
        """Layers of every block, in block order."""
        return [self.layers(b) for b in range(self.num_blocks)]

    def key(self, uid: UnitId) -> PartitionKey:
        """The partition key (block, unit type) of a unit."""
        return (self.block(uid[0]), uid[1])

    def keys(self, uids: Iterable[UnitId]) -> list[PartitionKey]:
        """Distinct keys of `uids`, sorted."""
        return sorted({self.key(u) for u in uids})

    def group(self, uids: Iterable[UnitId]) -> dict[PartitionKey, list[UnitId]]:
        """Units grouped by key (keys sorted, units in the given order)."""
        out: dict[PartitionKey, list[UnitId]] = {}
        for u in uids:
            out.setdefault(self.key(u), []).append(u)
        return dict(sorted(out.items()))


def key_str(key: PartitionKey) -> str:
    """(1, "lora") → "b1:lora" (the JSON form)."""
    return f"b{key[0]}:{key[1]}"


def parse_key(text: str) -> PartitionKey:
    """"b1:lora" → (1, "lora").

    Raises:
        UserError: text not of the form b<int>:<type>.
    """
    head, sep, typ = str(text).partition(":")
    if not sep or not head.startswith("b") or not head[1:].isdigit() or not typ:
        raise UserError(f"bad partition key {text!r}; expected 'b<block>:<unit type>', e.g. 'b1:lora'")
    return (int(head[1:]), typ)
