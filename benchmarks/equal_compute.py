"""Equal compute for warm starts (issue 22, item 5).

Run from the repository root: `python -m benchmarks.equal_compute ...`; the code and its usage are in
`benchmarks/lib/equal_compute.py`."""
from benchmarks.lib.equal_compute import main

if __name__ == "__main__":
    main()
