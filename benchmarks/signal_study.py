"""Search-signal study (settings) and evidence (hybrid vs random vs uniform LoRA), with committed results.

Run from the repository root: `python -m benchmarks.signal_study ...`; the code and its usage are in
`benchmarks/lib/signal_study.py`."""
from benchmarks.lib.signal_study import main

if __name__ == "__main__":
    main()
