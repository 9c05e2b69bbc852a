"""SIGKILLs at seeded points of a tiny search, and inside the write phase of export and report.

Run from the repository root: `python -m benchmarks.faults ...`; the code and its usage are in
`benchmarks/lib/faults.py`."""
from benchmarks.lib.faults import main

if __name__ == "__main__":
    main()
