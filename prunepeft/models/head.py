"""Where a regression head starts (`train.regression_head_bias`, docs/method.md#regression-head).

A freshly initialised head outputs about 0, while STS-B's similarity scores average 2.7 on a 0-5 scale.
Under AdamW a parameter moves about one learning rate per step, so at the PEFT rate (1e-3) the output bias
needs some 2,700 steps just to reach the labels' mean; until then the MSE gradient mostly says "higher"
for every example, and the units learn little of the ranking that Pearson and Spearman measure. At
`scale=cpu` (126 steps) uniform LoRA's dev Pearson on STS-B was 0.16 with the bias at 0 and 0.80 with it at
the mean (same seed, 2 epochs each; BENCHMARKS §16). `label_mean` starts the output layer's bias at the training labels'
mean: the least-squares value of a bias alone, and a constant shift leaves Pearson and Spearman unchanged,
so only the learning changes, never what the metric means. Classification heads are left as initialised.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

from prunepeft.errors import check_choice
from prunepeft.models.families import Family

log = logging.getLogger(__name__)

HEAD_BIAS = ("label_mean", "zero")  # train.regression_head_bias


def output_layer(model: nn.Module, family: Family) -> Optional[nn.Linear]:
    """The head's last Linear (BERT `classifier`, RoBERTa `classifier.out_proj`, Llama `score`), or None."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(name == p or name.startswith(p + ".") for p in family.head_prefixes):
            last = module
    return last


def start_regression_head(model: nn.Module, family: Family, labels: Sequence[float], how: str) -> Optional[float]:
    """Set a regression head's output bias to the mean of `labels` (how="label_mean"); returns the value
    set, or None where nothing was set (how="zero", a classification head, a head without a bias)."""
    how = check_choice("train.regression_head_bias", str(how), HEAD_BIAS)
    layer = output_layer(model, family)
    if how == "zero" or layer is None or layer.out_features != 1:
        return None
    if layer.bias is None:
        log.warning("train.regression_head_bias=label_mean: the %s head's output layer has no bias; it starts at 0",
                    family.name)
        return None
    mean = float(torch.as_tensor(list(labels), dtype=torch.float64).mean())
    with torch.no_grad():
        layer.bias.fill_(mean)
    log.info("regression head: output bias starts at the training labels' mean %.4f "
             "(train.regression_head_bias=label_mean)", mean)
    return mean
