"""Re-run the mutation audit of the core maths: 39 single mutations, one at a time, on a copy.

Each mutation is a regex (old -> new) that must match exactly once in the package (searched in
every file under `prunepeft/`, so it survives code moves), and the mutated file must still parse
(`ast.parse`). The targeted tests of the mutation then run against the mutated copy
(`PYTHONPATH=<copy>`, checked to be the `prunepeft` that gets imported). A mutation is *caught*
when a targeted test fails. The unmutated copy must pass every targeted test first.

    .venv/bin/python -m benchmarks.mutations            # all 39, ~10 min on 2 CPU cores
    .venv/bin/python -m benchmarks.mutations M12 M21    # a few
    .venv/bin/python -m benchmarks.mutations --worktree # uncommitted changes included (default: HEAD)

Prints one line per mutation and the score; writes benchmarks/results/mutations.json (per
mutation: id, description, where it applied, caught, by which test).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "mutations.json"

T_CRIT = "tests/test_criteria.py"
T_COLL = "tests/test_collector.py"
T_SEARCH = "tests/test_search.py"


@dataclass
class Mutation:
    id: str
    description: str
    edits: list[tuple[str, str]]  # (regex, replacement), each must match exactly once in the package
    tests: list[str]  # pytest node ids (or files) expected to catch it
    files: str = "*.py"  # glob of the files searched (under prunepeft/)
    alt: list[list[tuple[str, str]]] = field(default_factory=list)  # other spellings of the same mutation
    applied: list[str] = field(default_factory=list)


M = Mutation
MUTATIONS = [
    M("M01", "weight orientation flipped", [(r"(class WeightCriterion[\s\S]*?higher_is_prunable = )False", r"\1True")],
      [f"{T_CRIT}::test_weight_known_answer"]),
    M("M02", "zeros orient = raw (drops 1 - raw)", [(r"\{uid: 1\.0 - float\(v\) for uid, v in raw\.items\(\)\}", "{uid: float(v) for uid, v in raw.items()}")],
      [f"{T_CRIT}::test_zeros_known_answer_relative_epsilon"]),
    M("M03", "gradient: sum, not per-element mean", [(r"per_element_mean\((require\(s\.grad_abs, uid, \"grad\", self\.name\))\)", r"float(\1.double().sum())")],
      [f"{T_CRIT}::test_activation_taylor_gradient_known_answers"]),
    M("M04", "collector: grad/taylor not divided by the steps", [(r"\(grad / steps\)", "grad"), (r"\(taylor / steps\)", "taylor")],
      [f"{T_COLL}::test_grad_and_taylor_are_means_over_steps_of_absolute_values"]),
    M("M05", "collector: |sum g| instead of sum |g|",
      [(r"(g = torch\.cat\(\[_grad_or_zeros\(p\)\.reshape\(-1\) for p in params\]\))\.abs\(\)", r"\1"),
       (r"\(grad / steps\)\.cpu\(\)", "(grad / steps).abs().cpu()")],
      [f"{T_COLL}::test_grad_and_taylor_are_means_over_steps_of_absolute_values"]),
    M("M06", "activation: pad mask dropped from the total",
      [(r"total = \(d\.reshape\(\*d\.shape\[:2\], -1\)\.sum\(-1, dtype=torch\.float64\) \* m\)\.sum\(\)", "total = d.sum(dtype=torch.float64)")],
      [f"{T_COLL}::test_activation_masks_pad_tokens_and_averages_sites"]),
    M("M07", "activation: count over all tokens", [(r"count = m\.sum\(\) \* feat", "count = torch.tensor(float(d.numel()), device=d.device, dtype=torch.float64)")],
      [f"{T_COLL}::test_activation_masks_pad_tokens_and_averages_sites"]),
    M("M08", "activation: sites pooled, not averaged per site",
      [(r"return sum\(per_site\) / len\(per_site\) if per_site else None",
        "return (sum(float(v) for k, v in self._act_sum.items() if k[0] == uid) / "
        "sum(float(v) for k, v in self._act_count.items() if k[0] == uid)) if per_site else None")],
      [f"{T_COLL}::test_activation_masks_pad_tokens_and_averages_sites"]),
    M("M09", "statistics callback after gradient clipping",
      [(r"(?m)^( *)cbs\.on_before_optimizer_step\(step\)[^\n]*\n( *)(grad_norm = [^\n]*)", r"\1\3\n\2cbs.on_before_optimizer_step(step)")],
      ["tests/test_train.py::test_callbacks_see_unclipped_grads_in_order"]),
    M("M10", "partition boundaries floor(c*L), not floor(c*L + 0.5)", [(r"math\.floor\(c \* num_layers \+ 0\.5 \+ 1e-9\)", "math.floor(c * num_layers + 1e-9)")],
      ["tests/test_partitions.py::test_partition_formula", "tests/test_warmup.py::test_tendencies_by_hand"]),
    M("M11", "rho with rankdata 'min', not 'average'", [(r'(\[oriented\[u\] for u in uids\], dtype=np\.float64\), )method="average"', r'\1method="min"')],
      [f"{T_CRIT}::test_min_max_and_percentile_ranks_by_hand"]),
    M("M12", "degenerate range 1e-8 -> 1e-2", [(r"DEGENERATE_RANGE = 1e-8", "DEGENERATE_RANGE = 1e-2")],
      [f"{T_CRIT}::test_degenerate_edge_is_1e_minus_8_from_both_sides"]),
    M("M13", "degenerate theta = 0, not 0.5", [(r"return \{u: 0\.5 for u in oriented\}, True", "return {u: 0.0 for u in oriented}, True")],
      [f"{T_CRIT}::test_degenerate_weight_criterion"]),
    M("M14", "Eq. (1): softmax(k) without theta", [(r"logit = \{u: k\[u\] \* theta\[u\] for u in units\}", "logit = {u: k[u] for u in units}")],
      ["tests/test_combine.py::test_eq1_by_hand"]),
    M("M15", "Eq. (1): sigmoid(1 - rho)", [(r"k = \{u: sigmoid\(rho\[u\]\) for u in units\}", "k = {u: sigmoid(1 - rho[u]) for u in units}")],
      ["tests/test_combine.py::test_eq1_by_hand"]),
    M("M16", "no-partition: sum over criteria, not mean", [(r"for c in criteria\) / len\(criteria\)", "for c in criteria)")],
      ["tests/test_combine.py::test_no_partition_by_hand"]),
    M("M17", "bottom-k (ascending p)", [(r"key=lambda i: \(-float\(p\[uids\[i\]\]\), int\(tie\[i\]\)\)", "key=lambda i: (float(p[uids[i]]), int(tie[i]))")],
      ["tests/test_selection.py::test_top_k_respects_k_and_order"]),
    M("M18", "ties not broken by the seed", [(r"key=lambda i: \(-float\(p\[uids\[i\]\]\), int\(tie\[i\]\)\)", "key=lambda i: (-float(p[uids[i]]), i)")],
      ["tests/test_selection.py::test_ties_broken_by_seed_deterministically"]),
    M("M19", "last round takes the largest units first (skips higher p)",
      [(r"for uid in removal_order\(p, seed\):", "for uid in sorted(removal_order(p, seed), key=lambda u: -int(param_counts[u])):")],
      ["tests/test_selection.py::test_budget_by_hand"]),
    M("M20", "budget: total < B, not <= B", [(r"(for uid in removal_order\(p, seed\):\n\s+)if total <= budget:", r"\1if total < budget:")],
      ["tests/test_selection.py::test_budget_by_hand"]),
    M("M21", "select_round: after >= B (wrong `last` flag)", [(r"if after > budget:", "if after >= budget:")],
      ["tests/test_selection.py::test_select_round_top_k_landing_exactly_on_the_budget_is_the_last_round"]),
    M("M22", "LoRA unit without the value site", [(r'(class LoraType[\s\S]*?sites = )\("query", "value"\)', r'\1("query",)')],
      ["tests/test_accounting.py::test_closed_forms"]),
    M("M23", "budget does not count the DoRA magnitude",
      [(r"uid: sum\(p\.numel\(\) for p in supernet\.unit_parameters\(uid\)\.values\(\)\)",
        'uid: sum(p.numel() for n, p in supernet.unit_parameters(uid).items() if not n.endswith("magnitude"))')],
      ["tests/test_accounting.py::test_counts_match_closed_forms_for_every_type_and_family"],
      alt=[[(r"return kept \* \(\(full - fixed\) // self\.num_ranks\) \+ fixed", "return kept * ((full - fixed) // self.num_ranks)")]]),
    M("M24", "DoRA magnitude in the weight criteria",
      [(r"return \[p for p in self\.parameters\(\) if p\.dim\(\) >= 2\]",
        'return [p for n, p in self.named_parameters() if p.dim() >= 2 or n.endswith("magnitude")]')],
      ["tests/test_supernet.py::test_active_ids_order_and_unit_parameters"]),
    M("M25", "adapter closed form drops the down bias", [(r"return 2 \* out_features \* b \+ b \+ out_features", "return 2 * out_features * b + out_features")],
      ["tests/test_accounting.py::test_closed_forms"]),
    M("M26", "round re-init seed without the round index", [(r"gen = generator\(seed\)\n", "gen = generator(int(cfg.seed))\n")],
      ["tests/test_phases.py::test_round_reinit_is_seeded_with_seed_plus_round"]),
    M("M27", "warm-up assignment argmax -> argmin", [(r"tau\[c\]\[key\] > tau\[best\]\[key\] \+ TIE_TOL", "tau[c][key] < tau[best][key] - TIE_TOL")],
      ["tests/test_warmup.py::test_assignment_argmax_ties_degenerate_and_random"]),
    M("M28", "criterion excluded if degenerate in ANY snapshot", [(r"if all\(fl\)\]", "if any(fl)]")],
      ["tests/test_warmup.py::test_criterion_degenerate_in_some_snapshots_stays_a_candidate"]),
    M("M29", "tau divided by #snapshots, not #units", [(r"sums\[key\] / counts\[key\]", "sums[key] / len(snapshots)")],
      ["tests/test_warmup.py::test_tendency_is_the_mean_over_snapshots_and_key_units"]),
    M("M30", "resume: removals not replayed", [(r"(for key in state\.removed:\n\s+)supernet\.deactivate\(parse_unit_key\(key\)\)", r"\1pass")],
      [f"{T_SEARCH}::test_crash_and_resume_gives_the_same_configuration"]),
    M("M31", "resume: unfinished rounds not dropped", [(r"if len\(rows\) != rounds_done:", "if False:")],
      [f"{T_SEARCH}::test_crash_and_resume_gives_the_same_configuration"]),
    M("M32", "warm-up subset not stratified", [(r"if not regression:\n(\s+)return labels", r"if not regression:\n\1return np.zeros(len(labels), dtype=int)")],
      ["tests/test_data.py::test_class_proportions_kept_within_one"]),
    M("M33", "CoLA primary metric accuracy", [(r"primary_metric: mcc", "primary_metric: accuracy")],
      ["tests/test_configs.py::test_task_metadata"], files="conf/task/cola.yaml"),
    M("M34", "threshold |w| <= t, not <", [(r"\(s\.weights\.abs\(\) < t\)", "(s.weights.abs() <= t)")],
      [f"{T_CRIT}::test_threshold_is_strict_when_t_is_a_weight"]),
    M("M35", "zeros eps from mean |w|, not RMS", [(r"np\.sqrt\(np\.mean\(pooled\*\*2\)\)", "np.mean(pooled)")],
      [f"{T_CRIT}::test_zeros_epsilon_is_relative_to_the_rms_not_the_mean_abs"]),
    M("M36", "last allowed round removes only k",
      [(r"k = s\.k if round_index < s\.max_rounds else len\(p\)", "k = s.k")],
      [f"{T_SEARCH}::test_max_rounds_last_round_still_meets_the_budget"],
      alt=[[(r"k = int\(cfg\.search\.k\) if round_index < int\(cfg\.search\.max_rounds\) else len\(p\)", "k = int(cfg.search.k)")]]),
    M("M37", "rho ranked on raw, not oriented",
      [(r"rank=percentile_ranks\(oriented, degenerate\)", "rank=percentile_ranks(dict(raw) if raw is not None else oriented, degenerate)")],
      [f"{T_CRIT}::test_score_snapshot_fields"]),
    M("M38", "warm-up snapshots cumulative (no collector reset)", [(r"(\n\s+)self\.collector\.reset\(\)", r"\1pass")],
      ["tests/test_phases.py::test_warmup_snapshots_see_only_the_steps_since_the_previous_one"]),
    M("M39", "pick-count tie seed without the snapshot index", [(r"select_top_k\(snap\[c\]\.rank, top_k, seed \+ t\)", "select_top_k(snap[c].rank, top_k, seed)")],
      ["tests/test_warmup.py::test_pick_count_ties_are_broken_with_the_snapshot_seed"]),
]


def copy_tree(dest: Path, worktree: bool = False) -> Path:
    """The package, tests and pyproject of HEAD (or the working tree) in `dest/repo`, with
    `dest/shared` -> the real shared data (the tests read ../shared/data/glue)."""
    repo = dest / "repo"
    parts = ["prunepeft", "tests", "pyproject.toml"]
    if worktree:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
        shutil.copytree(ROOT / "prunepeft", repo / "prunepeft", ignore=ignore)
        shutil.copytree(ROOT / "tests", repo / "tests", ignore=ignore)
        shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    else:
        repo.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "HEAD", *parts], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    if (ROOT.parent / "shared").exists():
        (dest / "shared").symlink_to(ROOT.parent / "shared")
    return repo


def apply(mutation: Mutation, repo: Path) -> dict[Path, str]:
    """Apply the first spelling (edits, then each alt) whose every pattern matches exactly once."""
    for edits in [mutation.edits, *mutation.alt]:
        try:
            return _apply(mutation, edits, repo)
        except LookupError as err:
            error = err
    raise error


def _apply(mutation: Mutation, edits: list[tuple[str, str]], repo: Path) -> dict[Path, str]:
    """Apply `edits`; return the original text of every touched file. Raises on a bad pattern."""
    originals: dict[Path, str] = {}
    mutation.applied = []
    for pattern, repl in edits:
        regex = re.compile(pattern)
        hits = [(p, len(regex.findall(p.read_text()))) for p in sorted((repo / "prunepeft").rglob(mutation.files))]
        hits = [(p, n) for p, n in hits if n]
        if len(hits) != 1 or hits[0][1] != 1:
            for path, text in originals.items():
                path.write_text(text)
            raise LookupError(f"{mutation.id}: pattern {pattern!r} matches {[(str(p.relative_to(repo)), n) for p, n in hits]}")
        path = hits[0][0]
        text = path.read_text()
        originals.setdefault(path, text)
        new = regex.sub(repl, text, count=1)
        if path.suffix == ".py":
            ast.parse(new)
        path.write_text(new)
        mutation.applied.append(str(path.relative_to(repo)))
    return originals


def run_tests(repo: Path, tests: list[str]) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf", *tests]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, flags=re.M)
    return proc.returncode, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="mutation ids (default: all)")
    parser.add_argument("--worktree", action="store_true", help="mutate the working tree, not the committed HEAD")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.ids or m.id in args.ids]
    # The commit the copy is taken from (read now: HEAD may move while the mutations run).
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="prunepeft-mutations-") as tmp:
        repo = copy_tree(Path(tmp), args.worktree)
        env = {**os.environ, "PYTHONPATH": str(repo)}
        where = subprocess.run([sys.executable, "-c", "import prunepeft; print(prunepeft.__file__)"], cwd=repo,
                               env=env, capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(repo)):
            raise SystemExit(f"the copy is not what gets imported: prunepeft from {where}")
        targeted = sorted({t for m in chosen for t in m.tests})
        rc, failed = run_tests(repo, targeted)
        if rc != 0:
            raise SystemExit(f"the unmutated copy fails its targeted tests: {failed or rc}")
        rows = []
        for m in chosen:
            started = time.time()
            originals = apply(m, repo)
            try:
                rc, failed = run_tests(repo, m.tests)
            finally:
                for path, text in originals.items():
                    path.write_text(text)
            caught = rc != 0
            rows.append({"id": m.id, "description": m.description, "applied_to": sorted(set(m.applied)),
                         "caught": caught, "by": failed[:1] or ([f"pytest exit {rc}"] if caught else []),
                         "tests": m.tests, "wall_s": round(time.time() - started, 1)})
            print(f"{m.id}  {'caught  ' if caught else 'SURVIVED'}  {m.description}  ({', '.join(rows[-1]['by'])})",
                  flush=True)
    if args.ids and OUT.exists():  # a partial re-run updates its rows of the last full run
        fresh = {r["id"]: r for r in rows}
        rows = [fresh.pop(r["id"], r) for r in json.loads(OUT.read_text())["mutations"]] + list(fresh.values())
    caught = sum(r["caught"] for r in rows)
    print(f"mutation score: {caught}/{len(rows)} = {100 * caught / max(1, len(rows)):.0f}%")
    if not args.ids or OUT.exists():
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps({"command": " ".join(["python -m benchmarks.mutations", *(["--worktree"] if args.worktree else [])]),
                                   "head": head, "worktree": args.worktree, "caught": caught, "total": len(rows),
                                   "mutations": rows}, indent=1) + "\n")
        print(f"wrote {OUT.relative_to(ROOT)}")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
