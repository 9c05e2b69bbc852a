"""Kill a tiny search with SIGKILL at seeded random points, resume it, compare with an uninterrupted run;
then kill `prunepeft export` and `prunepeft report` inside their write phase and run them again.

    PRUNEPEFT_DATA_DIR=../shared/data/glue .venv/bin/python -m benchmarks.faults --kills 24 --seed 0

Points (`debug.kill_at`): the n-th event of the run (warm-up, round and retrain steps and
evaluations; n drawn uniformly over the reference run's events), and the n-th checkpoint save,
between its two writes (weights file written, state.json not yet) or right after it. Each
killed run is re-invoked with the same command; its `found_config.json`, `summary.json` metrics
and `rounds.jsonl` removals must equal the uninterrupted run's, and every log must parse.

Each attempt is a forked child of one process that imported everything once (a fresh
interpreter per attempt would spend most of the time importing torch); the child runs the real
CLI (`prunepeft.cli.main`) and dies by a real SIGKILL.

Export and report (issue 25): `write:<n>` kills the process between the n-th atomic write's fsync and
its rename (`prunepeft.run.io`), so a temp file (the report's `.<name>.<pid>.<x>.tmp`) or the export's
temp directory (`.<out>.<pid>.<x>/`, which replaces `out` only when complete) is on disk when it dies.
Every n from 1 to the command's number of writes is tried; the next run must succeed, leave no temp
behind (it removes a dead writer's temps) and write the same files as an uninterrupted run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from prunepeft.run import outputs

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]  # the repository (benchmarks/lib/ is two below it)
ARGS = ["search", "task=rte", "model=tiny_bert", "train=test", "data.train_subset=96", "data.eval_subset=32",
        "search.warmup.subset=48", "search.warmup.epochs=2", "search.warmup.snapshots=2", "search.retrain_epochs=2",
        "budget.params=1200", "search.k=1", "seed=11"]


def attempt(args: list[str], kill_at: str | None = None, count_writes: Path | None = None) -> int:
    """Run `prunepeft <args>` in a forked child; its exit status (negative: killed by that signal).

    `kill_at` arms a `debug.kill_at` point in the child (export and report take no `debug.*` key);
    `count_writes`: the child writes there how many atomic writes it made (the write phase's length)."""
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            import torch

            torch.set_num_threads(1)
            from prunepeft import cli
            from prunepeft.run import io, record

            record.configure_debug(kill_at)  # also disarms what the parent's state may have armed
            writes = []
            if count_writes is not None:
                io.on_write(writes.append)

            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child exits right after
            try:
                cli.main(args)
            finally:
                if count_writes is not None:
                    count_writes.write_text(str(len(writes)))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # noqa: BLE001 - any other failure is a failed attempt
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def outcome(run_dir: Path) -> dict:
    """What must not depend on where the run was killed."""
    from prunepeft.run.io import read_json

    rounds = [json.loads(line) for line in (run_dir / outputs.ROUNDS).read_text().splitlines()]  # strict: all parse
    events = [json.loads(line) for line in (run_dir / outputs.EVENTS).read_text().splitlines()]
    summary = read_json(run_dir / outputs.SUMMARY)
    return {"found": read_json(run_dir / outputs.FOUND_CONFIG), "metrics": summary["metrics"],
            "primary": summary["primary"], "removed": [r["removed"] for r in rounds],
            "rounds": summary["search"]["rounds"], "events_parse": bool(events)}


def temps(out: Path) -> list[str]:
    """What a killed writer of `out` can leave: its temp directory beside `out` (an export), and
    temp files inside `out` (a report's atomic writes). Relative to `out`'s parent."""
    found = [p for p in out.parent.glob(f".{out.name}.*")]
    if out.is_dir():
        found += [p for p in out.rglob(".*.tmp")]
    return sorted(p.relative_to(out.parent).as_posix() for p in found)


def written(out: Path) -> dict[str, bytes | None]:
    """The files under `out` by relative path, with the bytes of those that must not depend on where a
    run was killed (tables, CSV, JSON); figures and the index only by name (matplotlib's PDFs carry
    their creation time; report.md names its own output folder)."""
    keep = (".csv", ".json", ".tex")
    return {p.relative_to(out).as_posix(): (p.read_bytes() if p.suffix in keep else None)
            for p in sorted(out.rglob("*")) if p.is_file()}


def write_phase_kills(command: list[str], out: Path) -> list[dict]:
    """Kill `prunepeft <command> out=<out>` (export or report) by a real SIGKILL at each of its atomic
    writes in turn, then run it again. Per kill: the point, the exit codes, the temps the kill left,
    the temps after the next run, and whether the next run wrote what an uninterrupted one does."""
    ref, counter = out.parent / f"{out.name}-ref", out.parent / f".{out.name}-writes"
    assert attempt([*command, f"out={ref}"], count_writes=counter) == 0, f"uninterrupted {command[0]} failed"
    n_writes, expected = int(counter.read_text()), written(ref)
    counter.unlink()
    shutil.rmtree(ref)  # its name must not look like a temp of `out`
    rows = []
    for n in range(1, n_writes + 1):
        killed = attempt([*command, f"out={out}"], kill_at=f"write:{n}")
        left = temps(out)
        again = attempt([*command, f"out={out}"])
        got = written(out)
        differs = sorted(k for k in set(got) | set(expected) if got.get(k, b"?") != expected.get(k, b"?"))
        rows.append({"command": command[0], "point": f"write:{n}", "killed": killed, "left": left, "rerun": again,
                     "after": temps(out), "same": again == 0 and not differs, "differs": differs})
        shutil.rmtree(out, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("PRUNEPEFT_DATA_DIR", str(REPO.parent / "shared/data/glue")))
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    opts = parser.parse_args()

    import torch  # noqa: F401  (imported once, before forking)

    import prunepeft.cli  # noqa: F401
    import prunepeft.commands.search  # noqa: F401

    args = [*ARGS, f"data.dir={opts.data_dir}"]
    work = Path(tempfile.mkdtemp(prefix="prunepeft-faults-"))
    started = time.time()
    ref = work / "ref"
    assert attempt([*args, f"hydra.run.dir={ref}"]) == 0, "the uninterrupted run failed"
    expected = outcome(ref)
    n_events = len((ref / outputs.EVENTS).read_text().splitlines())
    saves = json.loads((ref / outputs.CHECKPOINT / outputs.CHECKPOINT_STATE).read_text())["generation"]
    ref_s = time.time() - started
    print(f"reference: {n_events} events, {saves} checkpoint saves, {expected['rounds']} rounds, {ref_s:.1f} s")

    # Event kills cycle over the phases (warm-up, rounds, retrain) so each is hit; n is random within it.
    phases = [json.loads(line)["phase"] for line in (ref / outputs.EVENTS).read_text().splitlines()]
    groups = {"warmup": [], "rounds": [], "retrain": []}
    for n, phase in enumerate(phases, start=1):
        groups["rounds" if phase.startswith("round") else phase].append(n)
    rng = random.Random(opts.seed)
    points, where = [], []
    for i in range(opts.kills):
        kind = ("event", "between_checkpoint_writes", "event", "after_checkpoint", "event")[i % 5]
        if kind == "event":
            group = ("warmup", "rounds", "retrain")[(i // 5 + i) % 3]
            n = rng.choice(groups[group])
            where.append(phases[n - 1])
        else:
            n = rng.randint(1, saves)
            where.append("warm-up save" if n == 1 else f"round {n - 1} save")
        points.append(f"{kind}:{n}")
    identical, rows = 0, []
    for i, point in enumerate(points):
        run_dir = work / f"k{i:02d}"
        killed = attempt([*args, f"hydra.run.dir={run_dir}", f"debug.kill_at={point}"])
        resumed = attempt([*args, f"hydra.run.dir={run_dir}"])
        try:
            same = killed == -signal.SIGKILL and resumed == 0 and outcome(run_dir) == expected
        except (OSError, ValueError, KeyError) as err:
            same, resumed = False, f"{resumed} ({type(err).__name__})"
        identical += same
        rows.append((point, killed, resumed, same))
        print(f"  kill at {point:<28} ({where[i]:<13}) killed rc {killed:>4}  resumed rc {resumed}  "
              f"{'identical' if same else 'DIFFERENT'}", flush=True)
    print(f"{len(points)} kills, {identical} identical ({time.time() - started:.0f} s, work dir {work})")

    # Export and report: a kill at each atomic write of their write phase, then the same command again.
    clean = 0
    shutil.copytree(ref, work / "runs" / "ref")  # the report reads a runs tree holding only the reference
    writes = [*write_phase_kills(["export", f"run={ref}", "to=prunepeft"], work / "exp"),
              *write_phase_kills(["report", f"runs={work / 'runs'}", "figures=true"], work / "rep")]
    for row in writes:
        ok = row["killed"] == -signal.SIGKILL and row["rerun"] == 0 and not row["after"] and row["same"]
        clean += ok
        print(f"  {row['command']:<6} kill at {row['point']:<9} killed rc {row['killed']:>4}  left {len(row['left'])} "
              f"temp(s)  rerun rc {row['rerun']}  after {len(row['after'])}  {'clean' if ok else 'NOT CLEAN'}"
              + (f"  (differs from an uninterrupted run: {', '.join(row['differs'])})" if row["differs"] else ""), flush=True)
    print(f"{len(writes)} export/report kills, {clean} clean")
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if identical == len(points) and clean == len(writes) else 1)

