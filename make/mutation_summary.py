"""Summarise `mutmut results --all true` per module: killed / survived / score (make mutation).

    python make/mutation_summary.py <results.txt> <out dir> <module> ...

Writes <out>/summary.json and <out>/summary.md (survivors listed by name); the equivalent
mutants, each with its reason, are read from <out>/equivalent.json ({mutant name: reason}) and
counted apart: score = (killed + timeout) / (all − equivalent).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DETECTED = ("killed", "timeout", "caught by type check")


def main() -> None:
    results, out, modules = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    out.mkdir(parents=True, exist_ok=True)
    equivalent_file = out / "equivalent.json"
    equivalent = json.loads(equivalent_file.read_text()) if equivalent_file.is_file() else {}
    rows: dict[str, dict] = {}
    for line in results.read_text().splitlines():
        match = re.match(r"\s*(prunepeft\.pruning\.(\w+)\.\S+): (.+)$", line)
        if not match or match.group(2) not in modules:
            continue
        name, module, status = match.group(1), match.group(2), match.group(3).strip()
        row = rows.setdefault(module, {"mutants": 0, "killed": 0, "timeout": 0, "survived": 0, "equivalent": 0,
                                       "other": 0, "survivors": [], "equivalents": []})
        row["mutants"] += 1
        if name in equivalent:
            row["equivalent"] += 1
            row["equivalents"].append(name)
        elif status in DETECTED:
            row["killed" if status != "timeout" else "timeout"] += 1
        elif status == "survived":
            row["survived"] += 1
            row["survivors"].append(name)
        else:
            row["other"] += 1
            row["survivors"].append(f"{name} ({status})")
    for row in rows.values():
        judged = row["mutants"] - row["equivalent"]
        row["score"] = round(100.0 * (row["killed"] + row["timeout"]) / judged, 1) if judged else None
    total = {k: sum(r[k] for r in rows.values()) for k in ("mutants", "killed", "timeout", "survived", "equivalent", "other")}
    judged = total["mutants"] - total["equivalent"]
    total["score"] = round(100.0 * (total["killed"] + total["timeout"]) / judged, 1) if judged else None
    (out / "summary.json").write_text(json.dumps({"modules": rows, "total": total}, indent=2) + "\n")
    lines = ["# Mutation testing (mutmut): the method's pure modules", "",
             "`make mutation` (make/mutation.mk; tests: `[tool.mutmut]` in pyproject.toml). Score = (killed + "
             "timeout) / (mutants − equivalent); equivalents with their reasons: equivalent.json.", "",
             "| module | mutants | killed | timeout | survived | equivalent | score % |", "|---|---|---|---|---|---|---|"]
    for module in modules:
        if module in rows:
            r = rows[module]
            lines.append(f"| pruning/{module}.py | {r['mutants']} | {r['killed']} | {r['timeout']} | {r['survived']} | "
                         f"{r['equivalent']} | {r['score']} |")
    t = total
    lines += [f"| **all** | {t['mutants']} | {t['killed']} | {t['timeout']} | {t['survived']} | {t['equivalent']} | "
              f"**{t['score']}** |", ""]
    survivors = [s for m in modules if m in rows for s in rows[m]["survivors"]]
    lines += ["## Survivors", ""] + ([f"- `{s}`" for s in survivors] or ["none"]) + [""]
    lines += ["## Equivalent mutants", ""] + ([f"- `{n}`: {why}" for n, why in equivalent.items()] or ["none"])
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:4 + len(rows) + 3]))


if __name__ == "__main__":
    main()
