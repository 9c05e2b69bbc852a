"""Stage-B comparisons that fit on a CPU.

Run from the repository root: `python -m benchmarks.cpu_stage_b ...`; the code and its usage are in
`benchmarks/lib/cpu_stage_b.py`."""
from benchmarks.lib.cpu_stage_b import main

if __name__ == "__main__":
    main()
