"""The hub path, exercised offline: a model by hub id, GLUE by dataset id (`nyu-mll/glue`).

Nothing here touches the network. The model test builds a hub-layout cache
(`models--org--name/{refs/main,snapshots/<commit>}`) in a temporary directory, points
huggingface_hub's cache there with offline mode on, and loads `model=roberta_base` through the real
`from_pretrained` calls (spied on, to assert the hub id and arguments). The data test writes the
Arrow cache datasets itself writes for `nyu-mll/glue` (`nyu-mll___glue/rte/0.0.0/<commit>/`) from the
real RTE parquet files and loads it with `HF_DATASETS_OFFLINE=1` through the real
`datasets.load_dataset` (not replaced; only the offline switches that datasets reads at import are
set, and any socket connect fails). So these test the cached path and our column and split
handling, not network resolution.
"""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import datasets
import huggingface_hub.constants as hf_constants
import pytest
from datasets import Dataset

from prunepeft.data.glue import load_raw_splits
from prunepeft.data.task_data import build_task_data
from prunepeft.config.typed import DataSettings
from prunepeft.errors import UserError
from prunepeft.models import loading
from prunepeft.models.tiny import build_tiny

HUB_ID = "FacebookAI/roberta-base"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def offline_hub_cache(tmp_path, monkeypatch, compose_cfg):
    """A hub-layout cache holding a tiny RoBERTa under the roberta_base hub id; offline mode on."""
    tiny = compose_cfg("search", ["model=tiny_roberta"]).model
    model, tokenizer = build_tiny(tiny, 2, seed=0)
    repo = tmp_path / "hub" / ("models--" + HUB_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    model.base_model.save_pretrained(snapshot)  # a pretrained backbone: no classification head
    tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return model


def _spy(monkeypatch, cls, calls):
    real = cls.from_pretrained

    def spy(*args, **kwargs):
        calls.append((cls.__name__, args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(cls, "from_pretrained", spy)


def test_offline_hub_model_by_hub_id(offline_hub_cache, monkeypatch, compose_cfg):
    calls: list = []
    for cls in (loading.AutoConfig, loading.AutoTokenizer, loading.AutoModelForSequenceClassification):
        _spy(monkeypatch, cls, calls)
    cfg = compose_cfg("search", ["model=roberta_base", "task=rte"])
    assert cfg.model.local is None and cfg.model.hub_id == HUB_ID

    model, tokenizer = loading.load_backbone(cfg.model, 2, seed=3)

    # (AutoTokenizer reads the config through AutoConfig itself: more than three calls.)
    assert {args[0] for _, args, _ in calls} == {HUB_ID}
    assert {name for name, _, _ in calls} == {"AutoConfig", "AutoTokenizer", "AutoModelForSequenceClassification"}
    kwargs = next(kw for name, _, kw in calls if name == "AutoModelForSequenceClassification")
    assert kwargs["num_labels"] == 2 and kwargs["problem_type"] == "single_label_classification"
    assert kwargs["output_loading_info"] is True
    # The backbone's weights come from the cache; the head is new (seeded).
    cached = offline_hub_cache.base_model.state_dict()
    for name, value in model.base_model.state_dict().items():
        assert (value == cached[name]).all(), name
    assert model.config.pad_token_id == tokenizer.pad_token_id and model.num_labels == 2


def test_offline_hub_missing_model_is_one_clear_message(offline_hub_cache, compose_cfg):
    cfg = compose_cfg("search", ["model=roberta_large", "task=rte"])  # not in the cache
    with pytest.raises(UserError, match="could not load 'FacebookAI/roberta-large'"):
        loading.load_backbone(cfg.model, 2, seed=0)


# What `load_dataset("nyu-mll/glue", "rte")` writes online: the hub repo's README declares one
# config per task with data files `rte/<split>-00000-of-00001.parquet`; the parquet builder turns
# them into `<cache>/nyu-mll___glue/rte/0.0.0/<commit>/glue-<split>.arrow` + dataset_info.json.
GLUE_ID, GLUE_COMMIT = "nyu-mll/glue", "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c"
GLUE_README = """---
configs:
- config_name: rte
  data_files:
  - split: train
    path: rte/train-*
  - split: validation
    path: rte/validation-*
  - split: test
    path: rte/test-*
---
"""


def write_datasets_cache(glue_dir: Path, repo: Path, cache: Path) -> Path:
    """Write the Arrow cache an online `load_dataset("nyu-mll/glue", "rte")` leaves behind.

    The real RTE parquet files (byte-identical to the hub's, see the data README) are laid out as
    in the hub repo (a folder named `glue`), with its README's config block. datasets' public
    `load_dataset_builder` resolves that folder to the parquet builder of config `rte`, as it does
    the hub repo online, and `download_and_prepare` writes the Arrow files and dataset_info.json
    into the hub dataset's cache folder (`output_dir`: from a local folder datasets would otherwise
    file them under the folder's name, not `nyu-mll___glue/.../<commit>`). Returns that folder.
    """
    (repo / "rte").mkdir(parents=True)
    for split in ("train", "validation", "test"):
        shutil.copyfile(glue_dir / "rte" / f"{split}.parquet", repo / "rte" / f"{split}-00000-of-00001.parquet")
    (repo / "README.md").write_text(GLUE_README)
    builder = datasets.load_dataset_builder(str(repo), "rte", cache_dir=str(repo.parent / "scratch"))
    target = cache / "nyu-mll___glue" / "rte" / "0.0.0" / GLUE_COMMIT
    builder.download_and_prepare(output_dir=str(target))
    return target


@pytest.fixture
def offline_datasets(tmp_path, monkeypatch):
    """Offline mode on, datasets' default cache in tmp_path, and no socket may connect."""
    cache = tmp_path / "hf_home" / "datasets"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # datasets and huggingface_hub read these variables once, at import.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("PRUNEPEFT_DATA_DIR", raising=False)

    def no_network(self, address, *args, **kwargs):
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    return cache


@pytest.mark.parametrize("via", ["HF_DATASETS_CACHE", "data.cache_dir"])
def test_offline_hub_glue_from_datasets_arrow_cache(glue_dir, tmp_path, offline_datasets, compose_cfg, via):
    """GLUE by dataset id from a real datasets Arrow cache, offline, with the real `load_dataset`.

    This tests the cached path (offline, datasets falls back to its `cache` module, which scans
    `<cache>/nyu-mll___glue/<config>/<version>/<hash>`) and our column and split handling on the real
    rows, not network resolution: no socket may connect.
    """
    cache = offline_datasets if via == "HF_DATASETS_CACHE" else tmp_path / "own_cache"
    folder = write_datasets_cache(glue_dir, tmp_path / "nyu-mll" / "glue", cache)
    assert {p.name for p in folder.iterdir()} >= {"dataset_info.json", "glue-train.arrow", "glue-validation.arrow"}
    info = json.loads((folder / "dataset_info.json").read_text())
    assert (info["builder_name"], info["dataset_name"], info["config_name"]) == ("parquet", "glue", "rte")
    overrides = ["task=rte", "model=tiny_bert", "data.train_subset=64", "data.eval_subset=32"]
    if via == "data.cache_dir":
        overrides.append(f"data.cache_dir={cache}")
    cfg = compose_cfg("search", overrides)
    assert cfg.data.dir is None and cfg.task.hub_dataset == GLUE_ID and cfg.task.hub_config == "rte"

    splits = load_raw_splits(cfg.task, None, cache_dir=cfg.data.cache_dir)

    assert list(splits) == ["train", "validation"]  # the test split (labels -1) is not asked for
    for split, ds in splits.items():
        assert all(f["filename"].startswith(str(folder)) for f in ds.cache_files), split
        reference = Dataset.from_parquet(str(glue_dir / "rte" / f"{split}.parquet"))
        assert len(ds) == len(reference) == {"train": 2490, "validation": 277}[split]
        assert ds.features["label"].names == ["entailment", "not_entailment"]
        for column in ("sentence1", "sentence2", "label", "idx"):
            assert ds[column] == reference[column], (split, column)
    labels = splits["validation"]["label"]
    assert (labels.count(0), labels.count(1)) == (146, 131)

    # The whole data step of a run (prunepeft.data: subsets, tokenisation) on those rows.
    _, tokenizer = build_tiny(cfg.model, 2, seed=0)
    task_data = build_task_data(DataSettings.from_config(cfg), tokenizer)
    assert task_data.train_size_full == 2490
    assert len(task_data.train) == 64 and set(task_data.evals) == {"validation"}
    assert len(task_data.evals["validation"]) == 32
    assert set(task_data.train["labels"]) == {0, 1} and "input_ids" in task_data.train.column_names


def test_offline_hub_missing_dataset_is_one_clear_message(offline_datasets, compose_cfg):
    """An empty cache offline: the real `load_dataset` fails, and the user gets one UserError."""
    task = compose_cfg("search", ["task=rte"]).task
    with pytest.raises(UserError, match=r"cannot load nyu-mll/glue/rte from the Hugging Face hub.*data\.dir"):
        load_raw_splits(task, None)


def test_offline_hub_missing_dataset_exits_2_from_the_cli(offline_datasets, tmp_path, capsys, monkeypatch):
    """The same failure through `prunepeft search`: exit 2, the one message, no traceback, no run."""
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from prunepeft import cli

    run_dir = tmp_path / "run"
    argv = ["search", "model=tiny_bert", "task=rte", "train=test", f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", ["prunepeft", *argv])  # cli.main rewrites sys.argv
    try:
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
    finally:
        GlobalHydra.instance().clear()
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "cannot load nyu-mll/glue/rte from the Hugging Face hub" in err and "Traceback" not in err
    assert not (run_dir / "run.json").exists()
