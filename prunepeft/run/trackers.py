"""Experiment trackers: `logger=csv|tensorboard|mlflow|wandb` (conf/logger/, default `none`).

A tracker watches a run through the run directory's own record stream (`runs.observing`): nothing
in the training code knows about it. It receives

- at `RunDir.start` (each attempt): the run's resolved configuration;
- at every `RunDir.event`: per optimizer step `<phase>/loss`, `<phase>/lr`, `<phase>/grad_norm`,
  per epoch `<phase>/train_loss`, `<phase>/epoch` and `<phase>/<split>/<metric>` (phases: warmup,
  round1..N, retrain; baseline: train), at a global step that lays the phases end to end;
- at `RunDir.finish`: the final summary (`summary/<key>` numbers, and summary.json itself).

Each backend goes through its own library (the `trackers` extra; csv needs nothing):

| logger | writes | read back with |
|---|---|---|
| csv | `<run>/trackers/csv/metrics.csv` (long: one row per value), `config.yaml`, `summary.json` | pandas |
| tensorboard | `<run>/trackers/tensorboard/events.out.tfevents.*` | TensorBoard, `EventAccumulator` |
| mlflow | a run in `sqlite:///<run>/mlflow.db` (or `logger.tracking_uri`), artifacts in `<run>/trackers/mlflow` | `mlflow ui`, `MlflowClient` |
| wandb | offline: `<run>/trackers/wandb/wandb/offline-run-*/run-*.wandb` | `wandb sync`, then the web UI |

Only the main process of a data-parallel run reports. A resumed run opens a new tracker run (a new
attempt; csv appends rows with its `attempt`), whose global step restarts at 0. A tracker that
fails while the run trains is switched off with a warning; the run goes on.
"""
from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from prunepeft.run import outputs
from prunepeft.errors import UserError, check_choice

log = logging.getLogger(__name__)

TRACKERS = ("none", "csv", "tensorboard", "mlflow", "wandb")
# The module each backend imports, and the package that provides it (all in the `trackers` extra).
_NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny"),
          "wandb": ("wandb", "wandb")}
INSTALL_HINT = 'pip install -e ".[trackers]"'


def check_logger(name: str) -> None:
    """A known tracker whose library is installed (a cheap check: no import).

    Raises:
        UserError: an unknown name, or a tracker whose package is missing (with the install line).
    """
    check_choice("logger", str(name), TRACKERS)
    need = _NEEDS.get(str(name))
    if need and importlib.util.find_spec(need[0]) is None:
        raise UserError(f"logger={name} needs the {need[1]!r} package (in the trackers extra): {INSTALL_HINT}")
    if name == "mlflow" and importlib.util.find_spec("sqlalchemy") is None:
        raise UserError(f"logger=mlflow needs 'sqlalchemy' and 'alembic' for its sqlite store: {INSTALL_HINT}")


def flatten(obj: Any, prefix: str = "", sep: str = "/") -> dict[str, Any]:
    """{"a/b": leaf} for nested mappings; lists and other values are leaves."""
    if not isinstance(obj, Mapping):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out.update(flatten(value, f"{prefix}{sep}{key}" if prefix else str(key), sep))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def summary_numbers(summary: Mapping[str, Any]) -> dict[str, float]:
    """The summary's numeric leaves as `summary/<key>` (the per-epoch history is already logged)."""
    rest = {k: v for k, v in summary.items() if k != "history"}
    return {f"summary/{k}": n for k, v in flatten(rest).items() if (n := _number(v)) is not None}


# -- backends ---------------------------------------------------------------------------------------
class Tracker:
    """One backend: `open` (per attempt), `log` (numbers at a global step), `summary`, `close`."""

    name = "none"

    def __init__(self, logger: Any, run_dir: Path) -> None:
        self.cfg = logger  # the `logger` section
        self.run_dir = Path(run_dir)
        self.dir = Path(str(logger.dir)) if _get(logger, "dir") else self.run_dir / outputs.TRACKERS / self.name

    def open(self, info: Mapping[str, Any]) -> None:
        """Start a tracker run for this attempt; `info` is run.json's content (config included)."""

    def log(self, metrics: Mapping[str, float], step: int, context: Mapping[str, Any]) -> None:
        """Record numbers at a global step; `context`: phase, kind, step, epoch, attempt."""

    def summary(self, summary: Mapping[str, Any], step: int) -> None:
        """Record the final summary (summary.json's content)."""

    def close(self, status: str) -> None:
        """End the tracker run: status finished | failed | interrupted."""


def _get(section: Any, key: str, default: Any = None) -> Any:
    value = section.get(key, default) if hasattr(section, "get") else getattr(section, key, default)
    return default if value is None else value


def _run_name(run_dir: Path) -> str:
    """task/model/run, the run directory's last three parts (e.g. rte/tiny_bert/hybrid-s42)."""
    return "/".join(Path(run_dir).resolve().parts[-3:])


