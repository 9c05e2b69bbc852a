"""Statistics over seeds, one implementation for `prunepeft report` and the studies under `benchmarks/`:
intervals of a mean (t quantile, seed bootstrap, Fisher's z for correlations), the minimum detectable
effect of a paired design, and a mid-rank percentile. Numbers in, numbers out: no files, no frames."""
from __future__ import annotations

import math
import statistics
from typing import Optional

from scipy.stats import t as student_t


def fisher_mean(values: list[Optional[float]]) -> Optional[tuple[float, float, float]]:
    """Mean correlation through Fisher's z with a 95 % interval (t quantile): (mean, low, high)."""
    zs = [math.atanh(max(-0.999999, min(0.999999, v))) for v in values if v is not None]
    if len(zs) < 2:
        return None
    m, sd = statistics.mean(zs), statistics.stdev(zs)
    half = student_t.ppf(0.975, len(zs) - 1) * sd / math.sqrt(len(zs))
    return math.tanh(m), math.tanh(m - half), math.tanh(m + half)


def mean_ci(values: list[float]) -> Optional[tuple[float, float, int]]:
    """(mean, 95 % half-width by the t quantile, n), or None below two values."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    half = student_t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return statistics.mean(values), half, len(values)


def mean_sd(values: list[float]) -> Optional[tuple[float, float, int]]:
    """(mean, sample standard deviation, n), or None below two values."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    return statistics.mean(values), statistics.stdev(values), len(values)


def bootstrap_ci(values: list[float], resamples: int = 10_000, seed: int = 0) -> Optional[tuple[float, float, float, int]]:
    """Seed-bootstrap 95 % percentile interval of the mean (paired: pass the per-seed differences):
    (mean, low, high, n), or None below two values. Resamples seeds with replacement; seeded."""
    import numpy as np
    from scipy.stats import bootstrap

    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    res = bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=resamples, confidence_level=0.95,
                    method="percentile", random_state=np.random.default_rng(seed))
    return statistics.mean(values), float(res.confidence_interval.low), float(res.confidence_interval.high), len(values)


def mde(half_width: float) -> float:
    """Minimum detectable effect at 80 % power for a paired design with this 95 % half-width."""
    return half_width * (1.96 + 0.84) / 1.96


def percentile_in(value: float, envelope: list[float]) -> float:
    """Mid-rank percentile of `value` among `envelope`: 100 × (#below + ½ #tied) / N."""
    below = sum(1 for v in envelope if v < value)
    tied = sum(1 for v in envelope if v == value)
    return 100.0 * (below + 0.5 * tied) / len(envelope)


__all__ = ["bootstrap_ci", "fisher_mean", "mde", "mean_ci", "mean_sd", "percentile_in"]
