"""Type preference of each criterion: P(adapter more prunable than the LoRA unit of the same layer).

On a supernet that has learned nothing about the task, a fair criterion prefers neither type:
P ≈ 0.5 within the binomial band. Two conditions, `--seeds` supernets each (paper init, Eq. 4-5):

- `untrained`: statistics of one pass over `--examples` rows with every learning rate 0;
- `shuffled`: one epoch on `--examples` rows whose labels are shuffled (learns no task signal).

For each criterion it prints P with its 95 % Wilson interval, with `search.type_norm=none` and
`zscore` (which standardises activation/taylor/gradient within each unit type), and writes JSON.

    python -m benchmarks.type_preference --seeds 20 --out benchmarks/results/type_preference.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from prunepeft.config.compose import compose_config  # noqa: E402  (the CLI's own compose)
from prunepeft.data import stratified_subset  # noqa: E402
from prunepeft.pruning.criteria import HYBRID_CRITERIA, CriterionContext  # noqa: E402
from prunepeft.pruning.phases import run_round  # noqa: E402
from prunepeft.pruning.scoring import score_snapshot  # noqa: E402
from prunepeft.pruning.search import build_supernet, validate  # noqa: E402


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def adapter_first(oriented: dict) -> tuple[int, int]:
    """(layers where the adapter is more prunable than the LoRA unit, layers compared); ties count half."""
    wins, n = 0.0, 0
    for layer in sorted({u[0] for u in oriented}):
        a, lo = oriented.get((layer, "adapter")), oriented.get((layer, "lora"))
        if a is None or lo is None:
            continue
        wins += 1.0 if a > lo else 0.5 if a == lo else 0.0
        n += 1
    return wins, n


def one_supernet(base: list[str], condition: str, seed: int, examples: int) -> dict:
    """Statistics of one seeded supernet under `condition`, scored with and without type_norm."""
    lr = ["train.lr_peft=0", "train.lr_head=0"] if condition == "untrained" else []
    cfg = compose_config("search", [*base, *lr, f"seed={seed}"])
    setup = validate(cfg)  # the search's checked, typed settings (pruning.setup)
    supernet, tokenizer, data = build_supernet(setup)
    rows = stratified_subset(data.train, examples, seed, "labels", False)
    if condition == "shuffled":
        labels = np.random.default_rng(seed).permutation(np.asarray(rows["labels"]))
        rows = rows.remove_columns("labels").add_column("labels", labels.tolist())
    _, _, stats = run_round(supernet, tokenizer, rows, {}, setup, round_index=0, criteria=HYBRID_CRITERIA)
    out = {}
    for norm in ("none", "zscore"):
        ctx = CriterionContext(seed=seed, type_norm=norm, type_norm_criteria=tuple(cfg.search.type_norm_criteria))
        snap = score_snapshot(stats, HYBRID_CRITERIA, ctx)
        out[norm] = {c: adapter_first(s.oriented) for c, s in snap.items()}
    return out


def report(path: Path) -> list[str]:
    """BENCHMARKS §8.1's table from the committed JSON: P(adapter first) [95 % Wilson] per criterion."""
    table = json.loads(path.read_text())["table"]
    cols = [(c, n) for c in ("untrained", "shuffled") for n in ("none", "zscore") if c in table and n in table[c]]
    lines = ["| criterion | " + " | ".join(c if n == "none" else f"{c}, {n}" for c, n in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for crit in table[cols[0][0]][cols[0][1]]:
        cells = [f"{e['p_adapter_first']:.2f} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]"
                 for e in (table[c][n][crit] for c, n in cols)]
        lines.append(f"| {crit} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--examples", type=int, default=512)
    ap.add_argument("--conditions", nargs="+", default=["untrained", "shuffled"])
    ap.add_argument("--data-dir", default=os.environ.get("PRUNEPEFT_DATA_DIR", str(ROOT.parent / "shared/data/glue")))
    ap.add_argument("--extra", nargs="*", default=[], help="more overrides (e.g. model.local=<dir>)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "type_preference.json")
    ap.add_argument("--report", action="store_true", help="print the table from --out, run nothing")
    args = ap.parse_args()
    if args.report:
        print("\n".join(report(args.out)))
        return
    base = ["task=sst2", "model=minilm_l6", "train=cpu", "train.max_length=64", "data.train_subset=2000",
            "train.progress=false", f"data.dir={args.data_dir}", "search.reinit=paper", *args.extra]
    started = time.time()
    totals: dict = {}
    for cond in args.conditions:
        for seed in range(1, args.seeds + 1):
            res = one_supernet(base, cond, seed, args.examples)
            for norm, per_crit in res.items():
                for crit, (wins, n) in per_crit.items():
                    acc = totals.setdefault(cond, {}).setdefault(norm, {}).setdefault(crit, [0.0, 0])
                    acc[0] += wins
                    acc[1] += n
            print(f"{cond} seed {seed} done ({time.time() - started:.0f}s)", file=sys.stderr)
    table = {cond: {norm: {c: {"p_adapter_first": w / n, "n": n, "ci95": wilson(round(w), n)}
                           for c, (w, n) in per.items()} for norm, per in norms.items()}
             for cond, norms in totals.items()}
    result = {"seeds": args.seeds, "examples": args.examples, "base": base, "wall_s": round(time.time() - started, 1),
              "table": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| criterion | " + " | ".join(f"{c} ({n})" for c in table for n in table[c]) + " |")
    print("|---|" + "---|" * sum(len(v) for v in table.values()))
    for crit in HYBRID_CRITERIA:
        cells = []
        for cond in table:
            for norm in table[cond]:
                e = table[cond][norm][crit]
                cells.append(f"{e['p_adapter_first']:.2f} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]")
        print(f"| {crit} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
