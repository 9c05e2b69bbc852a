"""The README.md (model card) written beside every export: what it is, how to load it, where it came from."""
from __future__ import annotations

from typing import Any

from prunepeft.peft.export import EXPORT_FILE


def model_card(*, fmt: str, model_id: str | None, model_name: str | None, task: str, metric: dict[str, Any],
               found: dict[str, Any], budget: str, command: str, adapters: list[str] | None = None,
               out: str = "<this directory>", num_labels: int | None = None) -> str:
    """README.md of an export: what it is, how to load it, and where it came from.

    Args:
        fmt: "peft" or "prunepeft".
        metric: summary.json's `primary` ({split, metric, value}).
        found: found_config.json's content.
        budget: the parameter budget, in words.
        command: the command line that made the run.
        adapters: peft adapter names (peft format).
    """
    base = model_id or model_name or "unknown"
    tags = ["prunepeft", "text-classification", *(["peft", "lora"] if fmt == "peft" else [])]
    front = ["---", f"base_model: {base}" if model_id else "", f"library_name: {'peft' if fmt == 'peft' else 'prunepeft'}",
             "pipeline_tag: text-classification", "tags:", *(f"- {t}" for t in tags), "---", ""]
    value = metric.get("value")
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"
    params = found.get("params", {})
    lines = [line for line in front if line != ""] + [
        "",
        f"# {task} adapter for {base}, found by PrunePEFT",
        "",
        f"A parameter-efficient fine-tuning configuration of `{base}` for the GLUE task **{task}**, found by "
        "[prunepeft](https://arxiv.org/abs/2506.07587) (iterative hybrid pruning of a supernet of LoRA/DoRA/"
        "adapter units) and retrained.",
        "",
        f"- **Task:** {task}; **{metric.get('metric', 'metric')}** on {metric.get('split', 'validation')} = {shown} "
        "(last retrain epoch)",
        f"- **Budget:** {budget}; found {params.get('peft', '?'):,} PEFT parameters "
        f"({float(params.get('percent_of_base', 0.0)):.3f}% of the base model's {params.get('base', 0):,})"
        if isinstance(params.get("peft"), int) else f"- **Budget:** {budget}",
        f"- **Command:** `{command}`",
        f"- **Format:** {fmt}",
        "",
        "## Found configuration",
        "",
        "| layer | units |",
        "|--:|:--|",
    ]
    for entry in found.get("layers", []):
        units = ", ".join(f"{u['type']} ({', '.join(f'{k}={v}' for k, v in u.get('sizes', {}).items())})"
                          for u in entry.get("units", [])) or "-"
        lines.append(f"| {entry['layer']} | {units} |")
    lines += ["", "## Load it", "", "```python"]
    if fmt == "peft":
        lines += ["from peft import PeftModel",
                  "from transformers import AutoModelForSequenceClassification",
                  f"base = AutoModelForSequenceClassification.from_pretrained({base!r}, num_labels={num_labels or '...'})",
                  f"model = PeftModel.from_pretrained(base, {out!r})"]
        if adapters and len(adapters) > 1:
            lines += [f"model.load_adapter({out + '/' + adapters[1]!r}, adapter_name={adapters[1]!r})",
                      "from peft.tuners.lora import LoraLayer  # both adapters together (DoRA first):",
                      "for m in model.modules():",
                      f"    if isinstance(m, LoraLayer): m.set_adapter({adapters!r})"]
    else:
        lines += ["import prunepeft", f"model, tokenizer = prunepeft.load_export({out!r})"]
    lines += ["```", ""]
    if fmt == "prunepeft":
        lines += ["This configuration keeps serial (bottleneck) adapter units. **peft has no bottleneck adapters**, "
                  "so it cannot be a peft adapter; this directory holds the configuration "
                  f"(`{EXPORT_FILE}`, `found_config.json`) and the weights (`units.safetensors`, "
                  "`head.safetensors`), and `prunepeft.load_export` rebuilds the model from it alone.", ""]
    return "\n".join(lines)
