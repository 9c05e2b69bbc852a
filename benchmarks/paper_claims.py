"""Decide the paper's claims (a)-(d) from a runs directory by benchmarks/rules/paper_claims.md.

Run from the repository root: `python -m benchmarks.paper_claims ...`; the code and its usage are in
`benchmarks/lib/paper_claims.py`."""
import sys

from benchmarks.lib.paper_claims import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
