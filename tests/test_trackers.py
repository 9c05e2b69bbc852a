"""Experiment trackers (`logger=...`, prunepeft.run.trackers), read back offline with each library's own reader.

Every backend watches a real tiny search (warm-up, pruning rounds, retrain) through the run's record
stream; the values it received are compared with events.jsonl and summary.json.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest

from prunepeft.commands import search as search_cmd
from prunepeft.errors import UserError
from prunepeft.run.io import read_json, read_jsonl
from prunepeft.run.trackers import Recorder, Tracker, check_logger, session

SEARCH = ["search.warmup.subset=24", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=2", "budget.params=2000", "search.k=2", "seed=5",
          "data.train_subset=32", "data.eval_subset=16"]


def _search(glue_dir: Path, run_dir: Path, logger: str, *extra: str) -> dict:
    """A tiny search in `run_dir` reported to `logger`, as `run_in_hydra` runs it."""
    from conftest import compose_config, tiny_overrides_for

    cfg = compose_config("search", [*tiny_overrides_for(glue_dir), *SEARCH, f"logger={logger}", *extra])
    with session(cfg.logger, run_dir):
        return search_cmd.run(cfg, run_dir)


def _step_losses(run_dir: Path) -> dict[str, list[float]]:
    """Per phase, the loss of every step event, in order (what the tracker must have received)."""
    out: dict[str, list[float]] = defaultdict(list)
    for e in read_jsonl(run_dir / "events.jsonl"):
        if e["kind"] == "step":
            out[e["phase"]].append(e["loss"])
    return dict(out)


def _check_curves(series: dict[str, list[tuple[int, float]]], run_dir: Path) -> None:
    """`series`: tag -> [(global step, value)] as read back from a tracker."""
    losses = _step_losses(run_dir)
    phases = list(losses)
    assert phases[0] == "warmup" and phases[-1] == "retrain" and any(p.startswith("round") for p in phases)
    for phase, expected in losses.items():
        got = [v for _, v in sorted(series[f"{phase}/loss"])]
        assert got == pytest.approx(expected, abs=1e-6), phase
        assert f"{phase}/lr" in series and f"{phase}/grad_norm" in series and f"{phase}/train_loss" in series
    # the phases are laid end to end: every phase's steps come after the previous phase's
    firsts = [min(s for s, _ in series[f"{p}/loss"]) for p in phases]
    lasts = [max(s for s, _ in series[f"{p}/loss"]) for p in phases]
    assert all(lasts[i] < firsts[i + 1] for i in range(len(phases) - 1))
    summary = read_json(run_dir / "summary.json")
    # per-epoch dev metric of the retrain: 2 epochs, the last one is the run's result
    retrain = [v for _, v in sorted(series["retrain/validation/accuracy"])]
    assert len(retrain) == 2 and retrain[-1] == pytest.approx(summary["primary"]["value"])
    assert [v for _, v in series["summary/primary/value"]] == pytest.approx([summary["primary"]["value"]])
    assert [v for _, v in series["summary/params/peft"]] == [summary["params"]["peft"]]


def test_csv_through_the_cli(glue_dir, tmp_path, monkeypatch):
    """logger=csv on the command line: metrics.csv read back with pandas; config and summary beside it."""
    import pandas as pd
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from conftest import tiny_overrides_for
    from prunepeft import cli

    run_dir = tmp_path / "run"
    argv = ["search", *tiny_overrides_for(glue_dir), *SEARCH, "logger=csv", f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", ["prunepeft", *argv])
    try:
        cli.main(argv)
    except SystemExit as stop:
        assert stop.code in (0, None)
    finally:
        GlobalHydra.instance().clear()
    out = run_dir / "trackers" / "csv"
    df = pd.read_csv(out / "metrics.csv")
    assert list(df.columns) == ["time", "attempt", "global_step", "phase", "kind", "step", "epoch", "key", "value"]
    assert set(df["attempt"]) == {1}
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in df.itertuples():
        series[row.key].append((row.global_step, row.value))
    _check_curves(series, run_dir)
    # per-epoch rows carry their phase and epoch
    evals = df[(df["kind"] == "eval") & (df["key"] == "retrain/train_loss")]
    assert evals["epoch"].tolist() == [1, 2] and set(evals["phase"]) == {"retrain"}
    config = read_json(run_dir / "run.json")["config"]
    assert OmegaConf.to_container(OmegaConf.load(out / "config.yaml")) == config
    assert config["logger"]["name"] == "csv"
    assert read_json(out / "summary.json") == read_json(run_dir / "summary.json")


def test_tensorboard_read_back_with_event_accumulator(glue_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    _search(glue_dir, run_dir, "tensorboard")
    logdir = run_dir / "trackers" / "tensorboard"
    assert list(logdir.glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    series = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    _check_curves(series, run_dir)
    assert {"config/text_summary", "summary/text_summary"} <= set(acc.Tags()["tensors"])
    config = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "name: tensorboard" in config and "tiny_bert" in config


def test_mlflow_read_back_with_mlflow_client_on_sqlite(glue_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    _search(glue_dir, run_dir, "mlflow")
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("prunepeft")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name.endswith("run")
    assert run.data.params["model.name"] == "tiny_bert" and run.data.params["seed"] == "5"
    assert run.data.params["logger.name"] == "mlflow"
    assert run.data.tags["prunepeft.command"] == "search"
    series = {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
              for key in run.data.metrics}
    _check_curves(series, run_dir)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "summary.json"} <= artifacts
    # the artifacts stay in the run directory (not ./mlruns in the working directory)
    assert list((run_dir / "trackers" / "mlflow").rglob("summary.json"))


def test_wandb_offline_file_and_what_was_logged(glue_dir, tmp_path, monkeypatch):
    """wandb has no offline reader: the .wandb file is checked to be there, and run.log's input recorded."""
    import wandb
    from wandb.sdk import wandb_run

    logged: list[tuple[dict, int]] = []
    original = wandb_run.Run.log

    def recording(self, data, step=None, *args, **kwargs):
        logged.append((dict(data), step))
        return original(self, data, step, *args, **kwargs)

    monkeypatch.setattr(wandb_run.Run, "log", recording)
    monkeypatch.setenv("WANDB_SILENT", "true")
    inits = []
    init = wandb.init
    monkeypatch.setattr(wandb, "init", lambda **kw: inits.append(kw) or init(**kw))
    run_dir = tmp_path / "run"
    _search(glue_dir, run_dir, "wandb")
    files = list((run_dir / "trackers" / "wandb").rglob("offline-run-*/run-*.wandb"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    (kw,) = inits
    assert kw["mode"] == "offline" and kw["config"]["model"]["name"] == "tiny_bert"
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    steps = [step for _, step in logged]
    assert steps == sorted(steps)  # wandb needs a non-decreasing step
    for data, step in logged:
        for key, value in data.items():
            series[key].append((step, value))
    summary = read_json(run_dir / "summary.json")
    # the summary goes to run.summary, not run.log: add it as the other readers see it
    series["summary/primary/value"] = [(steps[-1], summary["primary"]["value"])]
    series["summary/params/peft"] = [(steps[-1], summary["params"]["peft"])]
    _check_curves(series, run_dir)


def test_no_tracker_by_default_and_missing_library_is_a_user_error(glue_dir, compose_cfg, monkeypatch):
    from conftest import tiny_overrides_for

    cfg = compose_cfg("search", tiny_overrides_for(glue_dir))
    assert cfg.logger.name == "none"
    with session(cfg.logger, Path("/nonexistent")) as recorder:
        assert recorder is None
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(UserError, match=r"logger=mlflow needs the 'mlflow-skinny' package.*\[trackers\]"):
        check_logger("mlflow")
    with pytest.raises(UserError, match="unknown logger 'neptune'"):
        check_logger("neptune")


def test_a_failing_tracker_does_not_end_the_run(tmp_path, capsys):
    """A tracker error is one warning; the run's own files are unaffected."""
    from prunepeft.run.record import RunDir, observing

    class Broken(Tracker):
        name = "broken"

        def log(self, metrics, step, context):
            raise OSError("disk full")

    recorder = Recorder(Broken({}, tmp_path), tmp_path)
    rd = RunDir(tmp_path)
    with observing(recorder):
        rd.start("search", 1, {"seed": 1}, "cpu")
        rd.event(phase="train", kind="step", step=1, epoch=1, loss=0.5, lr=0.1, grad_norm=1.0)
        rd.event(phase="train", kind="step", step=2, epoch=1, loss=0.4, lr=0.1, grad_norm=1.0)
        rd.finish({"primary": {"value": 1.0}})
    assert recorder.broken and not recorder.finished
    assert "logger=broken failed (OSError: disk full); the run goes on without it" in capsys.readouterr().err
    assert len(read_jsonl(tmp_path / "events.jsonl")) == 2 and (tmp_path / "DONE").exists()
