"""Decoder classification heads (Llama, Qwen2, Mistral) pool the last real token, whatever the padding.

HF's `*ForSequenceClassification` for decoders classifies from the last token whose id is not
`config.pad_token_id`; with the pad id set right, a left- or right-padded batch gives each sequence
the logits it gets alone (RoPE is relative, so the shifted positions of left padding do not matter).
"""
from __future__ import annotations

import pytest
import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast

from prunepeft.models.families import get_family
from prunepeft.models.loading import _set_pad_token, load_backbone

TEXTS = [("the cat sat on the mat", "a cat sat"), ("no", "yes it is a long answer to a short question")]


def _pad(rows: list[list[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids, mask = [], []
    for row in rows:
        fill = [pad_id] * (width - len(row))
        ids.append(fill + row if side == "left" else row + fill)
        ones, zeros = [1] * len(row), [0] * (width - len(row))
        mask.append(zeros + ones if side == "left" else ones + zeros)
    return torch.tensor(ids), torch.tensor(mask)


@pytest.mark.parametrize("overrides", [["model=tiny_llama"], ["model=tiny_qwen2"],
                                       ["model=tiny_llama", "model.family=mistral"]],
                         ids=["llama", "qwen2", "mistral"])
def test_decoder_padding_left_right_same_logits(compose_cfg, overrides):
    cfg = compose_cfg("search", [*overrides, "task=rte"])
    model, tokenizer = load_backbone(cfg.model, 2, seed=0)
    assert type(model).__name__.lower().startswith(get_family(cfg.model.family).name)
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    assert tokenizer.padding_side == "right"
    rows = [tokenizer(a, b)["input_ids"] for a, b in TEXTS]
    assert len(set(map(len, rows))) > 1 and all(tokenizer.pad_token_id not in r for r in rows)
    with torch.no_grad():
        alone = torch.cat([model(input_ids=torch.tensor([r])).logits for r in rows])
        for side in ("right", "left"):
            ids, mask = _pad(rows, tokenizer.pad_token_id, side)
            logits = model(input_ids=ids, attention_mask=mask).logits
            torch.testing.assert_close(logits, alone, rtol=1e-4, atol=1e-5, msg=f"{side} padding")
    # The run's collator pads on the right with the pad id the head looks for.
    batch = DataCollatorWithPadding(tokenizer, return_tensors="pt")(
        [{"input_ids": r, "attention_mask": [1] * len(r)} for r in rows])
    short = min(range(len(rows)), key=lambda i: len(rows[i]))
    assert batch["input_ids"][short, -1].item() == tokenizer.pad_token_id
    assert batch["attention_mask"][short, -1].item() == 0


def test_decoder_without_pad_token_pads_with_eos_on_the_right(compose_cfg):
    """A pretrained decoder tokenizer without a pad token (Llama-3, Mistral), padding on the left."""
    cfg = compose_cfg("search", ["model=tiny_llama", "task=rte"])
    model, tokenizer = load_backbone(cfg.model, 2, seed=0)
    bare = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>", padding_side="left")
    model.config.pad_token_id = None
    _set_pad_token(model, bare, get_family("llama"))
    assert bare.pad_token == "</s>" and model.config.pad_token_id == bare.eos_token_id
    assert bare.padding_side == "right"
