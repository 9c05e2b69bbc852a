"""The hybrid-rule grid at the correlation level, recomputed from committed `rounds.jsonl` files.

Run from the repository root: `python -m benchmarks.hybrid_grid_offline ...`; the code and its usage are in
`benchmarks/lib/hybrid_grid_offline.py`."""
from benchmarks.lib.hybrid_grid_offline import main

if __name__ == "__main__":
    main()
