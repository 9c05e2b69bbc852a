"""Memory estimate vs measured: one CPU training step of the search's supernet (issue 12, Deliver 6).

For each batch × length setting, in a fresh process each (the RSS high-water mark is per process):

  estimate   `prunepeft.commands.memory.estimate_for_run` for `prunepeft search model=<model> train=cpu
             train.device=cpu train.batch_size=B train.max_length=T` (what the run's banner prints)
  measured   the same model (prunepeft's loader), the full supernet over `search_space`, prunepeft's
             AdamW, in train mode (dropout on), on a B × T batch with no padding, 5 steps:
             - rss:    peak RSS over the 5 steps (VmHWM, reset through /proc/self/clear_refs before
                       the first step) minus the RSS after imports, config and a warm-up op, before
                       the model is loaded;
             - tensor: the peak of live tensor bytes over the first step (torch.profiler memory
                       events), plus the weights: the allocator's view, like cuda.max_memory_allocated.

    python -m benchmarks.memory_check                         # MiniLM-L6, 32x64,16x128,32x128,8x256
    python -m benchmarks.memory_check --settings 32x64 --override 'search_space=[lora]'   # uniform LoRA
    MALLOC_MMAP_THRESHOLD_=131072 python -m benchmarks.memory_check   # glibc returning freed blocks

Linux only (VmHWM, clear_refs).
"""
from __future__ import annotations

import argparse
import gc
import json
import re
import subprocess
import sys

MIB = 2**20


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\s+(\d+)", f.read()).group(1)) * 1024


def measure(model_name: str, batch: int, length: int, mode: str, threads: int, overrides: list[str]) -> dict:
    """One setting in this process: the estimate and one measurement (`rss` or `tensor`)."""
    import torch

    from prunepeft.config.compose import compose_config
    from prunepeft.models import get_family, load_backbone
    from prunepeft.peft import Supernet, UnitSizes
    from prunepeft.commands.memory import estimate_for_run
    from prunepeft.train.optim import build_optimizer, build_param_groups

    torch.set_num_threads(threads)
    x = torch.randn(8, 8, requires_grad=True)  # warm the framework's lazy state before the baseline
    torch.nn.functional.gelu(x @ x).sum().backward()
    del x
    cfg = compose_config("search", [f"model={model_name}", "train=cpu", "train.device=cpu",
                                    f"train.batch_size={batch}", f"train.max_length={length}", "task=rte",
                                    *overrides])
    est = estimate_for_run(cfg, "search")
    gc.collect()
    rss_start = _status("VmRSS")  # the framework, imports and config are not the run's to count
    model, _ = load_backbone(cfg.model, int(cfg.task.num_labels), seed=0)
    sizes = UnitSizes.from_model(cfg.model)
    net = Supernet.build(model, get_family(cfg.model.family), list(cfg.search_space), sizes,
                         int(model.config.hidden_size))
    model.train()
    opt = build_optimizer(build_param_groups(peft=net.peft_parameters(), head=net.head_parameters(),
                                             train_cfg=cfg.train))
    g = torch.Generator().manual_seed(0)
    vocab = int(model.config.vocab_size)
    inputs = {"input_ids": torch.randint(5, vocab, (batch, length), generator=g),
              "attention_mask": torch.ones(batch, length, dtype=torch.long),
              "labels": torch.randint(0, 2, (batch,), generator=g)}
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    gc.collect()

    def step() -> None:
        model(**inputs).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    out = {"model": model_name, "batch": batch, "length": length, "mode": mode,
           "attn": model.config._attn_implementation,
           "est_weights": est.weights / MIB, "est_states": est.trainable_states / MIB,
           "est_activations": est.activations / MIB, "est_slack": est.allocator_slack / MIB,
           "est_allocated": est.allocated / MIB, "est_total": est.total / MIB}
    if mode == "rss":
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        step()
        out["measured_first_step"] = (_status("VmHWM") - rss_start) / MIB
        for _ in range(4):  # the RSS peak grows over the first steps, then stays (checked to step 13)
            step()
        out["measured"] = (_status("VmHWM") - rss_start) / MIB
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
        events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                        key=lambda e: e.start_ns())
        live = peak = 0
        for e in events:
            live += e.nbytes()
            peak = max(peak, live)
        out["measured"] = (weights + peak) / MIB
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm_l6")
    p.add_argument("--settings", default="32x64,16x128,32x128,8x256", help="comma list of BATCHxLENGTH")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--override", action="append", default=[],
                   help="an extra config override, e.g. 'search_space=[lora]' (repeatable)")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--single", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.single:
        b, t, mode = args.single.split(":")
        print(json.dumps(measure(args.model, int(b), int(t), mode, args.threads, args.override)))
        return
    rows = []
    for setting in args.settings.split(","):
        b, t = setting.lower().split("x")
        row: dict = {}
        for mode in ("rss", "tensor"):
            res = subprocess.run([sys.executable, __file__, "--model", args.model, "--threads", str(args.threads),
                                  *(f"--override={o}" for o in args.override), "--single", f"{b}:{t}:{mode}"],
                                 capture_output=True, text=True, check=True)
            one = json.loads(res.stdout.strip().splitlines()[-1])
            row.update({k: v for k, v in one.items() if k not in ("mode", "measured", "measured_first_step")})
            if "measured_first_step" in one:
                row["measured_rss_first_step"] = one["measured_first_step"]
            row[f"measured_{mode}"] = one["measured"]
        rows.append(row)
    print(f"| {args.model} B×T | estimate: weights / states / activations / CPU slack (MiB) | estimate allocated | "
          "measured tensor peak | allocated/tensor | estimate total | measured peak RSS | total/RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']}×{r['length']} | {r['est_weights']:.0f} / {r['est_states']:.1f} / "
              f"{r['est_activations']:.0f} / {r['est_slack']:.0f} | {r['est_allocated']:.0f} | "
              f"{r['measured_tensor']:.0f} | {r['est_allocated'] / r['measured_tensor']:.2f} | {r['est_total']:.0f} | "
              f"{r['measured_rss']:.0f} | {r['est_total'] / r['measured_rss']:.2f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
