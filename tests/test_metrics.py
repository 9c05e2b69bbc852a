"""GLUE metrics against values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from prunepeft.errors import UserError
from prunepeft.metrics import METRICS, compute_metrics

# Binary example: TP = 2 (rows 0, 2), TN = 1 (row 4), FP = 1 (row 3), FN = 1 (row 1).
PRED = np.array([1, 0, 1, 1, 0])
GOLD = np.array([1, 1, 1, 0, 0])


def test_registry_names():
    assert list(METRICS) == ["accuracy", "f1", "mcc", "pearson", "spearman"]


def test_binary_known_answers():
    got = compute_metrics(["accuracy", "f1", "mcc"], PRED, GOLD)
    assert got["accuracy"] == pytest.approx(3 / 5)
    # precision = recall = 2/3 -> F1 = 2/3
    assert got["f1"] == pytest.approx(2 / 3)
    # MCC = (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 − 1) / sqrt(3·3·2·2) = 1/6
    assert got["mcc"] == pytest.approx(1 / 6)
    assert list(got) == ["accuracy", "f1", "mcc"]


def test_mcc_of_a_confusion_matrix():
    # TP = 6, TN = 3, FP = 1, FN = 2 -> (18 − 2) / sqrt(7·8·4·5)
    gold = np.array([1] * 6 + [0] * 3 + [0] * 1 + [1] * 2)
    pred = np.array([1] * 6 + [0] * 3 + [1] * 1 + [0] * 2)
    assert METRICS["mcc"](pred, gold) == pytest.approx(16 / math.sqrt(1120))
    assert METRICS["mcc"](gold, gold) == pytest.approx(1.0)
    assert METRICS["mcc"](1 - gold, gold) == pytest.approx(-1.0)


def test_mcc_constant_predictions_is_zero():
    assert METRICS["mcc"](np.ones(6, dtype=int), np.array([0, 1, 0, 1, 1, 0])) == 0.0


def test_three_classes_accuracy_and_macro_f1():
    pred, gold = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])
    assert METRICS["accuracy"](pred, gold) == pytest.approx(3 / 4)
    # per class F1: 1, 2/3 (p=1, r=1/2), 2/3 (p=1/2, r=1) -> macro 7/9
    assert METRICS["f1"](pred, gold) == pytest.approx(7 / 9)


def test_logits_are_reduced_by_argmax():
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 3.0]])
    assert compute_metrics(["accuracy"], logits, np.array([1, 0, 0]))["accuracy"] == pytest.approx(2 / 3)


def test_pearson_known_answer():
    # dx = (−1, 0, 1), dy = (−4/3, −1/3, 5/3): r = 3 / sqrt(2 · 42/9) = 9 / sqrt(84)
    got = compute_metrics(["pearson"], np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert got["pearson"] == pytest.approx(9 / math.sqrt(84))


def test_spearman_known_answer():
    # ranks of gold (1, 3, 2, 4): Σd² = 2 -> ρ = 1 − 6·2 / (4·15) = 0.8
    assert METRICS["spearman"](np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 30.0, 20.0, 40.0])) == pytest.approx(0.8)
    # monotone but not linear: Spearman 1, Pearson below 1
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert METRICS["spearman"](x, x**3) == pytest.approx(1.0)
    assert METRICS["pearson"](x, x**3) < 0.99


def test_regression_column_vector_predictions():
    pred = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    assert METRICS["pearson"](pred, np.array([2.0, 4.0, 6.0])) == pytest.approx(1.0)


def test_constant_regression_output_is_nan():
    got = compute_metrics(["pearson", "spearman"], np.full(4, 2.5), np.array([0.0, 1.0, 2.0, 3.0]))
    assert math.isnan(got["pearson"]) and math.isnan(got["spearman"])


def test_unknown_metric_names_the_choices():
    with pytest.raises(UserError, match=r"unknown metric 'bleu'.*accuracy, f1, mcc, pearson, spearman"):
        compute_metrics(["accuracy", "bleu"], PRED, GOLD)


def test_length_mismatch_and_empty():
    with pytest.raises(ValueError, match="equally many"):
        compute_metrics(["accuracy"], PRED[:3], GOLD)
    with pytest.raises(ValueError):
        compute_metrics(["accuracy"], np.array([]), np.array([]))
