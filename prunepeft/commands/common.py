"""Shared plumbing for the Hydra entry points of every command.

`run_in_hydra` is where every command meets the faults a user or the machine can cause:
bad inputs (exit 2, one line), a second invocation on a running directory (refused by the lock),
Ctrl-C / SIGTERM (status `interrupted`, exit 130 / 143), a diverged loss (status `failed`, exit 1).
None of them prints a traceback.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from prunepeft.run import outputs
from prunepeft.errors import UserError, user_errors

log = logging.getLogger(__name__)
banner_log = logging.getLogger("prunepeft")  # the progress lines' logger (prunepeft.run.progress)

RUN_COMMANDS = ("search", "baseline")  # the commands that own (write, resume) a run directory
INTERRUPTED = "interrupted: re-run the same command to resume"
EXIT_FAILED = 1
SUBSET_KEYS = ("data.train_subset", "data.eval_subset", "search.warmup.subset")


def hydra_run_dir() -> Path:
    """The output directory Hydra chose for this job (`hydra.run.dir` / sweep subdir)."""
    return Path(HydraConfig.get().runtime.output_dir)


def check_run_inputs(cfg: DictConfig) -> None:
    """Cheap checks shared by `search` and `baseline` (the CLI runs them before Hydra starts).

    Raises:
        UserError: a subset size that is neither a count nor a fraction in (0, 1] (naming its
            key), a negative `train.max_nonfinite_steps`, a malformed `debug.kill_at`, an unknown
            `train.regression_head_bias`, or a `logger` whose library is not installed.
    """
    from prunepeft.data.subsets import check_subset_size
    from prunepeft.errors import check_choice
    from prunepeft.models.head import HEAD_BIAS
    from prunepeft.run.faults import parse_kill_at
    from prunepeft.run.trackers import check_logger

    for key in SUBSET_KEYS:
        check_subset_size(OmegaConf.select(cfg, key), key)
    allowed = OmegaConf.select(cfg, "train.max_nonfinite_steps", default=0)
    if allowed is not None and int(allowed) < 0:
        raise UserError(f"train.max_nonfinite_steps must be >= 0, got {allowed}")
    parse_kill_at(OmegaConf.select(cfg, "debug.kill_at", default=None))
    check_choice("train.regression_head_bias", str(OmegaConf.select(cfg, "train.regression_head_bias",
                                                                      default="label_mean")), HEAD_BIAS)
    check_logger(str(OmegaConf.select(cfg, "logger.name", default="none")))


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt, so both end the run the same way.

    Under submitit (`SUBMITIT_EXECUTOR` set) no handler is installed: submitit owns SIGTERM and
    SIGUSR2 (it requeues the job through the launcher's checkpoint()).
    """
    if os.environ.get("SUBMITIT_EXECUTOR") or not _main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not break the cleanup
        err = KeyboardInterrupt()
        err.signum = signum  # type: ignore[attr-defined]
        raise err

    # SIGINT too: a library imported earlier in the process (a tracker, a launcher) may have
    # replaced Python's default Ctrl-C handler, and then Ctrl-C would not end the run cleanly.
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _fault_exits() -> Iterator[None]:
    """Interrupts -> one line and exit 128 + signal; a diverged loss -> one line and exit 1."""
    from prunepeft.train.loop import NonFiniteLoss

    try:
        yield
    except KeyboardInterrupt as err:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(128 + getattr(err, "signum", signal.SIGINT))
    except NonFiniteLoss as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_FAILED)


