"""How many runs each paper-table target launches per SCALE, and how long a run took where one was measured.

Run from the repository root: `python -m benchmarks.plan ...`; the code and its usage are in
`benchmarks/lib/plan.py`."""
import sys

from benchmarks.lib.plan import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
