"""Pruning: statistics collection, the Table 1 criteria, partitions, warm-up and Eq. (1).

Pure, tested math around the one piece that touches training (`collector.StatisticsCollector`,
a train Callback). The search loop (`search.py`) composes these per round:

    stats  = collector.snapshot()                          # dict[UnitId, UnitStatistics]
    scores = scoring.score_snapshot(stats, criteria, ctx)  # per criterion: raw, oriented, Θ̃, ρ
    comb   = combine.combine_paper(scores, assignment)     # Eq. (1): p over active units
    gone   = selection.select_top_k(comb.p, k, seed)       # or selection.select_for_budget(...)
"""
from prunepeft.pruning.statistics import UnitId, UnitStatistics

__all__ = ["UnitId", "UnitStatistics"]
