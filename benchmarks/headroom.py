"""Headroom (issue 26).

Run from the repository root: `python -m benchmarks.headroom ...`; the code and its usage are in
`benchmarks/lib/headroom.py`."""
from benchmarks.lib.headroom import main

if __name__ == "__main__":
    main()