@contextlib.contextmanager
def guard_run(run_dir: Path, cfg: DictConfig) -> Iterator[None]:
    """Hold `run_dir` for one invocation of a run command.

    A finished run is re-displayed without a lock (works from a read-only archive). Otherwise:
    take the lock (refusing a second live invocation), honour `restart=true`, refuse a changed
    configuration before touching anything, check the checkpoint, cut torn log lines, and arm
    `debug.kill_at`. Under data parallelism rank 0 alone locks and prepares the directory; the
    other ranks follow its decision (the same refusal, or go).
    """
    from prunepeft.run.faults import configure_debug
    from prunepeft.run.layout import DONE_FILE
    from prunepeft.run.lock import RunLock
    from prunepeft.train import distributed

    run_dir = Path(run_dir)
    restart = bool(OmegaConf.select(cfg, "restart", default=False))
    if distributed.broadcast_object((run_dir / DONE_FILE).exists()) and not restart:
        yield
        return
    lock = RunLock(run_dir) if distributed.is_main() else None
    try:
        distributed.follow_main(lambda: _prepare_run_dir(run_dir, cfg, lock, restart), UserError)
        configure_debug(OmegaConf.select(cfg, "debug.kill_at", default=None))
        yield
    finally:
        configure_debug(None)
        if lock is not None:
            lock.release()


def _prepare_run_dir(run_dir: Path, cfg: DictConfig, lock: Any, restart: bool) -> None:
    """Take the lock, honour `restart=true`, check the configuration and checkpoint, heal the logs."""
    from prunepeft.pruning.checkpoint import verify
    from prunepeft.run.record import RunDir

    note = lock.acquire()
    if note:
        log.warning(note)
        print(f"note: {note}", file=sys.stderr)
    rd = RunDir(run_dir)
    if restart:
        moved = rd.set_aside()
        if moved is not None:
            print(f"restart=true: moved the earlier outputs to {moved}", file=sys.stderr)
    rd.check_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    if (run_dir / outputs.CHECKPOINT).is_dir():
        verify(run_dir / outputs.CHECKPOINT)
    for healed in rd.heal_logs():
        log.warning(healed)


def run_in_hydra(fn: Callable[[DictConfig, Path], Any], cfg: DictConfig) -> Any:
    """Call a command's `run(cfg, run_dir)`: user errors exit 2, interrupts 130/143, divergence 1.

    In a multirun nothing a job finds wrong calls `sys.exit` (a SystemExit escapes Hydra's
    launchers and ends the whole sweep): the pre-run checks raise, and the job, checks included,
    runs under `run_job_tolerant`, which logs the error and returns `JobFailed` (the sweep
    summary lists it as failed; the CLI exits 2 at the end). Ctrl-C / SIGTERM still end the sweep.
    """
    from prunepeft.run.sweep import in_multirun

    if in_multirun():
        with _fault_exits(), _signals_interrupt():
            return run_job_tolerant(lambda c, d: _run_checked(fn, c, d), cfg, hydra_run_dir())
    with user_errors(), _fault_exits(), _signals_interrupt():
        return _run_checked(fn, cfg, hydra_run_dir())


def _run_checked(fn: Callable[[DictConfig, Path], Any], cfg: DictConfig, run_dir: Path) -> Any:
    """The pre-run checks, the run lock and the experiment tracker (run commands), then `fn`.

    Raises:
        UserError: a bad input or a refused run directory (never `sys.exit`).
    """
    from prunepeft.train import distributed
    from prunepeft.run.trackers import session

    distributed.setup()  # joins the process group of a `torchrun` launch (else a no-op)
    if OmegaConf.select(cfg, "command", default=None) in RUN_COMMANDS:
        check_run_inputs(cfg)
        with guard_run(run_dir, cfg), session(OmegaConf.select(cfg, "logger", default=None), run_dir, distributed.is_main()):
            return fn(cfg, run_dir)
    return fn(cfg, run_dir)


