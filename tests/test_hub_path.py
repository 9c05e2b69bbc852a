"""The hub path, exercised offline: a model by hub id, GLUE by dataset id (`nyu-mll/glue`).

Nothing here touches the network. The model test builds a hub-layout cache
(`models--org--name/{refs/main,snapshots/<commit>}`) in a temporary directory, points
huggingface_hub's cache there with offline mode on, and loads `model=roberta_base` through the real
`from_pretrained` calls (spied on, to assert the hub id and arguments). The data test replaces
`datasets.load_dataset` with a stand-in that asserts the dataset id, config and cache_dir and
returns the real RTE rows in the hub schema. So these test the cached path and our column and
split handling, not network resolution.
"""
from __future__ import annotations

import datasets
import huggingface_hub.constants as hf_constants
import pytest
from datasets import Dataset, DatasetDict

from prunepeft.data.glue import load_raw_splits
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


def test_offline_hub_glue_by_dataset_id(glue_dir, monkeypatch, compose_cfg):
    """`nyu-mll/glue` with the task's config; rows in the hub schema (the parquet files are its export)."""
    calls = []

    def load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return DatasetDict({split: Dataset.from_parquet(str(glue_dir / name / f"{split}.parquet"))
                            for split in ("train", "validation", "test")})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.delenv("PRUNEPEFT_DATA_DIR", raising=False)
    task = compose_cfg("search", ["task=rte"]).task
    splits = load_raw_splits(task, None, cache_dir="/tmp/hf-datasets-cache")
    assert calls == [("nyu-mll/glue", "rte", {"cache_dir": "/tmp/hf-datasets-cache"})]
    assert set(splits) >= {"train", "validation"} and len(splits["train"]) == 2490
    assert {"sentence1", "sentence2", "label"} <= set(splits["train"].column_names)


def test_offline_hub_missing_dataset_is_one_clear_message(monkeypatch, compose_cfg):
    def load_dataset(path, name=None, **kwargs):
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (offline)")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.delenv("PRUNEPEFT_DATA_DIR", raising=False)
    task = compose_cfg("search", ["task=rte"]).task
    with pytest.raises(UserError, match=r"cannot load nyu-mll/glue/rte from the Hugging Face hub.*data\.dir"):
        load_raw_splits(task, None)
