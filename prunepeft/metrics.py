"""GLUE metrics with scikit-learn and scipy (no `evaluate`: it downloads metric scripts).

Values are fractions in [0, 1] (MCC and correlations in [-1, 1]); reports scale them to %.
Paper: MCC for CoLA, Pearson/Spearman for STS-B, accuracy for the other tasks (F1 for MRPC/QQP
is reported beside accuracy).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from prunepeft.errors import UserError, check_choice, choice_error


def _classes(predictions: np.ndarray) -> np.ndarray:
    # Class ids; a (n, num_labels) array of logits is reduced by argmax.
    predictions = np.asarray(predictions)
    return predictions.argmax(-1) if predictions.ndim == 2 and predictions.shape[1] > 1 else predictions.reshape(-1)


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of predicted class ids equal to the labels."""
    return float(accuracy_score(np.asarray(labels).reshape(-1), _classes(predictions)))


def f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """F1 of the positive class 1 for binary tasks (GLUE's MRPC/QQP F1); macro F1 for more classes."""
    y, p = np.asarray(labels).reshape(-1), _classes(predictions)
    binary = set(np.unique(np.concatenate([y, p])).tolist()) <= {0, 1}
    return float(f1_score(y, p, average="binary" if binary else "macro", zero_division=0.0))


def mcc(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation coefficient (0 when either side is constant, as scikit-learn defines it)."""
    return float(matthews_corrcoef(np.asarray(labels).reshape(-1), _classes(predictions)))


def _correlation(fn: Callable, predictions: np.ndarray, labels: np.ndarray) -> float:
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if len(p) < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        # Undefined for constant input (e.g. a collapsed regression head): NaN, never a fake 0.
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(p, y)[0])


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Pearson correlation of predicted and gold scores (NaN if either is constant)."""
    return _correlation(stats.pearsonr, predictions, labels)


def spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Spearman rank correlation of predicted and gold scores (NaN if either is constant)."""
    return _correlation(stats.spearmanr, predictions, labels)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(names: list[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Compute each named metric of `predictions` against `labels`.

    Args:
        names: metric names, keys of `METRICS`.
        predictions: class ids (or logits, reduced by argmax) for classification; floats for regression.
        labels: gold class ids or scores, same length.

    Returns:
        name -> value, in the order of `names`.

    Raises:
        UserError: an unknown metric name (the message lists the valid ones).
        ValueError: empty inputs or different lengths (a programming error, not the user's).
    """
    for name in names:
        if name not in METRICS:
            raise choice_error("metric", name, METRICS)
    n_pred = np.asarray(predictions).shape[0] if np.ndim(predictions) else 0
    n_gold = np.asarray(labels).reshape(-1).shape[0]
    if n_gold == 0 or n_pred != n_gold:
        raise ValueError(f"need equally many predictions and labels (> 0); got {n_pred} and {n_gold}")
    return {name: METRICS[name](predictions, labels) for name in names}


def check_task_metrics(task) -> None:
    """Check a TaskConfig's `metrics` and `primary_metric` before anything trains.

    Without this a typo (`task.primary_metric=f2`) surfaces only at the first evaluation, after an
    epoch of training and with run.json already written.

    Raises:
        UserError: no metrics, an unknown metric name, or a primary metric not among `task.metrics`.
    """
    names = [str(n) for n in task.metrics]
    if not names:
        raise UserError(f"task {task.name!r} lists no metrics; valid choices: {', '.join(sorted(METRICS))}")
    for name in names:
        check_choice("metric", name, METRICS)
    if task.primary_metric not in names:
        raise UserError(f"task.primary_metric={task.primary_metric!r} is not one of task.metrics; "
                        f"valid choices: {', '.join(names)}")
