"""Early backbone pruning on MiniLM-L6: step time, peak memory and SST-2 accuracy, pruned vs unpruned.

Issue 14 (Deliver 5, backbone rows). One command, one run, both arms side by side:

    nice -n 5 .venv/bin/python -m benchmarks.backbone_prune_bench            # ~15-20 min on 2 shared cores
    .venv/bin/python -m benchmarks.backbone_prune_bench --smoke               # seconds: wiring only

Per seed (label-stratified SST-2 train subset of 2,000 rows, seeded; the full 872-row dev set):

1. **Estimation** exactly as `prunepeft search backbone_prune.enabled=true` does it
   (`arms/backbone_stage.estimate`): the full supernet's units, the head and the head/neuron masks
   train together with λ·Σ|m| (λ = 1e-4) for max(100, ⌈0.04 × retrain steps⌉) optimizer steps, then
   heads are cut per layer and neurons globally (`backbone_prune.heads=1/3`, `backbone_prune.ffn=1/3`).
2. **Two arms**, the same uniform LoRA (our `lora` unit, r 16, on every layer) from the same seed:
   `unpruned` = the pretrained backbone, `pruned` = the same backbone with the selected heads and
   neurons physically removed. Each trains `--epochs` epochs with `train=cpu` (lr 1e-3, batch 32,
   `train.max_length=64`) and is evaluated on dev after the last epoch.

Then, on the first seed's kept structures:

- **Step time**: both models in memory, interleaved in blocks of a few optimizer steps (so load from
  other users of the machine hits both arms alike) on one fixed batch of 32 × 64 real SST-2 rows;
  median seconds per step per arm, and their ratio.
- **Peak memory**: one fresh subprocess per arm (`--memory-arm`): RSS sampled every millisecond by a
  thread during 3 training steps; reported as the peak RSS above the process's RSS before the model
  was loaded (weights + optimizer states + activations + allocator), and its ratio.

One torch thread (`torch.set_num_threads(1)`): the machine's 2 cores are shared.
Result: `benchmarks/results/backbone_prune/minilm_l6_sst2.json` (BENCHMARKS.md §10.2).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO.parent / "shared" / "data" / "glue"
OUT = REPO / "benchmarks" / "results" / "backbone_prune" / "minilm_l6_sst2.json"


def compose(seed: int, args) -> object:
    """The `prunepeft search` config the bench mirrors (composed exactly as the CLI would)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from prunepeft.config.schema import register_configs

    overrides = [f"model={args.model}", "task=sst2", "train=cpu", f"train.max_length={args.max_length}",
                 f"train.epochs={args.epochs}", f"search.retrain_epochs={args.epochs}", "train.progress=false",
                 f"data.dir={args.data_dir}", f"data.train_subset={args.train}", f"seed={seed}",
                 "backbone_prune.enabled=true", f"backbone_prune.heads={args.heads}", f"backbone_prune.ffn={args.ffn}"]
    if args.eval_subset:
        overrides.append(f"data.eval_subset={args.eval_subset}")
    if args.steps:
        overrides.append(f"backbone_prune.steps={args.steps}")
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="prunepeft.conf", version_base="1.3"):
        cfg = hydra_compose(config_name="search", overrides=overrides)
    GlobalHydra.instance().clear()
    return cfg


def lora_model(cfg, kept=None, seed: int = 0):
    """(model, Supernet with uniform LoRA) on the unpruned backbone, or pruned by `kept`."""
    from prunepeft.models import get_family, load_backbone
    from prunepeft.arms.backbone_prune import prune
    from prunepeft.peft import Supernet, UnitSizes
    from prunepeft.seed import seed_everything

    seed_everything(seed)
    model, tokenizer = load_backbone(cfg.model, int(cfg.task.num_labels), seed)
    family = get_family(cfg.model.family)
    if kept is not None:
        prune(model, family, kept)
        seed_everything(seed)  # the units start as they would on the unpruned backbone
    net = Supernet.build(model, family, ["lora"], UnitSizes.from_model(cfg.model), int(model.config.hidden_size))
    return net, tokenizer


