"""Unit types and the site wrapper, on bare nn.Linear layers (no model needed)."""
from __future__ import annotations

import copy
import math
import pickle
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from prunepeft.errors import UserError
from prunepeft.peft.units import UNIT_TYPES, UnitSizes, get_unit_type, parse_unit_key, unit_key
from prunepeft.peft.wrapper import PeftLinear

SIZES = UnitSizes(lora_r=4, lora_alpha=8.0, adapter_bottleneck=6)


def _linear(in_f: int = 16, out_f: int = 12, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(in_f, out_f)


def _wrapped(types: list[str], in_f: int = 16, out_f: int = 16, scheme: str = "paper", seed: int = 1):
    """A wrapper holding one branch of each type (site_index 0), initialised with `scheme`."""
    w = PeftLinear(_linear(in_f, out_f))
    gen = torch.Generator().manual_seed(seed)
    for i, name in enumerate(types):
        branch = get_unit_type(name).make_branch(w.base, SIZES)
        branch.uid, branch.site_index = (i, name), 0
        branch.reset(scheme, gen, 16)
        w.add_branch(name, branch)
    return w


def test_unit_keys_round_trip_and_reject_garbage():
    assert unit_key((3, "lora")) == "3:lora"
    assert parse_unit_key("11:adapter") == (11, "adapter")
    assert parse_unit_key(unit_key((0, "houlsby"))) == (0, "houlsby")
    for bad in ("lora", "x:lora", "3:", ""):
        with pytest.raises(UserError, match="unit key"):
            parse_unit_key(bad)


def test_registry_kinds_sites_and_unknown_type():
    assert set(UNIT_TYPES) == {"lora", "dora", "adapter", "houlsby"}
    assert get_unit_type("lora").sites == ("query", "value") == get_unit_type("dora").sites
    assert get_unit_type("adapter").sites == ("ffn_out",)
    assert get_unit_type("houlsby").sites == ("attn_out", "ffn_out")
    assert [get_unit_type(n).kind for n in ("lora", "dora", "adapter", "houlsby")] == [
        "parallel", "parallel", "serial", "serial"]
    with pytest.raises(UserError, match="'prefix'.*adapter, dora, houlsby, lora"):
        get_unit_type("prefix")


def test_unit_sizes_from_model_overrides_and_validation():
    cfg = SimpleNamespace(lora_r=16, lora_alpha=32, lora_dropout=0.1, adapter_bottleneck=64, adapter_activation="gelu")
    s = UnitSizes.from_model(cfg, lora_r=18)
    assert (s.lora_r, s.lora_alpha, s.lora_dropout, s.adapter_bottleneck, s.adapter_activation) == (18, 32.0, 0.1, 64, "gelu")
    assert UnitSizes.from_model(cfg, adapter_bottleneck=36).adapter_bottleneck == 36
    assert get_unit_type("adapter").with_size(s, 7).adapter_bottleneck == 7 and get_unit_type("dora").with_size(s, 3).lora_r == 3
    with pytest.raises(UserError, match="'swoosh'.*gelu.*relu"):
        UnitSizes.from_model(SimpleNamespace(adapter_activation="swoosh"))
    with pytest.raises(UserError, match="lora_r"):
        UnitSizes(lora_r=0).validate()


def test_unit_sizes_hold_each_types_own_settings():
    # the settings classes live with their types; UnitSizes holds the values of all registered ones
    assert UnitSizes.names() == ["lora_r", "lora_alpha", "lora_dropout", "adapter_bottleneck", "adapter_activation"]
    assert get_unit_type("dora").settings is get_unit_type("lora").settings
    assert get_unit_type("houlsby").settings is get_unit_type("adapter").settings
    assert [get_unit_type(n).json_fields for n in ("lora", "adapter")] == [
        ("lora_r", "lora_alpha", "lora_dropout"), ("adapter_bottleneck", "adapter_activation")]
    s = UnitSizes(lora_r=4)
    assert (s.lora_r, s.lora_alpha, s.adapter_bottleneck) == (4, 16.0, 64)  # the rest: the settings' defaults
    assert s.replace(site_sizes={"query": 2}).site_sizes == {"query": 2} and s.site_sizes is None
    assert s == UnitSizes(lora_r=4) != UnitSizes(lora_r=5)
    assert copy.deepcopy(s) == s == pickle.loads(pickle.dumps(s))
    with pytest.raises(TypeError, match="lora_rank"):
        UnitSizes(lora_rank=4)
    with pytest.raises(AttributeError, match="no setting 'rank'"):
        s.rank  # noqa: B018
    # a model config's values take their default's type (a YAML `lora_alpha: 32` is 32.0)
    assert UnitSizes.from_model(SimpleNamespace(lora_alpha=32, lora_r="8")).as_dict()["lora_alpha"] == 32.0
    assert isinstance(UnitSizes.from_model(SimpleNamespace(lora_r=8.0)).lora_r, int)


def test_lora_delta_is_scaled_low_rank_update():
    w = _wrapped(["lora"])
    b = w.branches["lora"]
    x = torch.randn(3, 5, 16)
    expected = x @ w.base.weight.T + w.base.bias + (8.0 / 4) * (x @ b.lora_A.weight.T @ b.lora_B.weight.T)
    torch.testing.assert_close(w(x), expected, atol=1e-6, rtol=1e-6)


def test_dora_forward_is_weight_decomposed_lora():
    w = _wrapped(["dora"], in_f=16, out_f=12)
    b = w.branches["dora"]
    with torch.no_grad():
        b.lora_magnitude.mul_(torch.linspace(0.5, 1.5, 12))
    x = torch.randn(4, 16)
    merged = w.base.weight + 2.0 * b.lora_B.weight @ b.lora_A.weight
    directional = merged / merged.norm(dim=1, keepdim=True)
    expected = x @ (b.lora_magnitude[:, None] * directional).T + w.base.bias
    torch.testing.assert_close(w(x), expected, atol=1e-5, rtol=1e-5)


def test_adapter_is_serial_after_parallel_branches():
    w = _wrapped(["lora", "adapter", "houlsby"])
    x = torch.randn(2, 3, 16)
    lora, ad, ho = (w.branches[n] for n in ("lora", "adapter", "houlsby"))
    h = w.base(x)
    h_par = h + lora(x, h)
    expected = h_par + ad.up(torch.relu(ad.down(h_par))) + ho.up(torch.relu(ho.down(h_par)))
    torch.testing.assert_close(w(x), expected)


def test_standard_init_is_an_exact_no_op():
    w = _wrapped(["lora", "dora", "adapter"], in_f=16, out_f=16, scheme="standard")
    x = torch.randn(5, 16)
    assert torch.equal(w(x), w.base(x))
    lora, dora, ad = (w.branches[n] for n in ("lora", "dora", "adapter"))
    assert not lora.lora_B.weight.any() and not ad.up.weight.any() and not ad.up.bias.any()
    assert not ad.down.bias.any()
    # Kaiming-uniform with a = sqrt(5): bound 1/sqrt(fan_in), as nn.Linear and peft.
    assert lora.lora_A.weight.abs().max() <= 1 / math.sqrt(16) and lora.lora_A.weight.std() > 0.05
    torch.testing.assert_close(dora.lora_magnitude.detach(), w.base.weight.norm(dim=1))


def test_paper_init_eq4_5_gaussian_with_zero_biases_and_seeded():
    hidden = 256
    lin = nn.Linear(hidden, hidden)
    a = get_unit_type("adapter").make_branch(lin, UnitSizes(adapter_bottleneck=128))
    l1 = get_unit_type("lora").make_branch(lin, UnitSizes(lora_r=64))
    a.reset("paper", torch.Generator().manual_seed(0), hidden)
    l1.reset("paper", torch.Generator().manual_seed(0), hidden)
    for weight in (a.down.weight, a.up.weight, l1.lora_A.weight, l1.lora_B.weight):
        assert abs(weight.std().item() - 1 / math.sqrt(hidden)) < 0.003
        assert abs(weight.mean().item()) < 0.003
    assert not a.down.bias.any() and not a.up.bias.any()
    l2 = get_unit_type("lora").make_branch(lin, UnitSizes(lora_r=64))
    l2.reset("paper", torch.Generator().manual_seed(0), hidden)
    assert torch.equal(l1.lora_A.weight, l2.lora_A.weight)
    l2.reset("paper", torch.Generator().manual_seed(1), hidden)
    assert not torch.equal(l1.lora_A.weight, l2.lora_A.weight)
    with pytest.raises(UserError, match="'xavier'.*paper.*standard"):
        l2.reset("xavier", None, hidden)


def test_dora_init_magnitude_is_peft_weight_norm_under_both_schemes():
    """peft sets m = ||W + s·BA|| of the fresh A, B: a fresh DoRA unit then adds exactly s·BAx."""
    from peft.tuners.lora.dora import DoraLinearLayer

    lin = nn.Linear(16, 12)
    sizes = UnitSizes(lora_r=4, lora_alpha=8.0)
    dora = get_unit_type("dora").make_branch(lin, sizes)
    lora = get_unit_type("lora").make_branch(lin, sizes)
    dora.reset("paper", torch.Generator().manual_seed(0), 16)
    lora.reset("paper", torch.Generator().manual_seed(0), 16)
    assert dora.lora_B.weight.abs().sum() > 0  # paper init: B != 0, so ||W + s·BA|| != ||W||
    ref = DoraLinearLayer(fan_in_fan_out=False)
    ref.update_layer(base_layer=lin, lora_A=dora.lora_A.weight, lora_B=dora.lora_B.weight, scaling=2.0)
    torch.testing.assert_close(dora.lora_magnitude.detach(), ref.weight.detach())
    x = torch.randn(5, 16)
    with torch.no_grad():
        torch.testing.assert_close(dora(x, lin(x)), lora(x, lin(x)), atol=1e-6, rtol=1e-5)


def test_inactive_branch_does_no_compute():
    w = _wrapped(["lora", "adapter"])
    x = torch.randn(2, 16)

    def boom(*args):
        raise AssertionError("inactive branch was called")

    for b in w.branches.values():
        b.active = False
        b.forward = boom
    assert torch.equal(w(x), w.base(x))


def test_delta_hook_reports_each_active_branch_additive_output():
    w = _wrapped(["lora", "dora", "adapter"])
    w.branches["lora"].active = False
    seen = {}
    bases = {}
    w.delta_hook = lambda uid, site, delta, base: (seen.__setitem__((uid, site), delta),
                                                   bases.__setitem__((uid, site), base))
    x = torch.randn(3, 16)
    out = w(x)
    assert set(seen) == {((1, "dora"), 0), ((2, "adapter"), 0)}
    h = w.base(x)
    torch.testing.assert_close(seen[((1, "dora"), 0)], w.branches["dora"](x, h))
    torch.testing.assert_close(out, h + seen[((1, "dora"), 0)] + seen[((2, "adapter"), 0)])
    torch.testing.assert_close(bases[((1, "dora"), 0)], h)  # parallel: the base Linear's output
    torch.testing.assert_close(bases[((2, "adapter"), 0)], h + seen[((1, "dora"), 0)])  # serial: its input


def test_activation_is_configurable():
    lin = nn.Linear(8, 8)
    branch = get_unit_type("adapter").make_branch(lin, UnitSizes(adapter_bottleneck=4, adapter_activation="gelu"))
    assert isinstance(branch.act, nn.GELU)
    branch.reset("paper", torch.Generator().manual_seed(0), 8)
    h = torch.randn(2, 8)
    torch.testing.assert_close(branch(h), branch.up(torch.nn.functional.gelu(branch.down(h))))


def test_half_precision_base_keeps_float32_branches():
    lin = nn.Linear(8, 8).to(torch.bfloat16)
    w = PeftLinear(lin)
    branch = get_unit_type("lora").make_branch(lin, UnitSizes(lora_r=2))
    branch.reset("paper", torch.Generator().manual_seed(0), 8)
    w.add_branch("lora", branch)
    assert branch.lora_A.weight.dtype == torch.float32
    assert w(torch.randn(3, 8, dtype=torch.bfloat16)).dtype == torch.bfloat16
