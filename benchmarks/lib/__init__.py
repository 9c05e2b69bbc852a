"""What the benchmark studies compute (runners, decision rules fixed before the runs, the tables
rebuilt from `benchmarks/results/`), importable by the entry points `benchmarks/<name>.py` and by
the tests alike."""