def counts(net) -> dict:
    """The base model's parameters (units and head excluded) and the LoRA units' (peft/accounting.py)."""
    from prunepeft.peft import count_parameters

    c = count_parameters(net)
    return {"base": int(c.base), "peft": int(c.peft)}


def train_arm(cfg, data, tokenizer_unused, kept, seed: int) -> dict:
    from prunepeft.train import build_param_groups, fit

    net, tokenizer = lora_model(cfg, kept, seed)
    groups = build_param_groups(peft=net.peft_parameters(), head=net.head_parameters(), train_cfg=cfg.train)
    result = fit(net.model, groups, data.train, data.evals, tokenizer, train_cfg=cfg.train, task=cfg.task,
                 epochs=int(cfg.train.epochs), seed=seed, phase="train", evaluate_every_epoch=False)
    split, metric = str(cfg.task.eval_splits[0]), str(cfg.task.primary_metric)
    return {"accuracy": float(result.last[split][metric]), "train_wall_s": round(result.wall_s, 1),
            "steps": int(result.steps), **counts(net)}


def fixed_batch(data, tokenizer, size: int):
    from prunepeft.train.loop import make_loader

    loader = make_loader(data.train, tokenizer, batch_size=size, shuffle=True, seed=0)
    return next(iter(loader))


def _step_fn(net, cfg):
    from prunepeft.train import build_param_groups

    model = net.model.train()
    groups = build_param_groups(peft=net.peft_parameters(), head=net.head_parameters(), train_cfg=cfg.train)
    opt = torch.optim.AdamW(groups, lr=float(cfg.train.lr_peft))

    def step(batch):
        opt.zero_grad(set_to_none=True)
        loss = model(**batch).loss
        loss.backward()
        opt.step()
    return step


def step_times(cfg, data, kept, blocks: int, per_block: int) -> dict:
    """Median seconds per optimizer step of each arm, interleaved block by block."""
    arms = {}
    for name, k in (("unpruned", None), ("pruned", kept)):
        net, tokenizer = lora_model(cfg, k, seed=0)
        arms[name] = _step_fn(net, cfg)
    batch = fixed_batch(data, tokenizer, int(cfg.train.batch_size))
    times: dict[str, list[float]] = {name: [] for name in arms}
    for name, step in arms.items():  # warm-up, not timed
        step(batch)
    for _ in range(blocks):
        for name, step in arms.items():
            for _ in range(per_block):
                t0 = time.perf_counter()
                step(batch)
                times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {"median_s": {k: round(v, 4) for k, v in med.items()}, "steps_per_arm": len(times["pruned"]),
            "batch": list(batch["input_ids"].shape), "ratio_pruned_over_unpruned": round(med["pruned"] / med["unpruned"], 3)}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_arm(args) -> None:
    """Subprocess body: peak RSS above the pre-model RSS over 3 training steps of one arm (prints JSON).

    `model_and_optimizer_mib` is not comparable between arms: the unpruned weights are memory-mapped
    from the safetensors file (resident once touched, in the forward), the pruned ones are copies.
    """
    from prunepeft.data import build_task_data
    from prunepeft.config.typed import DataSettings
    from prunepeft.arms.backbone_prune import KeptStructures

    cfg = compose(args.seeds[0], args)
    kept = KeptStructures.load(args.kept) if args.memory_arm == "pruned" else None
    from transformers import AutoTokenizer

    from prunepeft.models.loading import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source(cfg.model))  # no model loaded before `before`
    data = build_task_data(DataSettings.from_config(cfg), tok)
    batch = fixed_batch(data, tok, int(cfg.train.batch_size))
    before = _rss_bytes()
    net, _ = lora_model(cfg, kept, seed=0)
    step = _step_fn(net, cfg)
    loaded = _rss_bytes()
    peak = [loaded]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    for _ in range(3):
        step(batch)
    stop.set()
    th.join()
    mib = 2 ** 20
    print(json.dumps({"arm": args.memory_arm, "rss_before_model_mib": round(before / mib, 1),
                      "model_and_optimizer_mib": round((loaded - before) / mib, 1),
                      "peak_above_before_model_mib": round((peak[0] - before) / mib, 1),
                      "step_peak_above_loaded_mib": round((peak[0] - loaded) / mib, 1)}))


