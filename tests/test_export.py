"""found_config.json save/load/build, and export to peft (round trip through peft's own loader)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from peft import PeftModel

from prunepeft.run import outputs
from prunepeft.commands import export as export_cmd
from prunepeft.errors import UserError
from prunepeft.run.io import atomic_write_json
from prunepeft.models import build_tiny, get_family
from prunepeft.peft.accounting import count_parameters
from prunepeft.peft.export import export_peft, lora_config_kwargs
from prunepeft.peft.found_config import FoundConfig, build_from_found
from prunepeft.peft.supernet import Supernet
from prunepeft.peft.units import UnitSizes
from prunepeft.peft.weights import save_trained

SIZES = UnitSizes(lora_r=4, lora_alpha=8.0, adapter_bottleneck=8)
MODEL = {"name": "tiny_x", "kind": "tiny", "hub_id": None,
         "tiny": {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
                  "intermediate_size": 64, "vocab_size": 512}}


def tiny(family: str, seed: int = 0):
    return build_tiny(OmegaConf.create({**MODEL, "family": family}), 2, seed)[0], get_family(family)


def batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(10, 500, (3, 8), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch()).logits


def trained(net: Supernet, seed: int = 1) -> Supernet:
    """Non-trivial unit and head weights (logits O(1))."""
    g = torch.Generator().manual_seed(seed)
    net.reinit(net.unit_ids(), "paper", g)
    with torch.no_grad():
        for p in net.peft_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for p in net.head_parameters():
            p.add_(torch.randn(p.shape, generator=g))
    return net


def load_exported(family: str, out) -> torch.nn.Module:
    loaded = PeftModel.from_pretrained(tiny(family)[0], str(out))
    return loaded.eval()


@pytest.mark.parametrize(("family", "kind"), [
    ("bert", "lora"), ("bert", "dora"), ("llama", "lora"), ("llama", "dora"), ("deberta", "lora"), ("qwen2", "dora")])
def test_export_round_trip_same_logits(tmp_path, family, kind):
    model, fam = tiny(family)
    net = trained(Supernet.build(model, fam, [kind], SIZES, 32))
    for layer in (1, 2):
        net.deactivate((layer, kind))
    out = export_peft(net, tmp_path / "peft")
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["layers_to_transform"] == [0, 3] and cfg["use_dora"] is (kind == "dora")
    assert sorted(cfg["target_modules"]) == sorted([fam.sites["query"], fam.sites["value"]])
    assert (out / "adapter_model.safetensors").is_file()
    assert (logits(load_exported(family, out)) - logits(net.model)).abs().max() <= 1e-5


def test_export_rank_and_alpha_patterns_when_sizes_differ(tmp_path):
    model, fam = tiny("roberta")
    units = {(0, "lora"): SIZES, (1, "lora"): UnitSizes(lora_r=2, lora_alpha=4.0),
             (3, "lora"): UnitSizes(lora_r=4, lora_alpha=16.0)}
    net = trained(Supernet.from_units(model, fam, units, 32))
    kw = lora_config_kwargs(net)
    assert (kw["r"], kw["lora_alpha"], kw["layers_to_transform"]) == (4, 8.0, [0, 1, 3])
    assert set(kw["rank_pattern"].values()) == {2} and len(kw["rank_pattern"]) == 2
    assert set(kw["alpha_pattern"].values()) == {4.0, 16.0}
    out = export_peft(net, tmp_path / "peft")
    assert (logits(load_exported("roberta", out)) - logits(net.model)).abs().max() <= 1e-5


def test_serial_units_are_not_expressible_in_peft(tmp_path):
    model, fam = tiny("bert")
    net = Supernet.build(model, fam, ["lora", "adapter"], SIZES, 32)
    with pytest.raises(UserError, match=r"serial units \(0:adapter.*peft has no bottleneck adapters"):
        export_peft(net, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def load_mixed(family: str, out) -> torch.nn.Module:
    """What the model card tells a user: the default adapter, the `lora_units` one, both active."""
    from peft.tuners.lora import LoraLayer

    loaded = PeftModel.from_pretrained(tiny(family)[0], str(out))
    loaded.load_adapter(str(out / "lora_units"), adapter_name="lora_units")
    for m in loaded.modules():
        if isinstance(m, LoraLayer):
            m.set_adapter(["default", "lora_units"])
    return loaded.eval()


def test_lora_and_dora_export_as_two_peft_adapters(tmp_path):
    """LoRA on layers 0, 1, DoRA on 1, 3 (layer 1 has both): two LoraConfigs, one model, same logits."""
    model, fam = tiny("bert")
    units = {(0, "lora"): SIZES, (1, "lora"): SIZES, (1, "dora"): SIZES, (3, "dora"): SIZES}
    net = trained(Supernet.from_units(model, fam, units, 32, ["lora", "dora"]))
    out = export_peft(net, tmp_path / "peft", model_id="org/tiny")
    dora = json.loads((out / "adapter_config.json").read_text())
    lora = json.loads((out / "lora_units" / "adapter_config.json").read_text())
    assert (dora["use_dora"], dora["layers_to_transform"]) == (True, [1, 3])
    assert (lora["use_dora"], lora["layers_to_transform"]) == (False, [0, 1])
    assert dora["base_model_name_or_path"] == lora["base_model_name_or_path"] == "org/tiny"
    assert (logits(load_mixed("bert", out)) - logits(net.model)).abs().max() <= 1e-5


def test_found_config_save_load_and_rebuild(tmp_path):
    model, fam = tiny("bert")
    net = Supernet.build(model, fam, ["lora", "adapter"], SIZES, 32)
    for uid in [(0, "adapter"), (1, "lora"), (1, "adapter"), (3, "lora")]:
        net.deactivate(uid)
    model_cfg = OmegaConf.create({**MODEL, "family": "bert", "hub_id": "org/tiny"})
    found = FoundConfig.from_supernet(net, model_cfg)
    path = found.save(tmp_path)
    data = json.loads(path.read_text())
    assert path.name == "found_config.json"
    assert {k: data[k] for k in ("family", "model_name", "model_id", "num_layers", "hidden_size")} == {
        "family": "bert", "model_name": "tiny_x", "model_id": "org/tiny", "num_layers": 4, "hidden_size": 32}
    assert [entry["layer"] for entry in data["layers"]] == [0, 1, 2, 3] and data["layers"][1]["units"] == []
    assert data["layers"][0]["units"] == [
        {"type": "lora", "sizes": {"lora_r": 4, "lora_alpha": 8.0, "lora_dropout": 0.0}, "params": 2 * 4 * 64}]
    report = count_parameters(net)
    assert data["params"] == {"peft": report.peft, "head": report.head, "base": report.base,
                              "percent_of_base": report.percent}
    loaded = FoundConfig.load(tmp_path)
    assert loaded == found
    rebuilt = build_from_found(tiny("bert")[0], fam, loaded, 32)
    assert rebuilt.active_ids() == net.active_ids() == rebuilt.unit_ids()
    assert count_parameters(rebuilt).per_unit == report.per_unit
    assert torch.equal(logits(rebuilt.model), logits(tiny("bert")[0]))  # fresh standard init
    deeper = FoundConfig.from_json({**data, "num_layers": 6})
    with pytest.raises(UserError, match="6-layer"):
        build_from_found(tiny("bert")[0], fam, deeper, 32)
    with pytest.raises(UserError, match="no found configuration"):
        FoundConfig.load(tmp_path / "missing")
    (tmp_path / "bad.json").write_text('{"family": "bert"}')
    with pytest.raises(UserError, match="not a valid found configuration"):
        FoundConfig.load(tmp_path / "bad.json")


def _fake_run(tmp_path, compose_cfg, search_space, use_run_json=False, deactivate=(2,)):
    """A finished run directory as the search leaves it: config, found config, unit + head weights."""
    cfg = compose_cfg("search", ["model=tiny_bert", "task=rte", "train=test", "seed=3", "model.hub_id=org/tiny-bert"])
    run = tmp_path / "hybrid-s3"
    (run / ".hydra").mkdir(parents=True)
    if use_run_json:
        atomic_write_json(run / "run.json", {"config": OmegaConf.to_container(cfg, resolve=True),
                                             "argv": ["/x/bin/prunepeft", "search", "task=rte"]})
    else:
        OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    model, fam = build_tiny(cfg.model, 2, 3)[0], get_family("bert")
    net = trained(Supernet.build(model, fam, search_space, UnitSizes.from_model(cfg.model), 32))
    for layer in deactivate:
        net.deactivate((layer, search_space[0]))
    FoundConfig.from_supernet(net, cfg.model).save(run)
    save_trained(net, run)
    atomic_write_json(run / "summary.json", {"primary": {"split": "validation", "metric": "accuracy", "value": 0.625}})
    return run, net


def _base():
    return build_tiny(OmegaConf.create({**MODEL, "family": "bert"}), 2, 3)[0]


@pytest.mark.parametrize(("space", "fmt"), [(["lora"], "peft"), (["dora"], "peft"), (["lora", "dora"], "peft"),
                                            (["lora", "adapter"], "prunepeft")])
def test_export_command_picks_the_format_and_round_trips(tmp_path, compose_cfg, monkeypatch, space, fmt):
    """Default out = exports/<run-name>-<format>/ in the working directory; the run is left untouched."""
    run, net = _fake_run(tmp_path, compose_cfg, space, use_run_json=True)
    before = sorted(p.name for p in run.rglob("*"))
    monkeypatch.chdir(tmp_path)
    result = export_cmd.run(compose_cfg("export", [f"run={run}"]))
    out = tmp_path / "exports" / f"rte-tiny_bert-hybrid-s3-{fmt}"
    assert result["format"] == fmt and result["out"] == str(out.relative_to(tmp_path))
    assert sorted(p.name for p in run.rglob("*")) == before
    assert "as " + fmt in (out / "export.log").read_text() and (out / "found_config.json").is_file()
    card = (out / "README.md").read_text()
    for text in ("rte", "accuracy", "0.6250", "budget.percent=", "prunepeft search task=rte", "| 3 | "):
        assert text in card, text
    import prunepeft

    model, tokenizer = prunepeft.load_export(out)  # without the run directory
    assert (logits(model) - logits(net.model)).abs().max() <= 1e-5
    if fmt == "peft":
        config = json.loads((out / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == "org/tiny-bert" and "base_model: org/tiny-bert" in card
        if len(space) == 1:  # peft's own loader on a local base model object
            loaded = PeftModel.from_pretrained(_base(), str(out)).eval()
            assert (logits(loaded) - logits(net.model)).abs().max() <= 1e-5
    else:
        assert "peft has no bottleneck adapters" in card and not (out / "adapter_config.json").exists()
        assert {"prunepeft_export.json", "units.safetensors", "head.safetensors"} <= {p.name for p in out.iterdir()}


def test_export_command_errors(tmp_path, compose_cfg):
    run, _ = _fake_run(tmp_path, compose_cfg, ["adapter", "lora"])
    with pytest.raises(UserError, match="serial units.*peft has no bottleneck adapters.*to=prunepeft"):
        export_cmd.run(compose_cfg("export", [f"run={run}", "to=peft", f"out={tmp_path / 'x'}"]))
    assert not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="'onnx'.*auto, peft, prunepeft"):
        export_cmd.run(compose_cfg("export", [f"run={run}", "to=onnx"]))
    with pytest.raises(UserError, match="not a directory"):
        export_cmd.run(compose_cfg("export", [f"run={tmp_path / 'nope'}"]))
    with pytest.raises(UserError, match="is the run directory"):
        export_cmd.run(compose_cfg("export", [f"run={run}", f"out={run}"]))
    lora_run, _ = _fake_run(tmp_path / "b", compose_cfg, ["lora"])
    (lora_run / outputs.UNITS).unlink()
    with pytest.raises(UserError, match="units.safetensors"):
        export_cmd.run(compose_cfg("export", [f"run={lora_run}"]))


@pytest.mark.subprocess
def test_export_cli_smoke(tmp_path, compose_cfg):
    run, _ = _fake_run(tmp_path, compose_cfg, ["dora"])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    before = sorted(p.name for p in run.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "prunepeft.cli", "export", f"run={run}", f"out={tmp_path / 'x'}"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "exported as peft (dora adapters)" in proc.stdout
    assert json.loads((tmp_path / "x" / "adapter_config.json").read_text())["use_dora"] is True
    assert (tmp_path / "x" / "adapter_model.safetensors").is_file() and (tmp_path / "x" / "export.log").is_file()
    # Nothing written into the run (it used to get export.log) or the working directory.
    assert sorted(p.name for p in run.rglob("*")) == before and not (tmp_path / "export.log").exists()


def _cli(argv, capsys, monkeypatch):
    from prunepeft import cli

    monkeypatch.setattr(sys, "argv", ["prunepeft", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return exit_info.value.code, err


def test_export_cli_bad_inputs_exit_2_and_create_nothing(tmp_path, compose_cfg, capsys, monkeypatch):
    # No run=: used to be an omegaconf MissingMandatoryValue traceback with exit code 1.
    assert _cli(["export"], capsys, monkeypatch) == (2, "error: export needs run=<directory of a finished "
                                                       "`prunepeft search` or `prunepeft baseline` run>\n")
    # A bad run=: Hydra's run dir is ${run}, so it used to create that directory (and export.log).
    nope = tmp_path / "nope"
    code, err = _cli(["export", f"run={nope}"], capsys, monkeypatch)
    assert code == 2 and "is not a directory" in err and not nope.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = _cli(["export", f"run={empty}"], capsys, monkeypatch)
    assert code == 2 and "has no found_config.json" in err and list(empty.iterdir()) == []
    # The documented `--to <target>` spelling reaches the target check (it used to be a parse error).
    run, _ = _fake_run(tmp_path, compose_cfg, ["lora"])
    for argv in (["--to", "onnx"], ["--to=onnx"]):
        code, err = _cli(["export", f"run={run}", *argv], capsys, monkeypatch)
        assert code == 2 and "unknown export target (to=) 'onnx'; valid choices: auto, peft, prunepeft" in err


def test_export_to_flag_becomes_the_to_override():
    from prunepeft.cli import _flag_options

    assert _flag_options("export", ["run=x", "--to", "peft"]) == ["run=x", "to=peft"]
    assert _flag_options("export", ["--to=peft", "run=x"]) == ["to=peft", "run=x"]
    assert _flag_options("baseline", ["--to", "peft"]) == ["--to", "peft"]


def test_export_never_replaces_a_directory_that_is_not_an_export(tmp_path, compose_cfg):
    run, _ = _fake_run(tmp_path, compose_cfg, ["lora"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    # out= a directory of the user's (or `.`) used to be rmtree'd and replaced by the adapter.
    with pytest.raises(UserError, match="not a previous export; refusing to replace it"):
        export_cmd.run(compose_cfg("export", [f"run={run}", f"out={mine}"]))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        export_cmd.run(compose_cfg("export", [f"run={run}", f"out={tmp_path / 'file'}"]))
    # A previous export (or an empty directory) is replaced.
    out = tmp_path / "again"
    export_cmd.run(compose_cfg("export", [f"run={run}", f"out={out}"]))
    export_cmd.run(compose_cfg("export", [f"run={run}", f"out={out}"]))
    assert (out / "adapter_config.json").is_file()


def test_export_uses_the_trained_config_not_a_later_skipped_invocation(tmp_path, compose_cfg):
    run, net = _fake_run(tmp_path, compose_cfg, ["lora"], use_run_json=True)
    # A later `prunepeft search model=tiny_roberta hydra.run.dir=<run>` finds DONE and skips, but
    # Hydra has already rewritten .hydra/config.yaml with that invocation's config.
    later = compose_cfg("search", ["model=tiny_roberta", "task=rte", "train=test", "seed=3"])
    OmegaConf.save(later, run / ".hydra" / "config.yaml")
    export_cmd.run(compose_cfg("export", [f"run={run}", f"out={tmp_path / 'e'}"]))
    loaded = PeftModel.from_pretrained(_base(), str(tmp_path / "e")).eval()
    assert (logits(loaded) - logits(net.model)).abs().max() <= 1e-5


def test_export_rank_pruned_sites_round_trip(tmp_path):
    """Per-site ranks after rank pruning: explicit target names, r = 0 sites left out, alpha/r_original."""
    model, fam = tiny("bert")
    units = {(0, "lora"): UnitSizes(lora_r=4, lora_alpha=8.0, site_sizes={"query": 3, "value": 0}),
             (2, "lora"): UnitSizes(lora_r=4, lora_alpha=8.0, site_sizes={"query": 1, "value": 4}),
             (3, "lora"): SIZES}
    net = trained(Supernet.from_units(model, fam, units, 32))
    kw = lora_config_kwargs(net)
    assert len(kw["target_modules"]) == 5 and kw["layers_to_transform"] is None
    assert sorted(kw["rank_pattern"].values()) == [1, 3] and sorted(kw["alpha_pattern"].values()) == [2.0, 6.0]
    out = export_peft(net, tmp_path / "peft")
    assert (logits(load_exported("bert", out)) - logits(net.model)).abs().max() <= 1e-5
