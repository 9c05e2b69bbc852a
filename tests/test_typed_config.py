"""The search loop's typed settings (prunepeft/config/typed.py), built once at the command boundary."""
from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from prunepeft.config.compose import compose_config
from prunepeft.config.typed import SearchSettings
from prunepeft.pruning import rounds, search, stages

PACKAGE = Path(__file__).resolve().parents[1] / "prunepeft"
# Config sections the typed settings cover: past the command boundary only `validate` reads them raw.
TYPED_SECTIONS = ("search", "strategy", "budget", "debug")


def _plain(value) -> bool:
    """Only plain Python values inside (no DictConfig / ListConfig left over)."""
    if dataclasses.is_dataclass(value):
        return all(_plain(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (int, float, str, bool)


def test_defaults_are_resolved_and_the_values_are_plain():
    cfg = compose_config("search", ["task=rte", "model=tiny_bert", "train=test", "strategy=single",
                                    "strategy.criterion=weight", "search.k=3", "budget.params=5000"])
    s = SearchSettings.from_config(cfg)
    assert _plain(s)
    assert (s.seed, s.k, s.max_rounds, s.reinit) == (int(cfg.seed), 3, int(cfg.search.max_rounds), str(cfg.search.reinit))
    assert s.partition_cuts == tuple(cfg.search.partition_cuts) and s.criteria == tuple(cfg.search.criteria)
    assert s.warmup.subset == float(cfg.task.warmup_subset)  # search.warmup.subset=null: the task's default
    assert s.retrain_epochs == int(cfg.train.epochs)  # search.retrain_epochs=null: train.epochs
    assert (s.strategy.name, s.strategy.criterion, s.strategy.from_run) == ("single", "weight", None)
    assert (s.budget.params, s.crash_after_round) == (5000, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.k = 1  # type: ignore[misc]


def test_explicit_values_win():
    cfg = compose_config("search", ["task=rte", "model=tiny_bert", "train=test", "search.warmup.subset=0.5",
                                    "search.retrain_epochs=0", "debug.crash_after_round=2"])
    s = SearchSettings.from_config(cfg)
    assert (s.warmup.subset, s.retrain_epochs, s.crash_after_round) == (0.5, 0, 2)


def test_the_search_loop_reads_the_settings_not_the_config():
    """search() (all but `validate`, which checks the raw config), stages.py and rounds.py read no
    `cfg.search` / `cfg.strategy` / `cfg.budget` / `cfg.debug`: those come typed from SearchSettings."""
    raw = []
    for module in (search, stages, rounds):
        tree = ast.parse(inspect.getsource(module))
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name != "validate"):
            for node in ast.walk(fn):
                if (isinstance(node, ast.Attribute) and node.attr in TYPED_SECTIONS
                        and isinstance(node.value, ast.Name) and node.value.id == "cfg"):
                    raw.append(f"{module.__name__}.{fn.name}: cfg.{node.attr}")
    assert not raw, raw


def test_the_command_builds_the_settings_once_and_hands_them_on():
    source = (PACKAGE / "commands" / "search.py").read_text()
    assert source.count("SearchSettings.from_config(cfg)") == 1 and "search(cfg, rd, settings, " in source


# Functions below commands/ (everything but commands/ and cli.py) with a parameter named `cfg`: the
# whole composed config travelling down the layers. Issue 23's target is 10 (main had 50 by this count);
# the ceiling only goes down: a function that needs a stage's settings takes them typed
# (config/typed.py: SearchSettings, DataSettings) or takes the one section it reads.
CFG_CEILING, CFG_TARGET = 38, 10


def functions_taking_cfg() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "commands" or rel.as_posix() == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                if any(a.arg == "cfg" for a in args):
                    found.append(f"{rel}:{node.lineno} {node.name}")
    return found


def test_the_whole_config_reaches_few_functions_below_the_commands():
    found = functions_taking_cfg()
    assert len(found) <= CFG_CEILING, f"{len(found)} functions below commands/ take cfg:\n" + "\n".join(found)


def test_the_data_stage_takes_typed_settings():
    from prunepeft.config.typed import DataSettings

    cfg = compose_config("search", ["task=rte", "model=tiny_bert", "train=test", "seed=7"])
    d = DataSettings.from_config(cfg)
    assert (d.seed, d.max_length, d.task.name) == (7, int(cfg.train.max_length), "rte")
