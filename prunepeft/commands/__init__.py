"""One module per CLI command; each exposes `run(cfg, run_dir)` (testable) and `hydra_entry()`."""
