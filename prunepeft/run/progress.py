"""Plain log lines for every run: a start banner, one line per epoch, per round, and a final summary.

They go through `logging` (Hydra's job logging: the run's `<command>.log` always, and stderr), so
a run under Slurm or nohup — where the rich bars are off — still shows its progress and results.
On a terminal the stderr lines go through the progress bar's console (`ConsoleHandler`), so each
prints whole above the live bar instead of being overwritten by its next refresh.

The per-epoch lines come from the evaluation events every phase already writes through
`RunDir.event` (`EpochLogger.attach`), so the training loop needs no change. `log_round` and
`log_warmup` are for the search loop (prunepeft.pruning.search) to call.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("prunepeft")


class ConsoleHandler(logging.StreamHandler):
    """The console handler of the job logging (`conf/hydra/job_logging/prunepeft.yaml`).

    On a terminal, each line is printed by the console the progress bars draw on (rich's global
    console, `train/loop.py`'s `Progress`), which clears the live bar, prints the line whole and
    draws the bar again below it. Written straight to stderr instead, a line lands where the bar
    is and the bar's next refresh erases its first half. Off a terminal (a file, a pipe, Slurm,
    nohup) there is no bar: plain lines to the stream, as `logging.StreamHandler` writes them.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console = self._bar_console()
        except (ValueError, OSError):  # a closed stream (a handler outliving its stream): as StreamHandler does
            console = None
        if console is None:
            super().emit(record)
            return
        try:
            console.print(self.format(record), markup=False, highlight=False, emoji=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging never raises into the run
            self.handleError(record)

    def _bar_console(self) -> Any:
        """Rich's console when both it and this handler's stream are the terminal, else None."""
        isatty = getattr(self.stream, "isatty", None)
        if not (isatty and isatty()):  # a closed stream raises here: `emit` treats it as no terminal
            return None
        import rich

        console = rich.get_console()
        return console if console.is_terminal else None


def _duration(seconds: float) -> str:
    seconds = int(max(0, round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _metrics(metrics: Mapping[str, Mapping[str, float]]) -> str:
    return " ".join(f"{split}.{name}={value:.4f}" for split, values in metrics.items()
                    for name, value in values.items() if isinstance(value, (int, float)))


def estimate_rounds(supernet_params: int, budget: int, n_units: int, k: int) -> int:
    """≈ pruning rounds: units to remove (at the mean unit size) over `k` per round, at least 1."""
    if supernet_params <= budget or n_units == 0:
        return 0
    mean_unit = supernet_params / n_units
    return max(1, math.ceil(math.ceil((supernet_params - budget) / mean_unit) / max(1, k)))


def log_warmup(assignment: Mapping[str, str], margins: Mapping[str, float] | None = None,
               rule: str | None = None) -> None:
    """The warm-up's result: the criterion S_H picked per partition key, with the margin of its rule's
    score over the runner-up (τ for `tendency`; `search.warmup.assign`)."""
    label = "τ" if rule is None else rule  # None: the rule scores with τ itself
    parts = [f"{key}: {crit}" + (f" ({label} margin {margins[key]:.3f})" if margins and key in margins else "")
             for key, crit in assignment.items()]
    log.info("warm-up assignment S_H%s: %s", "" if rule is None else f" ({rule})", "; ".join(parts))


# The ≈ number of rounds of the search running in this process: `plan["round"]` of its EpochLogger
# (commands/search.py fills it with `estimate_rounds`), for `log_round` calls that pass none.
_round_plan: dict[str, int | None] = {"rounds": None}


def rounds_of(i: int, params_left: int, budget: int, estimate: int | None) -> int | None:
    """The ≈N printed as "round i of ≈N": the estimate from B and k, never below i, and above i while
    the supernet is still over B (the mean unit size is a guess; a round more is the honest reading)."""
    if not estimate:
        return None
    return max(int(estimate), i + 1 if params_left > budget else i)


def log_round(i: int, approx_total: int | None, removed: Mapping[str, float], params_left: int, budget: int,
              dev: Mapping[str, Mapping[str, float]] | None, seconds: float) -> None:
    """One pruning round: "round i of ≈N", removed units with their p, params left, dev metric, round time.

    `approx_total` None: N is the running search's estimate (`EpochLogger` plan, `estimate_rounds`).
    """
    total = rounds_of(i, params_left, budget, approx_total or _round_plan["rounds"])
    of = f" of ≈{total}" if total else ""
    units = ", ".join(f"{u} (p={p:.3f})" for u, p in removed.items())
    log.info("round %d%s: removed %s; %s params left (budget %s); dev %s; %s", i, of, units or "-",
             f"{params_left:,}", f"{budget:,}", _metrics(dev or {}) or "-", _duration(seconds))


class EpochLogger:
    """Logs one line per evaluated epoch of every phase, with the elapsed time and an ETA.

    Args:
        plan: expected epochs per phase, in order (e.g. {"warmup": 2, "round": 3, "retrain": 20});
            phases named `round<i>` count against "round" (one epoch each, so "round" is also the
            ≈ number of rounds `log_round` prints). Unknown phases count as they come.
    """

    def __init__(self, plan: Mapping[str, int]) -> None:
        self.plan = dict(plan)
        _round_plan["rounds"] = self.plan.get("round") or None  # this run's ≈N (None: no rounds)
        self.done: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.start = time.time()
        self._last = self.start
        self._last_epoch_s = 0.0

    @staticmethod
    def _kind(phase: str) -> str:
        return "round" if phase.startswith("round") else phase

    def eta(self) -> float | None:
        """Seconds left: each phase's remaining epochs at its measured (else the latest) epoch time."""
        if not self.done:
            return None
        latest = self._last_epoch_s
        left = 0.0
        for kind, total in self.plan.items():
            remaining = max(0, total - self.done.get(kind, 0))
            per_epoch = self.seconds.get(kind, 0.0) / self.done[kind] if self.done.get(kind) else latest
            left += remaining * per_epoch
        return left

    def on_eval(self, phase: str, epoch: int, train_loss: float | None, metrics: Mapping[str, Any]) -> None:
        """Record one finished epoch of `phase` and log its line."""
        now = time.time()
        kind = self._kind(phase)
        self._last_epoch_s = now - self._last
        self._last = now
        self.done[kind] = self.done.get(kind, 0) + 1
        self.seconds[kind] = self.seconds.get(kind, 0.0) + self._last_epoch_s
        self.plan.setdefault(kind, self.done[kind])
        eta = self.eta()
        total = self.plan.get(kind)
        of = f"/{total}" if kind != "round" and total else ""
        loss = "-" if train_loss is None else f"{train_loss:.4f}"
        log.info("%s epoch %d%s: train loss %s | dev %s | elapsed %s | ETA %s", phase, epoch, of, loss,
                 _metrics(metrics) or "-", _duration(now - self.start), "?" if eta is None else "≈" + _duration(eta))

    def attach(self, run: Any) -> Any:
        """Log every `kind="eval"` event `run` (a RunDir) writes; returns `run`."""
        write = run.event

        def event(**record: Any) -> None:
            write(**record)
            if record.get("kind") == "eval":
                self.on_eval(str(record.get("phase", "")), int(record.get("epoch", 0)),
                             record.get("train_loss"), record.get("metrics") or {})

        run.event = event
        return run


def log_final(summary: Mapping[str, Any], run_dir: Any, wall_s: float) -> None:
    """The final summary: headline metric (last epoch) and best epoch, PEFT params, time, outputs."""
    primary = summary.get("primary", {})
    value = primary.get("value")
    params = summary.get("params", {})
    best = summary.get("best_metrics", {}).get(primary.get("split"), {}).get(primary.get("metric"))
    log.info("finished in %s: %s %s %s = %s (best epoch %s: %s); PEFT params %s (%s%%); outputs in %s",
             _duration(wall_s), summary.get("task"), primary.get("split"), primary.get("metric"),
             "n/a" if value is None else f"{value:.4f}", summary.get("best_epoch"),
             "n/a" if best is None else f"{best:.4f}", f"{params.get('peft', 0):,}",
             f"{params.get('percent', float('nan')):.3f}", run_dir)
