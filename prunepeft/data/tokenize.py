"""Tokenise a split once per process; batch it with dynamic padding and seeded shuffling."""
from __future__ import annotations

import hashlib
import weakref
from typing import Any

import torch
from datasets import Dataset, Features, List, Value
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from prunepeft.data.glue import column_values
from prunepeft.errors import UserError

MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")

# tokenizer -> {(dataset fingerprint, text fields, label field, regression, max_length): Dataset}.
# Weak keys: a tokenizer that is garbage-collected takes its cached splits with it.
_CACHE: "weakref.WeakKeyDictionary[Any, dict[tuple, Dataset]]" = weakref.WeakKeyDictionary()


def clear_cache() -> None:
    """Forget every tokenised split (tests; long-lived processes switching tokenizers)."""
    _CACHE.clear()


def _texts(ds: Dataset, field: str) -> list[str]:
    return [t if t is not None else "" for t in column_values(ds, field)]


def _features(enc_keys: list[str], regression: bool) -> Features:
    feats = {k: List(Value("int32")) for k in enc_keys}
    feats["labels"] = Value("float32" if regression else "int64")
    return Features(feats)


def tokenize_split(ds: Dataset, tokenizer: Any, task: Any, max_length: int) -> Dataset:
    """Tokenise `ds` for `task` (pairs as pairs), truncating to `max_length`; cached per process.

    Args:
        ds: a raw split with `task.text_fields` and `task.label_field`.
        tokenizer: a Hugging Face tokenizer (fast or slow).
        task: TaskConfig (text_fields: one field or a pair; label_field; num_labels, 1 = regression).
        max_length: longest sequence kept (tokens beyond it are cut, longest field first for pairs).

    Returns:
        A Dataset with input_ids, attention_mask, token_type_ids (if the tokenizer makes them) and
        labels (int64; float32 for regression); no padding (that happens per batch).
    """
    fields = tuple(task.text_fields)
    regression = int(task.num_labels) == 1
    if len(fields) not in (1, 2):
        raise UserError(f"task {task.name!r} needs 1 or 2 text_fields, got {list(fields)}")
    key = (ds._fingerprint, fields, task.label_field, regression, int(max_length))
    try:
        per_tok = _CACHE.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: no caching
        per_tok = {}
    if key in per_tok:
        return per_tok[key]
    texts = [_texts(ds, f) for f in fields]
    enc = tokenizer(*texts, truncation=True, max_length=int(max_length))
    keep = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    columns = {k: enc[k] for k in keep}
    labels = column_values(ds, task.label_field)
    columns["labels"] = labels.astype("float32" if regression else "int64")
    # A fingerprint derived from the inputs keeps later `select`s deterministic across processes.
    ident = f"{key}|{getattr(tokenizer, 'name_or_path', '')}|{len(tokenizer)}|{type(tokenizer).__name__}"
    fingerprint = hashlib.sha1(ident.encode()).hexdigest()[:16]
    out = Dataset.from_dict(columns, features=_features(keep, regression))
    out._fingerprint = fingerprint
    per_tok[key] = out
    return out


def make_loader(ds: Dataset, tokenizer: Any, batch_size: int, shuffle: bool, seed: int,
                group_by_length: bool = False) -> DataLoader:
    """Batches of tensors padded to the longest sequence in each batch (dynamic padding).

    Args:
        ds: a tokenised split (`tokenize_split`); other columns are dropped.
        tokenizer: the tokenizer that made it (its pad token and padding side are used).
        batch_size: rows per batch.
        shuffle: reshuffle every epoch, driven by a generator seeded with `seed` (same seed, same
            order of batches in every run; each epoch still gets a fresh order).
        seed: the shuffling seed.
        group_by_length: with `shuffle`, draw batches of rows of similar length (`train.group_by_length`,
            transformers' `LengthGroupedSampler`, seeded by the same generator): less padding, same rows.
    """
    cols = [c for c in MODEL_COLUMNS if c in ds.column_names]
    if "labels" not in cols or "input_ids" not in cols:
        raise ValueError(f"make_loader needs a tokenised dataset; got columns {ds.column_names}")
    ds = ds.select_columns(cols)
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    collator = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    if shuffle and group_by_length:
        # Imported here: transformers.trainer_pt_utils costs ~2.5 s to import, the default never needs it.
        from transformers.trainer_pt_utils import LengthGroupedSampler

        lengths = [len(ids) for ids in ds["input_ids"]]
        sampler = LengthGroupedSampler(int(batch_size), lengths=lengths, generator=gen)
        return DataLoader(ds, batch_size=int(batch_size), sampler=sampler, collate_fn=collator)
    return DataLoader(ds, batch_size=int(batch_size), shuffle=shuffle, generator=gen if shuffle else None,
                      collate_fn=collator)
