"""The lean default (issue 22).

Run from the repository root: `python -m benchmarks.lean_default ...`; the code and its usage are in
`benchmarks/lib/lean_default.py`."""
from benchmarks.lib.lean_default import main

if __name__ == "__main__":
    main()
