"""The type-matched random arm of Table 5 (`strategy=random_matched`, docs/method.md#type-matched-random).

Plain random pruning may keep fewer, larger units than the hybrid (adapters rather than LoRA), and
unit type alone moves accuracy by about a point. This arm keeps, for each unit type, exactly as
many units as the hybrid's found configuration of the same task and seed (`strategy.from_run`, the
hybrid run's directory), chosen uniformly at random among the supernet's units of that type
(seeded by `seed`), in one shot: no warm-up, no rounds. The retrain is the search's own, so the
run writes the same found_config.json / summary.json (with its `cost` block) as any search.

The source run is read before `run.json` is written: a missing or unfinished hybrid run is a
one-line UserError naming the path.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.run.io import read_json
from prunepeft.peft.units import UnitId, parse_unit_key

def check_config(strategy: Any, from_run: Any) -> None:
    """The cheap config check (no file read: a sweep resolves `from_run` per job)."""
    if strategy.kind.matched and not from_run:
        raise UserError(f"strategy={strategy.name} needs strategy.from_run=<the hybrid search's run directory of the same "
                        f"task and seed> (experiment=table5 sets it)")


def source_counts(from_run: str | Path) -> dict[str, int]:
    """Units kept per type by the finished search in `from_run` (its found_config.json).

    Raises:
        UserError: one line naming the path when the run is missing, unfinished or has no found config.
    """
    path = Path(from_run)
    if not path.is_dir():
        raise UserError(f"strategy.from_run: {path} not found (run the hybrid search of this task and seed first)")
    if not (path / outputs.DONE).exists():
        raise UserError(f"strategy.from_run: {path} is unfinished (no {outputs.DONE}): finish the hybrid search first")
    found = path / outputs.FOUND_CONFIG
    try:
        units = read_json(found)["units"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"strategy.from_run: cannot read the unit list of {found}") from None
    return dict(Counter(parse_unit_key(u)[1] for u in units))


def draw(units: Sequence[UnitId], counts: Mapping[str, int], seed: int) -> list[UnitId]:
    """The kept units: for each type, `counts[type]` of its units drawn uniformly at random (seeded).

    Types are drawn in sorted order from one `random.Random(seed)`, each from its units sorted by
    layer, so the draw depends on the seed and the candidates only. Returned sorted by (layer, type).

    Raises:
        UserError: a type the source keeps more of than these units have (another search space or model).
    """
    pool: dict[str, list[UnitId]] = {}
    for uid in sorted(units):
        pool.setdefault(uid[1], []).append(uid)
    rng = random.Random(int(seed))
    kept: list[UnitId] = []
    for name in sorted(counts):
        have = pool.get(name, [])
        if counts[name] > len(have):
            raise UserError(f"strategy.from_run keeps {counts[name]} {name} unit(s), this supernet has {len(have)}: "
                            f"the source must use the same model and search space")
        kept += rng.sample(have, int(counts[name]))
    return sorted(kept)


def prune_like_source(strategy: Any, s: Any, supernet: Any) -> list[UnitId] | None:
    """`random_matched`: deactivate every unit but the matched draw (before run.json); else nothing.

    `s`: the search's typed settings (`seed`, `strategy.from_run`). Returns the kept units.
    """
    if not strategy.kind.matched:
        return None
    kept = draw(supernet.active_ids(), source_counts(s.strategy.from_run), s.seed)
    for uid in set(supernet.active_ids()) - set(kept):
        supernet.deactivate(uid)
    return kept
