"""The supernet on tiny bert / llama models: equivalence with peft, masking, gradients, re-init."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from prunepeft.errors import UserError
from prunepeft.models import build_tiny, get_family, head_parameters
from prunepeft.peft.accounting import count_parameters
from prunepeft.peft.supernet import Supernet
from prunepeft.peft.units import UnitSizes
from prunepeft.peft.weights import load_trained, save_trained

ALL = ["lora", "dora", "adapter", "houlsby"]


SIZES = UnitSizes(lora_r=4, lora_alpha=8.0, adapter_bottleneck=8)


def tiny(family: str, seed: int = 0, num_labels: int = 2):
    cfg = OmegaConf.create({"name": f"tiny_{family}", "family": family, "kind": "tiny",
                            "tiny": {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
                                     "intermediate_size": 64, "vocab_size": 512}})
    model, _ = build_tiny(cfg, num_labels, seed)
    return model, get_family(family)


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, 500, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def trained_like(net: Supernet, seed: int = 3) -> None:
    """Paper init plus a perturbation of every unit tensor (DoRA magnitude included), and a head
    with N(0, 1) weights so logits are O(1) and a 1e-5 tolerance means something."""
    g = torch.Generator().manual_seed(seed)
    net.reinit(net.unit_ids(), "paper", g)
    with torch.no_grad():
        for p in net.head_parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        for uid in net.unit_ids():
            for p in net.unit_parameters(uid).values():
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def to_peft(net: Supernet, kind: str, dropout: float = 0.0):
    """An independent peft model on the same backbone with our weights copied in."""
    from peft import LoraConfig, get_peft_model

    from prunepeft.peft.export import unwrapped_copy

    fam = net.family
    cfg = LoraConfig(r=SIZES.lora_r, lora_alpha=SIZES.lora_alpha, lora_dropout=dropout, use_dora=kind == "dora",
                     target_modules=[fam.sites["query"], fam.sites["value"]], task_type="SEQ_CLS")
    pm = get_peft_model(unwrapped_copy(net), cfg)
    with torch.no_grad():
        for uid in net.unit_ids():
            for site, br in net.branches(uid):
                mod = pm.base_model.model.get_submodule(f"{fam.layers_path}.{uid[0]}.{fam.sites[site]}")
                mod.lora_A["default"].weight.copy_(br.lora_A.weight)
                mod.lora_B["default"].weight.copy_(br.lora_B.weight)
                if kind == "dora":
                    mod.lora_magnitude_vector["default"].weight.copy_(br.lora_magnitude)
    return pm


@pytest.mark.parametrize("family", ["bert", "llama"])
@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_same_logits_as_peft(family, kind):
    model, fam = tiny(family)
    net = Supernet.build(model, fam, [kind], SIZES, 32)
    trained_like(net)
    ours = logits(net.model, batch())
    theirs = logits(to_peft(net, kind).eval(), batch())
    assert (ours - theirs).abs().max() <= 1e-5
    assert ours.abs().max() > 0.1
    net.reinit(net.unit_ids(), "standard", None)
    assert (ours - logits(net.model, batch())).abs().max() > 1e-2  # the units do something


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_same_logits_as_peft_in_training_mode_with_dropout(kind):
    model, fam = tiny("bert")
    net = Supernet.build(model, fam, [kind], UnitSizes(lora_r=4, lora_alpha=8.0, lora_dropout=0.2), 32)
    trained_like(net)
    pm = to_peft(net, kind, dropout=0.2)
    net.model.train()
    pm.train()
    torch.manual_seed(7)
    ours = net.model(**batch()).logits
    torch.manual_seed(7)
    theirs = pm(**batch()).logits
    assert (ours - theirs).abs().max() <= 1e-5


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_all_inactive_equals_plain_backbone_exactly(family):
    model, fam = tiny(family)
    net = Supernet.build(model, fam, ALL, SIZES, 32)
    trained_like(net)
    plain_model = tiny(family)[0]
    plain_model.load_state_dict({n: p for n, p in head_parameters(model, fam)}, strict=False)
    plain = logits(plain_model, batch())
    assert not torch.equal(logits(net.model, batch()), plain)
    for uid in net.unit_ids():
        net.deactivate(uid)
    assert net.active_ids() == [] and net.peft_parameters() == []
    assert torch.equal(logits(net.model, batch()), plain)


@pytest.mark.parametrize("family", ["bert", "roberta", "llama"])
def test_standard_init_all_active_leaves_logits_unchanged(family):
    plain = logits(tiny(family)[0], batch())
    model, fam = tiny(family)
    net = Supernet.build(model, fam, ALL, SIZES, 32)
    assert len(net.active_ids()) == 4 * 4
    assert torch.equal(logits(net.model, batch()), plain)


def test_build_is_deterministic_under_torch_seed():
    nets = []
    for _ in range(2):
        torch.manual_seed(5)
        nets.append(Supernet.build(tiny("bert")[0], get_family("bert"), ALL, SIZES, 32).state_dict_units())
    assert nets[0].keys() == nets[1].keys() and all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])


def test_gradients_reach_only_active_units_and_head():
    model, fam = tiny("bert")
    net = Supernet.build(model, fam, ["lora", "adapter", "dora"], SIZES, 32)
    trained_like(net)
    pruned = [(0, "lora"), (2, "adapter"), (3, "dora")]
    for uid in pruned:
        net.deactivate(uid)
    net.model.train()
    out = net.model(**batch(), labels=torch.tensor([0, 1, 1]))
    out.loss.backward()
    for uid in net.unit_ids():
        for name, p in net.unit_parameters(uid).items():
            if uid in pruned:
                assert p.grad is None and not p.requires_grad, (uid, name)
            else:
                assert p.grad is not None and p.grad.abs().sum() > 0, (uid, name)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.head_parameters())
    trainable = {id(p) for p in net.peft_parameters()} | {id(p) for p in net.head_parameters()}
    for name, p in net.model.named_parameters():
        if id(p) not in trainable:
            assert p.grad is None and not p.requires_grad, name


def test_deactivate_removes_parameters_from_optimizer_view_and_count():
    model, fam = tiny("llama")
    net = Supernet.build(model, fam, ["lora", "adapter"], SIZES, 32)
    before = count_parameters(net)
    params_before = {id(p) for p in net.peft_parameters()}
    uid = (1, "adapter")
    unit = net.unit_parameters(uid)
    net.deactivate(uid)
    after = count_parameters(net)
    assert not net.is_active(uid) and uid not in net.active_ids() and uid in net.unit_ids()
    assert after.peft == before.peft - before.per_unit[uid] and uid not in after.per_unit
    assert {id(p) for p in net.peft_parameters()} == params_before - {id(p) for p in unit.values()}
    assert after.head == before.head and after.base == before.base


def test_active_ids_order_and_unit_parameters():
    model, fam = tiny("bert")
    net = Supernet.build(model, fam, ["adapter", "lora", "dora"], SIZES, 32)
    assert net.active_ids()[:4] == [(0, "adapter"), (0, "lora"), (0, "dora"), (1, "adapter")]
    names = set(net.unit_parameters((0, "dora")))
    assert names == {f"{s}.{n}" for s in ("query", "value") for n in ("lora_A.weight", "lora_B.weight", "lora_magnitude")}
    crit = net.criterion_parameters((0, "dora"))
    assert len(crit) == 4 and all(p.dim() == 2 for p in crit)  # magnitude left out
    adapter = net.criterion_parameters((0, "adapter"))
    assert len(adapter) == 2 and all(p.dim() == 2 for p in adapter)  # weight matrices, no biases
    assert len(net.unit_parameters((0, "adapter"))) == 4  # the biases are still unit parameters


def test_reinit_seeded_order_independent_and_keep():
    model, fam = tiny("bert")
    net = Supernet.build(model, fam, ["lora", "adapter"], SIZES, 32)
    ids = net.unit_ids()
    net.reinit(ids, "paper", torch.Generator().manual_seed(11))
    first = net.state_dict_units()
    net.reinit(list(reversed(ids)), "paper", torch.Generator().manual_seed(11))
    assert all(torch.equal(first[k], v) for k, v in net.state_dict_units().items())
    net.reinit(ids, "keep", torch.Generator().manual_seed(12))
    assert all(torch.equal(first[k], v) for k, v in net.state_dict_units().items())
    net.reinit([(0, "lora")], "paper", torch.Generator().manual_seed(12))
    now = net.state_dict_units()
    assert not torch.equal(now["0:lora.query.lora_A.weight"], first["0:lora.query.lora_A.weight"])
    assert torch.equal(now["1:lora.query.lora_A.weight"], first["1:lora.query.lora_A.weight"])
    net.reinit(ids, "standard", None)
    assert torch.equal(logits(net.model, batch()), logits(tiny("bert")[0], batch()))
    with pytest.raises(UserError, match="'kaiming'.*keep, paper, standard"):
        net.reinit(ids, "kaiming", None)


def test_reinit_head_seeded():
    model, fam = tiny("roberta")
    net = Supernet.build(model, fam, ["lora"], SIZES, 32)
    net.reinit_head(torch.Generator().manual_seed(0))
    first = [p.detach().clone() for p in net.head_parameters()]
    net.reinit_head(torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(first, net.head_parameters()))
    biases = [p for n, p in model.named_parameters() if n.startswith("classifier") and n.endswith("bias")]
    assert biases and all(not b.any() for b in biases)


def test_delta_hook_called_for_active_units_and_sites():
    model, fam = tiny("bert")
    net = Supernet.build(model, fam, ["lora", "houlsby", "adapter"], SIZES, 32)
    trained_like(net)
    net.deactivate((2, "lora"))
    calls = []
    net.set_delta_hook(lambda uid, site, delta, base: calls.append((uid, site, tuple(delta.shape))))
    logits(net.model, batch())
    got = {(uid, site) for uid, site, _ in calls}
    want = {((l, t), s) for l, t in net.active_ids() for s in ((0, 1) if t != "adapter" else (0,))}
    assert got == want and all(shape == (3, 9, 32) for *_, shape in calls)
    net.set_delta_hook(None)
    calls.clear()
    logits(net.model, batch())
    assert calls == []


def test_units_and_head_save_load_round_trip(tmp_path):
    model, fam = tiny("llama")
    net = Supernet.build(model, fam, ["dora", "adapter"], SIZES, 32)
    trained_like(net)
    net.reinit_head(torch.Generator().manual_seed(4))
    net.deactivate((0, "dora"))
    want = logits(net.model, batch())
    save_trained(net, tmp_path)
    other = Supernet.build(tiny("llama")[0], fam, ["dora", "adapter"], SIZES, 32)
    other.deactivate((0, "dora"))
    load_trained(other, tmp_path)
    assert torch.equal(logits(other.model, batch()), want)
    third = Supernet.build(tiny("llama")[0], fam, ["dora", "adapter"], SIZES, 32)
    with pytest.raises(UserError, match="missing.*0:dora"):
        load_trained(third, tmp_path)


def test_bad_search_space():
    with pytest.raises(UserError, match="'prompt'"):
        Supernet.build(*tiny("bert"), ["lora", "prompt"], SIZES, 32)
    with pytest.raises(UserError, match="empty"):
        Supernet.build(*tiny("bert"), [], SIZES, 32)
    with pytest.raises(UserError, match="twice"):
        Supernet.build(*tiny("bert"), ["lora", "lora"], SIZES, 32)
