"""One way to save and load the trained units and head (prunepeft/peft/weights.py), shared by the
checkpoint, the run directory and the export."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.models import build_tiny, get_family, head_parameters
from prunepeft.peft.supernet import Supernet
from prunepeft.peft.units import UnitSizes
from prunepeft.peft.weights import HEAD_PREFIX, load_trained, load_trained_tensors, save_trained, trained_tensors
from prunepeft.pruning.checkpoint import SearchState, restore_weights, supernet_tensors

SIZES = UnitSizes(lora_r=4, lora_alpha=8.0, adapter_bottleneck=8)
MODEL = {"name": "tiny_bert", "family": "bert", "kind": "tiny",
         "tiny": {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
                  "intermediate_size": 64, "vocab_size": 512}}


def _net(seed: int = 0, perturb: int | None = None) -> Supernet:
    net = Supernet.build(build_tiny(OmegaConf.create(MODEL), 2, seed)[0], get_family("bert"), ["lora", "adapter"], SIZES, 32)
    net.deactivate((1, "adapter"))
    if perturb is not None:
        g = torch.Generator().manual_seed(perturb)
        with torch.no_grad():
            for p in [*net.peft_parameters(), *net.head_parameters()]:
                p.add_(torch.randn(p.shape, generator=g))
    return net


def _same(a: Supernet, b: Supernet) -> bool:
    ta, tb = trained_tensors(a), trained_tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_one_key_scheme_units_then_head():
    net = _net()
    tensors = trained_tensors(net)
    head = {k for k in tensors if k.startswith(HEAD_PREFIX)}
    assert head == {f"{HEAD_PREFIX}{n}" for n, _ in head_parameters(net.model, net.family)}
    assert tensors.keys() - head == net.state_dict_units().keys()
    assert not any(k.startswith("1:adapter.") for k in tensors) and any(k.startswith("1:lora.") for k in tensors)


def test_directory_round_trip_and_the_committed_layout(tmp_path):
    net = _net(perturb=5)
    save_trained(net, tmp_path)
    # the layout every run and export so far has written: units by unit key, head by model parameter name
    assert load_file(tmp_path / outputs.UNITS).keys() == net.state_dict_units().keys()
    assert load_file(tmp_path / outputs.HEAD).keys() == {n for n, _ in head_parameters(net.model, net.family)}
    other = _net()
    assert not _same(net, other)
    load_trained(other, tmp_path)
    assert _same(net, other)


def test_a_run_written_before_this_module_still_loads(tmp_path):
    """Files as Supernet.save_units / save_head wrote them (plain safetensors, no prefix)."""
    net = _net(perturb=6)
    save_file(net.state_dict_units(), tmp_path / outputs.UNITS)
    save_file({n: p.detach().clone().contiguous() for n, p in head_parameters(net.model, net.family)}, tmp_path / outputs.HEAD)
    other = _net()
    load_trained(other, tmp_path)
    assert _same(net, other)


def test_checkpoint_holds_the_same_tensors_and_restores_them(tmp_path):
    net = _net(perturb=7)
    assert supernet_tensors(net).keys() == trained_tensors(net).keys()  # granularity=unit: no rank masks
    state = SearchState(rounds_done=1)
    state.save(tmp_path, supernet_tensors(net))
    other = _net()
    assert restore_weights(tmp_path, other) and _same(net, other)


def test_mismatches_are_user_errors(tmp_path):
    net = _net()
    tensors = trained_tensors(net)
    with pytest.raises(UserError, match="head weights in here have keys"):
        load_trained_tensors(_net(), {k: v for k, v in tensors.items() if k != f"{HEAD_PREFIX}classifier.bias"}, "here")
    bad = {**tensors, f"{HEAD_PREFIX}classifier.bias": torch.zeros(5)}
    with pytest.raises(UserError, match="classifier.bias.*shape"):
        load_trained_tensors(_net(), bad)
    save_trained(net, tmp_path)
    fewer = _net()
    fewer.deactivate((0, "lora"))
    with pytest.raises(UserError, match="unexpected.*0:lora"):
        load_trained(fewer, tmp_path)
