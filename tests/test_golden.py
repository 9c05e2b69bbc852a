"""Golden outputs: 5 tiny searches compared against committed files (issue 13, Deliver 8).

Each case runs a search-only search (`search.retrain_epochs=0`) on tiny_bert with a 32-example RTE
slice and compares `found_config.json`, `warmup.json` and `rounds.jsonl` with `tests/golden/<case>/`:
exact for decisions, unit keys, strings, ints and lists; floats within 1e-6 (absolute or relative).
Timings (`wall_s` and every other key ending in `_s`) are stripped before writing and comparing.

They guard refactors: a change that moves any decision or score fails here. Regenerate them ONLY on
a deliberate change of behaviour (e.g. the criteria), and say why in the commit:

    .venv/bin/python tests/test_golden.py --regen              # all cases
    .venv/bin/python tests/test_golden.py --regen single dora_houlsby
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = ("found_config.json", "warmup.json", "rounds.jsonl")
COMMON = ["search.warmup.subset=16", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=0", "budget.params=2000", "search.k=2",
          "data.train_subset=32", "data.eval_subset=16"]
CASES = {
    "hybrid": ["strategy=hybrid"],
    "random": ["strategy=random"],
    "single": ["strategy=single", "strategy.criterion=taylor"],
    "hybrid_no_partition": ["strategy=hybrid_no_partition"],
    "dora_houlsby": ["strategy=hybrid", "search_space=[dora,houlsby]"],
}
REL, ABS = 1e-6, 1e-6


def strip_timings(value: Any) -> Any:
    """`value` without the keys that hold timings (`*_s`, e.g. wall_s)."""
    if isinstance(value, dict):
        return {k: strip_timings(v) for k, v in value.items() if not (isinstance(k, str) and k.endswith("_s"))}
    if isinstance(value, list):
        return [strip_timings(v) for v in value]
    return value


def run_case(case: str, run_dir: Path, glue_dir: Path) -> dict[str, Any]:
    """Run one case in `run_dir`; return its golden files' contents (timings stripped)."""
    from conftest import compose_config, tiny_overrides_for

    from prunepeft.commands import search as search_cmd
    from prunepeft.run.io import read_json, read_jsonl

    search_cmd.run(compose_config("search", tiny_overrides_for(glue_dir) + COMMON + CASES[case]), run_dir)
    return {"found_config.json": strip_timings(read_json(run_dir / "found_config.json")),
            "warmup.json": strip_timings(read_json(run_dir / "warmup.json")) if (run_dir / "warmup.json").exists() else None,
            "rounds.jsonl": [strip_timings(r) for r in read_jsonl(run_dir / "rounds.jsonl")]}


def write_golden(case: str, outputs: dict[str, Any]) -> None:
    folder = GOLDEN / case
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        path = folder / name
        if outputs[name] is None:
            path.unlink(missing_ok=True)
        elif name.endswith(".jsonl"):
            path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in outputs[name]))
        else:
            path.write_text(json.dumps(outputs[name], indent=1, sort_keys=True) + "\n")


def read_golden(case: str) -> dict[str, Any]:
    folder = GOLDEN / case
    out: dict[str, Any] = {}
    for name in FILES:
        path = folder / name
        if not path.exists():
            out[name] = None
        elif name.endswith(".jsonl"):
            out[name] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        else:
            out[name] = json.loads(path.read_text())
    return out


def differences(golden: Any, fresh: Any, where: str = "") -> list[str]:
    """Where `fresh` departs from `golden`: exact except floats (1e-6 absolute or relative)."""
    if isinstance(golden, float) or isinstance(fresh, float):
        if isinstance(golden, bool) or isinstance(fresh, bool) or not all(isinstance(v, (int, float)) for v in (golden, fresh)):
            return [] if golden == fresh else [f"{where}: {golden!r} != {fresh!r}"]
        if math.isnan(golden) and math.isnan(fresh):
            return []
        return [] if math.isclose(golden, fresh, rel_tol=REL, abs_tol=ABS) else [f"{where}: {golden!r} != {fresh!r}"]
    if isinstance(golden, dict) and isinstance(fresh, dict):
        if set(golden) != set(fresh):
            return [f"{where}: keys {sorted(set(golden) ^ set(fresh))} differ"]
        return [d for k in golden for d in differences(golden[k], fresh[k], f"{where}.{k}")]
    if isinstance(golden, list) and isinstance(fresh, list):
        if len(golden) != len(fresh):
            return [f"{where}: length {len(golden)} != {len(fresh)}"]
        return [d for i, (g, f) in enumerate(zip(golden, fresh)) for d in differences(g, f, f"{where}[{i}]")]
    return [] if golden == fresh and type(golden) is type(fresh) else [f"{where}: {golden!r} != {fresh!r}"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_search_matches_its_golden_outputs(case, glue_dir, tmp_path):
    golden = read_golden(case)
    assert golden["found_config.json"] is not None, f"no golden files for {case}: run tests/test_golden.py --regen {case}"
    fresh = json.loads(json.dumps(run_case(case, tmp_path / case, glue_dir)))  # JSON round trip, as on disk
    diffs = [d for name in FILES for d in differences(golden[name], fresh[name], name)]
    assert not diffs, f"{case}: {len(diffs)} differences from tests/golden/{case}:\n" + "\n".join(diffs[:20])


def test_differences_tolerance_and_exactness():
    assert differences({"a": 1.0, "b": ["x"]}, {"a": 1.0 + 1e-9, "b": ["x"]}) == []
    assert differences({"a": 1.0}, {"a": 1.001}) and differences({"b": ["x"]}, {"b": ["y"]})
    assert differences({"r": True}, {"r": 1}) and differences([1, 2], [1]) and differences({"a": 1}, {"c": 1})
    assert strip_timings({"wall_s": 1, "x": [{"assign_wall_s": 2, "y": 3}]}) == {"x": [{"y": 3}]}


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--regen":
        print(__doc__)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import GLUE_DIR

    cases = argv[1:] or sorted(CASES)
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            write_golden(case, run_case(case, Path(tmp) / case, GLUE_DIR))
        print(f"wrote {GOLDEN / case}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
