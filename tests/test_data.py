"""Data: loading real GLUE parquet, column/file errors, stratified subsets, tokenising, loaders."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset, DatasetDict

from prunepeft.config.schema import TaskConfig
from prunepeft.config.typed import DataSettings
from prunepeft.data import (
    build_task_data,
    load_raw_splits,
    make_loader,
    stratified_subset,
    subset_count,
    tokenize_split,
)
from prunepeft.data.subsets import allocate, strata
from prunepeft.errors import UserError
from tokenizer_helpers import char_tokenizer

RTE = TaskConfig(name="rte", hub_config="rte", text_fields=["sentence1", "sentence2"])
SST2 = TaskConfig(name="sst2", hub_config="sst2", text_fields=["sentence"])
COLA = TaskConfig(name="cola", hub_config="cola", text_fields=["sentence"], metrics=["mcc"], primary_metric="mcc")
STSB = TaskConfig(name="stsb", hub_config="stsb", text_fields=["sentence1", "sentence2"], num_labels=1)


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def _labels(ds, col="label"):
    return np.asarray(ds.with_format("arrow")[:][col].to_numpy())


# ---------------------------------------------------------------- loading and errors
def test_load_local_rte(glue_dir):
    raw = load_raw_splits(RTE, str(glue_dir))
    assert list(raw) == ["train", "validation"]
    assert (len(raw["train"]), len(raw["validation"])) == (2490, 277)
    # README: validation has 146 entailment (0) / 131 not_entailment (1).
    assert Counter(_labels(raw["validation"]).tolist()) == {0: 146, 1: 131}
    assert {"sentence1", "sentence2", "label"} <= set(raw["train"].column_names)


def test_env_var_is_the_fallback_dir(glue_dir, monkeypatch):
    monkeypatch.setenv("PRUNEPEFT_DATA_DIR", str(glue_dir))
    assert len(load_raw_splits(COLA, None)["validation"]) == 1043


def test_hub_path_uses_load_dataset(monkeypatch):
    import datasets

    calls = []
    rows = {"sentence": ["a", "b"], "label": [0, 1]}

    def fake_load(path, name, cache_dir=None):
        calls.append((path, name))
        return DatasetDict(train=Dataset.from_dict(rows), validation=Dataset.from_dict(rows))

    monkeypatch.delenv("PRUNEPEFT_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    assert len(load_raw_splits(SST2, None)["validation"]) == 2
    assert calls == [("nyu-mll/glue", "sst2")]
    with pytest.raises(UserError, match="split 'dev' not in nyu-mll/glue/sst2; available: train, validation"):
        load_raw_splits(TaskConfig(name="sst2", hub_config="sst2", text_fields=["sentence"], eval_splits=["dev"]), None)


def test_hub_failure_says_how_to_use_local_files(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.delenv("PRUNEPEFT_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match=r"cannot load nyu-mll/glue/rte .*no network.*data\.dir"):
        load_raw_splits(RTE, None)


def test_missing_dir_names_path_and_layout(tmp_path):
    with pytest.raises(UserError, match=rf"{tmp_path / 'nope'} does not exist.*<dir>/<task>/<split>\.parquet"):
        load_raw_splits(RTE, str(tmp_path / "nope"))


def test_missing_split_file_names_it(tmp_path, glue_dir):
    (tmp_path / "rte").mkdir()
    (tmp_path / "rte" / "train.parquet").write_bytes((glue_dir / "rte" / "train.parquet").read_bytes())
    with pytest.raises(UserError, match=rf"missing data file {tmp_path / 'rte' / 'validation.parquet'}.*found in .*train\.parquet"):
        load_raw_splits(RTE, str(tmp_path))


def test_unreadable_parquet_names_the_file(tmp_path):
    (tmp_path / "rte").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "rte" / f"{split}.parquet").write_text("not parquet at all")
    with pytest.raises(UserError, match=rf"cannot read Parquet file {tmp_path / 'rte' / 'train.parquet'}"):
        load_raw_splits(RTE, str(tmp_path))


def test_missing_columns_named_with_present_ones(tmp_path):
    (tmp_path / "rte").mkdir()
    for split in ("train", "validation"):
        pd.DataFrame({"sentence1": ["a"], "idx": [0]}).to_parquet(tmp_path / "rte" / f"{split}.parquet")
    with pytest.raises(UserError, match=r"lacks column\(s\) sentence2, label .*columns present: sentence1, idx"):
        load_raw_splits(RTE, str(tmp_path))


def test_unlabelled_test_split_and_bad_labels(glue_dir, tmp_path):
    with pytest.raises(UserError, match="unlabelled"):
        load_raw_splits(TaskConfig(name="rte", hub_config="rte", text_fields=["sentence1", "sentence2"],
                                   eval_splits=["test"]), str(glue_dir))
    three = TaskConfig(name="rte", hub_config="rte", text_fields=["sentence1", "sentence2"], num_labels=1)
    assert len(load_raw_splits(three, str(glue_dir))["train"]) == 2490  # regression: any float is fine
    (tmp_path / "sst2").mkdir()
    for split in ("train", "validation"):
        pd.DataFrame({"sentence": ["a", "b"], "label": [0, 5]}).to_parquet(tmp_path / "sst2" / f"{split}.parquet")
    with pytest.raises(UserError, match=r"label\(s\) \[5\] outside 0\.\.1"):
        load_raw_splits(SST2, str(tmp_path))


# ---------------------------------------------------------------- stratified subsets
def test_allocate_largest_remainder_and_min_one():
    assert allocate(np.array([2528, 6023]), 500).tolist() == [148, 352]  # exact 147.8 / 352.2
    assert allocate(np.array([97, 2, 1]), 10).tolist() == [8, 1, 1]  # every class kept


def test_subset_count_rules():
    assert subset_count(None, 100) == 100
    assert subset_count(2000.0, 5000) == 2000  # Hydra hands counts over as floats
    assert subset_count(0.1, 2490) == 249
    assert subset_count(1, 277) == 277  # 1 is the fraction 100 %
    for bad, msg in [(0, "must be > 0"), (-3, "must be > 0"), (0.001, "selects no rows"), (101, "exceeds the 100 rows")]:
        with pytest.raises(UserError, match=msg):
            subset_count(bad, 100)


def test_class_proportions_kept_within_one(glue_dir):
    cola = load_raw_splits(COLA, str(glue_dir))["train"]
    full = Counter(_labels(cola).tolist())
    sub = stratified_subset(cola, 500, seed=0, label_column="label", regression=False)
    got = Counter(_labels(sub).tolist())
    assert sum(got.values()) == 500 and set(got) == {0, 1}
    for c in full:
        assert abs(got[c] - 500 * full[c] / len(cola)) < 1
    idx = _labels(sub, "idx")
    assert (np.diff(idx) > 0).all()  # original order


def test_seed_determinism_and_fraction(glue_dir):
    rte = load_raw_splits(RTE, str(glue_dir))["train"]
    a = _labels(stratified_subset(rte, 0.1, 3, "label", False), "idx")
    b = _labels(stratified_subset(rte, 0.1, 3, "label", False), "idx")
    c = _labels(stratified_subset(rte, 0.1, 4, "label", False), "idx")
    assert len(a) == 249 and (a == b).all() and set(a) != set(c)
    assert stratified_subset(rte, None, 3, "label", False) is rte
    assert len(stratified_subset(rte, 1.0, 3, "label", False)) == 2490


def test_all_classes_kept_three_way_and_rare():
    labels = [0] * 97 + [1] * 2 + [2] * 1
    ds = Dataset.from_dict({"label": labels, "i": list(range(100))})
    sub = stratified_subset(ds, 10, seed=1, label_column="label", regression=False)
    assert Counter(_labels(sub).tolist()) == {0: 8, 1: 1, 2: 1}
    mnli_like = Dataset.from_dict({"label": [0, 1, 2] * 40})
    assert Counter(_labels(stratified_subset(mnli_like, 30, 0, "label", False)).tolist()) == {0: 10, 1: 10, 2: 10}
    with pytest.raises(UserError, match="cannot keep all 3 label strata"):
        stratified_subset(ds, 2, seed=1, label_column="label", regression=False)


def test_regression_stratifies_on_five_quantile_bins(glue_dir):
    stsb = load_raw_splits(STSB, str(glue_dir))["train"]
    y = _labels(stsb)
    bins = strata(y, regression=True)
    assert set(bins.tolist()) == {0, 1, 2, 3, 4}
    sub = stratified_subset(stsb, 100, seed=0, label_column="label", regression=True)
    picked = np.isin(_labels(stsb, "idx"), _labels(sub, "idx"))
    for b in range(5):
        exact = 100 * (bins == b).sum() / len(y)
        assert abs((bins[picked] == b).sum() - exact) < 1


# ---------------------------------------------------------------- tokenising and loaders
def test_pairs_tokenised_as_pairs_singles_as_singles(glue_dir, tok):
    rte = tokenize_split(load_raw_splits(RTE, str(glue_dir))["validation"], tok, RTE, max_length=512)
    sep = tok.sep_token_id
    row = rte[0]
    assert row["input_ids"].count(sep) == 2 and 1 in row["token_type_ids"]
    assert rte.features["labels"].dtype == "int64"
    sst = tokenize_split(load_raw_splits(SST2, str(glue_dir))["validation"], tok, SST2, max_length=512)
    assert sst[0]["input_ids"].count(sep) == 1 and set(sst[0]["token_type_ids"]) == {0}
    assert set(sst.column_names) == {"input_ids", "attention_mask", "token_type_ids", "labels"}


def test_truncation_labels_and_regression_dtype(glue_dir, tok):
    raw = load_raw_splits(STSB, str(glue_dir))["validation"].select(range(300))
    ds = tokenize_split(raw, tok, STSB, max_length=16)
    lengths = [len(x) for x in ds["input_ids"]]
    assert max(lengths) == 16 and ds.features["labels"].dtype == "float32"
    assert np.allclose(_labels(ds, "labels"), _labels(raw))


def test_no_token_type_ids_when_tokenizer_has_none(glue_dir):
    ds = tokenize_split(load_raw_splits(RTE, str(glue_dir))["validation"], char_tokenizer(False), RTE, 64)
    assert "token_type_ids" not in ds.column_names


def test_tokenise_once_per_process(glue_dir, tok):
    def split():
        return load_raw_splits(RTE, str(glue_dir))["validation"]

    first = tokenize_split(split(), tok, RTE, 64)
    # Re-loading the file yields the same raw dataset, so the tokenised split comes from the cache.
    assert tokenize_split(split(), tok, RTE, 64) is first
    # The same rows chosen again (deterministic `select` fingerprint) also hit the cache.
    sub = tokenize_split(stratified_subset(split(), 20, 0, "label", False), tok, RTE, 64)
    assert tokenize_split(stratified_subset(split(), 20, 0, "label", False), tok, RTE, 64) is sub
    assert tokenize_split(split(), tok, RTE, 32) is not first
    assert tokenize_split(split(), char_tokenizer(), RTE, 64) is not first


def test_loader_dynamic_padding_and_seeded_shuffle(glue_dir, tok):
    ds = tokenize_split(load_raw_splits(RTE, str(glue_dir))["validation"], tok, RTE, 128)
    lengths = [len(x) for x in ds["input_ids"]]
    batches = list(make_loader(ds, tok, batch_size=8, shuffle=False, seed=0))
    assert batches[0]["input_ids"].shape == (8, max(lengths[:8]))  # padded to the batch's longest
    assert batches[0]["labels"].tolist() == _labels(ds, "labels")[:8].tolist()
    assert set(batches[0]) == {"input_ids", "attention_mask", "token_type_ids", "labels"}

    def order(loader):
        return [tuple(b["labels"].tolist()) + (int(b["attention_mask"].sum()),) for b in loader]

    l0, l0b, l1 = (make_loader(ds, tok, 8, True, s) for s in (0, 0, 1))
    e1 = order(l0)
    assert e1 == order(l0b) and e1 != order(l1)
    assert order(l0) != e1  # a fresh order in the next epoch



def test_group_by_length_keeps_every_row_pads_less_and_is_seeded(glue_dir, tok):
    # RTE's validation pairs, untruncated, vary several-fold in length: random batches of 8 pad each
    # row to their longest.
    ds = tokenize_split(load_raw_splits(RTE, str(glue_dir))["validation"], tok, RTE, 1024)
    ids = [tuple(x) for x in ds["input_ids"]]

    def epoch(loader):
        rows, padded = [], 0
        for b in loader:
            padded += int(b["input_ids"].numel())
            rows += [tuple(r[m.bool()].tolist()) for r, m in zip(b["input_ids"], b["attention_mask"])]
        return rows, padded

    grouped = make_loader(ds, tok, 8, True, seed=3, group_by_length=True)
    rows, padded = epoch(grouped)
    assert Counter(rows) == Counter(ids)  # every row once per epoch, none dropped or repeated
    _, padded_random = epoch(make_loader(ds, tok, 8, True, seed=3))
    real = sum(len(x) for x in ids)
    assert real <= padded < padded_random  # fewer pad tokens than random batches of the same size
    assert padded - real < 0.5 * (padded_random - real)
    again, _ = epoch(make_loader(ds, tok, 8, True, seed=3, group_by_length=True))
    assert again == rows  # same seed, same order
    assert epoch(grouped)[0] != rows  # the next epoch draws a fresh order
    assert epoch(make_loader(ds, tok, 8, True, seed=4, group_by_length=True))[0] != rows
    # Evaluation loaders (shuffle=False) keep the file's order whatever the flag says.
    plain = epoch(make_loader(ds, tok, 8, False, seed=0, group_by_length=True))[0]
    assert plain == ids

# ---------------------------------------------------------------- build_task_data
def test_build_task_data_rte_slice(glue_dir, tok, tiny_overrides, compose_cfg):
    cfg = compose_cfg("baseline", tiny_overrides)
    data = build_task_data(DataSettings.from_config(cfg), tok)
    assert (len(data.train), len(data.evals["validation"]), data.train_size_full) == (64, 32, 2490)
    assert Counter(_labels(data.train, "labels").tolist()) == {0: 32, 1: 32}
    assert max(len(x) for x in data.train["input_ids"]) <= cfg.train.max_length
    other = build_task_data(DataSettings.from_config(compose_cfg("baseline", tiny_overrides + ["seed=7"])), tok)
    assert data.train["input_ids"] != other.train["input_ids"]
    frac = build_task_data(DataSettings.from_config(compose_cfg("baseline", tiny_overrides + ["data.train_subset=0.1"])), tok)
    assert len(frac.train) == 249


def test_build_task_data_mnli_three_classes(tmp_path, tok, compose_cfg):
    # No MNLI in the shared data: a synthetic file set with its schema and split names.
    (tmp_path / "mnli").mkdir()
    for split, n in [("train", 90), ("validation_matched", 30), ("validation_mismatched", 30)]:
        pd.DataFrame({"premise": [f"p {i}" for i in range(n)], "hypothesis": [f"h {i}" for i in range(n)],
                      "label": [i % 3 for i in range(n)], "idx": list(range(n))}).to_parquet(tmp_path / "mnli" / f"{split}.parquet")
    cfg = compose_cfg("baseline", ["model=tiny_bert", "task=mnli", "train=test", f"data.dir={tmp_path}",
                                      "data.train_subset=12", "data.eval_subset=0.5"])
    data = build_task_data(DataSettings.from_config(cfg), tok)
    assert Counter(_labels(data.train, "labels").tolist()) == {0: 4, 1: 4, 2: 4}
    assert list(data.evals) == ["validation_matched", "validation_mismatched"]
    assert all(len(ds) == 15 for ds in data.evals.values())


def test_build_task_data_missing_dir(tmp_path, tok, compose_cfg):
    cfg = compose_cfg("baseline", ["model=tiny_bert", "task=rte", f"data.dir={tmp_path / 'absent'}"])
    with pytest.raises(UserError, match="does not exist"):
        build_task_data(DataSettings.from_config(cfg), tok)