def _yaml(config: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(config or {}))


class CsvTracker(Tracker):
    """`metrics.csv` in long format: time, attempt, global_step, phase, kind, step, epoch, key, value."""

    name = "csv"
    COLUMNS = ("time", "attempt", "global_step", "phase", "kind", "step", "epoch", "key", "value")

    def open(self, info: Mapping[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / outputs.TRACKER_CONFIG).write_text(_yaml(info.get("config")))
        path = self.dir / outputs.TRACKER_METRICS
        new = not path.exists() or path.stat().st_size == 0
        self.file = path.open("a", newline="")
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(self.COLUMNS)
        self.attempt = info.get("attempts")

    def log(self, metrics: Mapping[str, float], step: int, context: Mapping[str, Any]) -> None:
        now = round(time.time(), 3)
        for key, value in metrics.items():
            self.writer.writerow([now, self.attempt, step, context.get("phase", ""), context.get("kind", ""),
                                  context.get("step", ""), context.get("epoch", ""), key, value])
        self.file.flush()

    def summary(self, summary: Mapping[str, Any], step: int) -> None:
        self.log(summary_numbers(summary), step, {"kind": "summary"})
        (self.dir / outputs.TRACKER_SUMMARY).write_text(json.dumps(summary, indent=2, default=str))

    def close(self, status: str) -> None:
        if getattr(self, "file", None) is not None:
            self.file.close()
            self.file = None


class TensorBoardTracker(Tracker):
    """TensorBoard event files through `torch.utils.tensorboard.SummaryWriter` (the tensorboard package)."""

    name = "tensorboard"

    def open(self, info: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.dir))
        self.writer.add_text("config", "```\n" + _yaml(info.get("config")) + "\n```", 0)

    def log(self, metrics: Mapping[str, float], step: int, context: Mapping[str, Any]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def summary(self, summary: Mapping[str, Any], step: int) -> None:
        for key, value in summary_numbers(summary).items():
            self.writer.add_scalar(key, value, step)
        self.writer.add_text("summary", "```\n" + json.dumps(summary, indent=2, default=str) + "\n```", step)

    def close(self, status: str) -> None:
        if getattr(self, "writer", None) is not None:
            self.writer.add_text("status", status)
            self.writer.close()
            self.writer = None


class MlflowTracker(Tracker):
    """An MLflow run through `MlflowClient`: params = the flattened config, metrics, summary artifacts."""

    name = "mlflow"
    _STATUS = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}

    @property
    def tracking_uri(self) -> str:
        return str(_get(self.cfg, "tracking_uri") or f"sqlite:///{(self.run_dir / 'mlflow.db').resolve()}")

    def open(self, info: Mapping[str, Any]) -> None:
        for noisy in ("alembic", "mlflow.store.db.utils"):  # "Creating initial MLflow database tables..."
            logging.getLogger(noisy).setLevel(logging.WARNING)
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        project = str(_get(self.cfg, "project", "prunepeft"))
        experiment = self.client.get_experiment_by_name(project)
        if experiment is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            experiment_id = self.client.create_experiment(project, artifact_location=self.dir.resolve().as_uri())
        else:
            experiment_id = experiment.experiment_id
        tags = {"prunepeft.run_dir": str(self.run_dir.resolve()), "prunepeft.command": str(info.get("command")),
                "prunepeft.attempt": str(info.get("attempts")),
                **{str(t): "" for t in _get(self.cfg, "tags", [])}}
        self.run = self.client.create_run(experiment_id, run_name=_run_name(self.run_dir), tags=tags)
        self.run_id = self.run.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in flatten(info.get("config") or {}, sep=".").items()]
        for i in range(0, len(params), 100):  # the store's batch limit
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.client.log_text(self.run_id, _yaml(info.get("config")), outputs.TRACKER_CONFIG)

    def log(self, metrics: Mapping[str, float], step: int, context: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def summary(self, summary: Mapping[str, Any], step: int) -> None:
        self.log(summary_numbers(summary), step, {})
        self.client.log_dict(self.run_id, dict(summary), outputs.TRACKER_SUMMARY)

    def close(self, status: str) -> None:
        if getattr(self, "run_id", None) is not None:
            self.client.set_terminated(self.run_id, self._STATUS.get(status, "FAILED"))
            self.run_id = None


class WandbTracker(Tracker):
    """A Weights & Biases run through `wandb.init` (offline by default: no account, no network)."""

    name = "wandb"

    def open(self, info: Mapping[str, Any]) -> None:
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(console="off", silent=True)
        self.run = wandb.init(dir=str(self.dir), mode=str(_get(self.cfg, "mode", "offline")),
                              project=str(_get(self.cfg, "project", "prunepeft")), entity=_get(self.cfg, "entity"),
                              name=_run_name(self.run_dir), config=dict(info.get("config") or {}),
                              tags=[str(t) for t in _get(self.cfg, "tags", [])] or None,
                              job_type=str(info.get("command")), settings=settings)

    def log(self, metrics: Mapping[str, float], step: int, context: Mapping[str, Any]) -> None:
        self.run.log(dict(metrics), step=step)

    def summary(self, summary: Mapping[str, Any], step: int) -> None:
        self.run.summary.update(summary_numbers(summary))

    def close(self, status: str) -> None:
        if getattr(self, "run", None) is not None:
            self.run.finish(exit_code=0 if status == "finished" else 1)
            self.run = None


BACKENDS: dict[str, type[Tracker]] = {"csv": CsvTracker, "tensorboard": TensorBoardTracker,
                                      "mlflow": MlflowTracker, "wandb": WandbTracker}


# -- the bridge from the run's records --------------------------------------------------------------
def event_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one events.jsonl record, named `<phase>/<name>` ({} for other kinds)."""
    phase, kind = record.get("phase", "run"), record.get("kind")
    if kind == "step":
        values = {name: record.get(name) for name in ("loss", "lr", "grad_norm")}
    elif kind == "eval":
        values = {"train_loss": record.get("train_loss"), "epoch": record.get("epoch"),
                  **flatten(record.get("metrics") or {})}
    elif kind == "nonfinite":
        values = {"skipped_steps": record.get("skipped")}
    else:
        return {}
    return {f"{phase}/{k}": n for k, v in values.items() if (n := _number(v)) is not None}


class Recorder:
    """The observer (`runs.observing`) that feeds one run's records to one tracker."""

    def __init__(self, tracker: Tracker, run_dir: Path) -> None:
        self.tracker = tracker
        self.run_dir = Path(run_dir).resolve()
        self.opened = self.finished = self.broken = False
        self.offset = self.last_step = 0
        self.phase: str | None = None

    def global_step(self, phase: str, step: int) -> int:
        """Steps of the phases laid end to end (each phase's own step restarts at 1)."""
        if phase != self.phase:
            if self.phase is not None:
                self.offset += self.last_step
            self.phase, self.last_step = phase, 0
        self.last_step = max(self.last_step, step)
        return self.offset + step

    def __call__(self, run: Any, kind: str, record: Mapping[str, Any]) -> None:
        if self.broken or Path(run.path).resolve() != self.run_dir:
            return
        try:
            if kind == "start":
                if self.opened:  # a second start in one invocation (not expected): close the first
                    self.tracker.close("finished")
                self.tracker.open(record)
                self.opened = True
            elif kind == "event" and self.opened:
                metrics = event_metrics(record)
                if metrics:
                    step = self.global_step(str(record.get("phase", "run")), int(record.get("step") or 0))
                    self.tracker.log(metrics, step, record)
            elif kind == "finish" and self.opened:
                self.tracker.summary(record, self.offset + self.last_step)
                self.finished = True
        except Exception as err:  # noqa: BLE001 - a tracker must not end a run
            self.broken = True
            msg = f"logger={self.tracker.name} failed ({type(err).__name__}: {err}); the run goes on without it"
            log.warning(msg, exc_info=True)
            print(f"warning: {msg}", file=sys.stderr)

    def close(self, status: str) -> None:
        if not self.opened:
            return
        self.opened = False
        try:
            self.tracker.close(status)
        except Exception as err:  # noqa: BLE001
            log.warning("logger=%s failed to close (%s: %s)", self.tracker.name, type(err).__name__, err)


def make_tracker(logger: Any, run_dir: Path) -> Tracker:
    """The backend `logger.name` names (the `logger` config node), writing for `run_dir`."""
    name = str(_get(logger, "name", "none"))
    check_logger(name)
    return BACKENDS.get(name, Tracker)(logger, run_dir)


@contextlib.contextmanager
def session(logger_cfg: DictConfig | None, run_dir: Path, main_process: bool = True) -> Iterator[Recorder | None]:
    """Report the run in `run_dir` to the tracker the `logger` section names, for the duration of the block.

    The tracker run opens at the run's `start` (so a skipped finished run opens none) and closes at
    the end of the block: finished after `finish`, interrupted on Ctrl-C / SIGTERM, else failed.
    """
    from prunepeft.run.record import observing

    name = "none" if logger_cfg is None else str(_get(logger_cfg, "name", "none"))
    if name == "none" or not main_process:  # only rank 0 reports (the command passes is_main())
        yield None
        return
    recorder = Recorder(make_tracker(logger_cfg, run_dir), run_dir)
    outcome = None
    try:
        with observing(recorder):
            yield recorder
    except BaseException as err:
        outcome = "interrupted" if isinstance(err, (KeyboardInterrupt, SystemExit)) else "failed"
        raise
    finally:
        recorder.close(outcome or ("finished" if recorder.finished else "failed"))
