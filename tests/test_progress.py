"""What a person watching a run reads: "round i of ≈N" and, on a terminal, whole log lines above a
live progress bar (one console for both)."""
from __future__ import annotations

import logging

from prunepeft import progress_log
from prunepeft.progress_log import EpochLogger, estimate_rounds, log_round


def test_round_i_of_about_n_from_the_budget_and_k(caplog):
    caplog.set_level(logging.INFO, logger="prunepeft")
    # 10 units of 100 params, B = 420: 6 units to remove, k = 2 -> ≈3 rounds
    n = estimate_rounds(1000, 420, 10, 2)
    assert n == 3
    EpochLogger({"warmup": 1, "round": n, "retrain": 1})  # what commands/search.py builds
    log_round(1, None, {"3:lora": 0.9}, 800, 420, None, 1.0)
    log_round(3, None, {"5:lora": 0.8}, 500, 420, None, 1.0)  # still above B: one more, not "3 of ≈3"
    log_round(4, None, {"6:lora": 0.7}, 400, 420, None, 1.0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("round ")]
    assert lines[0].startswith("round 1 of ≈3: removed 3:lora (p=0.900)")
    assert lines[1].startswith("round 3 of ≈4:") and lines[2].startswith("round 4 of ≈4:")
    # a run without rounds (a baseline) prints no estimate
    EpochLogger({"train": 2})
    log_round(1, None, {}, 10, 5, None, 1.0)
    assert caplog.records[-1].getMessage().startswith("round 1: ")
    assert progress_log._round_plan["rounds"] is None