def preflight_output(command: str, overrides: list[str]) -> list[str]:
    """Check the output directory Hydra is about to create, before Hydra touches it.

    Hydra creates `hydra.run.dir` and opens its log file there before any command code runs, so
    a read-only or occupied path would end in a Hydra traceback. Returns extra overrides: a
    finished run in a read-only directory is re-displayed with logging to stdout only.

    Raises:
        UserError: the output path is a file, or is not writable (and holds no finished run);
            see also `check_run_inputs`.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from prunepeft.config.schema import register_configs

    if command not in (*RUN_COMMANDS, "report") or "-m" in overrides or "--multirun" in overrides:
        return []
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="prunepeft.conf", version_base="1.3"):
            cfg = compose(config_name=command, overrides=[o for o in overrides if not o.startswith("-")],
                          return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            out = Path(str(cfg.hydra.run.dir))
    except Exception:  # noqa: BLE001 - Hydra reports a bad override itself, with its own message
        return []
    finally:
        GlobalHydra.instance().clear()
    if command in RUN_COMMANDS:
        check_run_inputs(cfg)
    key = "out" if command == "report" else "hydra.run.dir"
    if out.exists() and not out.is_dir():
        raise UserError(f"{key}={str(out)!r} is a file; choose a directory")
    if writable(out):
        return []
    if command in RUN_COMMANDS and (out / outputs.DONE).exists():
        return ["hydra/job_logging=stdout"]  # re-display a finished run from a read-only archive
    raise UserError(f"output directory {str(out)!r} is not writable; point {key}= at a writable directory")


def writable(path: Path) -> bool:
    """Whether `path` (or, when it does not exist yet, its nearest existing parent) accepts new files.

    Tries a real write: `os.access` ignores read-only mounts' EROFS for root on some systems.
    """
    import tempfile

    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def log_banner(command: str, run_dir: Any, cfg: Any, budget: int | None = None, base: int | None = None) -> None:
    """The start banner: command, run directory, device, precision, seed, model, task, budget, and the
    training-memory estimate (prunepeft.commands.memory) on a second line."""
    from prunepeft.train.device import resolve_device, resolve_precision

    device = resolve_device(str(cfg.train.device))
    precision = resolve_precision(str(cfg.train.precision), device)
    budget_txt = "n/a"
    if budget is not None:
        budget_txt = f"{budget:,} params" + (f" ({100.0 * budget / base:.3f}% of the backbone)" if base else "")
    banner_log.info("prunepeft %s | run dir %s | device %s, precision %s | seed %s | model %s | task %s | budget %s",
             command, run_dir, device, precision, cfg.seed, cfg.model.name, cfg.task.name, budget_txt)
    log_memory_estimate(command, cfg)


def log_memory_estimate(command: str, cfg: Any) -> None:
    """Log the run's memory estimate; an estimate that cannot be made never stops a run."""
    from prunepeft.commands.memory import estimate_for_run

    try:
        estimate = estimate_for_run(cfg, command)
    except Exception as err:  # noqa: BLE001 - an estimate is advice, the run goes on
        banner_log.debug("no memory estimate: %s: %s", type(err).__name__, err)
        return
    if estimate is not None:
        banner_log.info("%s", estimate.describe())


def run_job_tolerant(fn, cfg: DictConfig, run_dir: Path) -> Any:
    """Run one multirun job; on failure log it and return `JobFailed` so the other jobs still run.

    A UserError is one line (`error: ...`); anything else is logged with its traceback. Ctrl-C and
    SIGTERM (BaseException) still end the sweep.
    """
    from prunepeft.run.sweep import JobFailed

    try:
        return fn(cfg, run_dir)
    except UserError as err:
        log.error("error: %s (job %s)", err, run_dir)
        return JobFailed(str(err))
    except Exception as err:  # a crash of one job must not lose the other jobs
        log.exception("job %s failed", run_dir)
        return JobFailed(f"{type(err).__name__}: {err}")


def tolerant(fn):
    """`fn(cfg, run_dir)` that, inside a multirun, returns `JobFailed` instead of raising."""
    def wrapped(cfg: DictConfig, run_dir: Path) -> Any:
        return run_job_tolerant(fn, cfg, run_dir) if _in_multirun() else fn(cfg, run_dir)

    wrapped.__doc__ = fn.__doc__
    return wrapped


def _in_multirun() -> bool:
    from prunepeft.run.sweep import in_multirun

    return in_multirun()