def memory(args, kept_path: Path) -> dict:
    """Two fresh subprocesses per arm, alternating; the ratio of the per-arm medians."""
    runs: dict[str, list[dict]] = {"unpruned": [], "pruned": []}
    for _ in range(2):
        for arm in runs:
            cmd = [sys.executable, __file__, "--memory-arm", arm, "--kept", str(kept_path), *args.passthrough]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[arm].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    key = "peak_above_before_model_mib"
    med = {arm: statistics.median(r[key] for r in rs) for arm, rs in runs.items()}
    return {"runs": runs, "median_peak_above_before_model_mib": med,
            "ratio_pruned_over_unpruned": round(med["pruned"] / med["unpruned"], 3),
            "note": "RSS sampled every 1 ms over 3 steps, minus the RSS before the model was loaded (data, torch "
                    "already resident); includes the weights touched, optimizer states, activations, allocator"}


def report(path: Path) -> list[str]:
    """BENCHMARKS §10.2's table from the committed JSON (nothing is run)."""
    r = json.loads(path.read_text())
    bp, lp, st, mem = r["backbone_params"], r["lora_params"], r["step_time"], r["memory"]
    runs = {arm: sorted(x["peak_above_before_model_mib"] for x in mem["runs"][arm]) for arm in ("unpruned", "pruned")}
    med = mem["median_peak_above_before_model_mib"]
    acc = {arm: " / ".join(f"{100 * s[arm]['accuracy']:.1f}" for s in r["per_seed"]) for arm in ("unpruned", "pruned")}
    seeds = " / ".join(str(s["seed"]) for s in r["per_seed"])
    ch = r["accuracy_change_points"]
    ratio = st["ratio_pruned_over_unpruned"]

    def rss(arm):
        return f"{med[arm]:.0f} (" + ", ".join(f"{x:.0f}" for x in runs[arm]) + ")"

    return [
        "| pruned vs unpruned backbone | unpruned | pruned | ratio |", "|---|---|---|---|",
        f"| base parameters | {bp['unpruned']:,} | {bp['pruned']:,} | {bp['pruned'] / bp['unpruned']:.3f} "
        f"({100 * (1 - bp['pruned'] / bp['unpruned']):.1f} % removed) |",
        f"| LoRA parameters (the same r on thinner q/v) | {lp['unpruned']:,} | {lp['pruned']:,} | "
        f"{lp['pruned'] / lp['unpruned']:.3f} |",
        f"| training step, median s (interleaved) | {st['median_s']['unpruned']:.3f} | {st['median_s']['pruned']:.3f} | "
        f"**{ratio:.3f}** ({1 / ratio:.2f}× faster) |",
        f"| peak RSS above the pre-model RSS, MiB (median of {len(runs['pruned'])}) | {rss('unpruned')} | {rss('pruned')} | "
        f"**{mem['ratio_pruned_over_unpruned']:.2f}** |",
        f"| dev accuracy ×100, seeds {seeds} | {acc['unpruned']} | {acc['pruned']} | change "
        f"**{ch['mean']:+.2f} ± {ch['sd']:.2f}** (mean ± sd, n = {ch['n']}) |",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--model", default="minilm_l6")
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--eval-subset", type=int, default=None)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--heads", type=float, default=1 / 3)
    p.add_argument("--ffn", type=float, default=1 / 3)
    p.add_argument("--steps", type=int, default=None, help="estimation steps (default: the search's rule)")
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--per-block", type=int, default=3)
    p.add_argument("--data-dir", default=str(GLUE))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the wiring in about a minute")
    p.add_argument("--memory-arm", choices=["unpruned", "pruned"], help=argparse.SUPPRESS)
    p.add_argument("--kept", help=argparse.SUPPRESS)
    p.add_argument("--report", action="store_true", help="print BENCHMARKS §10.2's table from --out, run nothing")
    args = p.parse_args()
    if args.report:
        print("\n".join(report(args.out)))
        return
    if args.smoke:
        args.seeds, args.train, args.eval_subset, args.epochs, args.steps = [1], 64, 64, 1, 2
        args.blocks, args.per_block = 1, 1
        args.out = Path("/tmp/backbone_prune_smoke.json") if args.out == OUT else args.out
    args.passthrough = [f"--seeds={args.seeds[0]}", f"--model={args.model}", f"--train={args.train}",
                        f"--max-length={args.max_length}", f"--epochs={args.epochs}", f"--data-dir={args.data_dir}",
                        *([f"--eval-subset={args.eval_subset}"] if args.eval_subset else [])]
    if args.memory_arm:
        memory_arm(args)
        return

    from prunepeft.config.typed import DataSettings, RunSettings
    from prunepeft.data import build_task_data
    from prunepeft.models import load_backbone
    from prunepeft.arms.backbone_prune import estimation_steps
    from prunepeft.arms import backbone_stage
    from prunepeft.arms import light_peft

    started = time.time()
    per_seed, first_kept, first_data, cfg0 = [], None, None, None
    for seed in args.seeds:
        cfg = compose(seed, args)
        _, tok = load_backbone(cfg.model, int(cfg.task.num_labels), seed)
        data = build_task_data(DataSettings.from_config(cfg), tok)
        t0 = time.time()
        settings = RunSettings.from_config(cfg)
        kept = backbone_stage.estimate(cfg.backbone_prune, settings, data.train)
        est_s = time.time() - t0
        retrain_steps = light_peft.retrain_steps(settings.search.retrain_epochs, int(cfg.train.batch_size), len(data.train))
        row = {"seed": seed, "estimation_steps": int(cfg.backbone_prune.steps or estimation_steps(retrain_steps)),
               "estimation_wall_s": round(est_s, 1), "heads_kept": kept.counts()[0], "neurons_kept": kept.counts()[1]}
        for name, k in (("unpruned", None), ("pruned", kept)):
            row[name] = train_arm(cfg, data, tok, k, seed)
            print(f"seed {seed} {name}: {row[name]}", flush=True)
        row["accuracy_change_points"] = round(100 * (row["pruned"]["accuracy"] - row["unpruned"]["accuracy"]), 2)
        per_seed.append(row)
        if first_kept is None:
            first_kept, first_data, cfg0 = kept, data, cfg
    timing = step_times(cfg0, first_data, first_kept, args.blocks, args.per_block)
    print(f"step time: {timing}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept_path = args.out.with_name(args.out.stem + "_kept_seed%d.json" % args.seeds[0])
    first_kept.save(kept_path)
    mem = memory(args, kept_path)
    print(f"memory: {mem}", flush=True)
    changes = [r["accuracy_change_points"] for r in per_seed]
    u, pr = per_seed[0]["unpruned"], per_seed[0]["pruned"]
    result = {
        "what": "early backbone pruning (backbone_prune.heads/ffn) vs the unpruned backbone, uniform LoRA r16, "
                "MiniLM-L6, SST-2", "command": "python -m benchmarks.backbone_prune_bench " + " ".join(sys.argv[1:]),
        "setting": {"model": args.model, "train_subset": args.train, "eval": "dev (872 rows)" if not args.eval_subset
                    else f"dev subset {args.eval_subset}", "epochs": args.epochs, "max_length": args.max_length,
                    "heads": args.heads, "ffn": args.ffn, "train_profile": "cpu (batch 32, lr 1e-3)",
                    "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                    "torch": torch.__version__},
        "backbone_params": {"unpruned": u["base"], "pruned": pr["base"],
                            "fraction_removed": round(1 - pr["base"] / u["base"], 4)},
        "lora_params": {"unpruned": u["peft"], "pruned": pr["peft"]},
        "per_seed": per_seed,
        "accuracy_change_points": {"mean": round(statistics.mean(changes), 2),
                                   "sd": round(statistics.stdev(changes), 2) if len(changes) > 1 else None,
                                   "n": len(changes)},
        "step_time": timing, "memory": mem, "wall_s": round(time.time() - started, 1),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("backbone_params", "accuracy_change_points", "step_time")}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
