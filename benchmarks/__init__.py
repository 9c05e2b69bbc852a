"""The benchmark studies, run from the repository root as `python -m benchmarks.<name>` (a package, so
the studies import their shared code as `benchmarks.lib.*` without touching `sys.path`).

`benchmarks/<name>.py` are the entry points; what they compute lives in `benchmarks/lib/`, the one
place the tests import from (a test never imports an entry point: tests/test_benchmarks_layout.py).
The studies use the package's public API only (`prunepeft.analysis.stats` for the statistics,
`prunepeft.run.outputs` for the run-file names)."""
