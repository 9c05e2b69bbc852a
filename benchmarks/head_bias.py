"""STS-B at `scale=cpu`, seed 1: every Table 2 and Table 6 row with its regression head starting at 0 (the runs
made before 2026-12-05, kept in `benchmarks/results/head_bias/zero/`) and at the training labels' mean (the
table runs, `benchmarks/results/tables_cpu/`; `train.regression_head_bias`, docs/method.md#regression-head).

    python -m benchmarks.head_bias --report     # BENCHMARKS.md §16, byte for byte
"""
from __future__ import annotations

import sys

from benchmarks.lib.head_bias import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
