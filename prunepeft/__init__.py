"""prunepeft: find which PEFT modules to put where, by hybrid pruning of a supernet (PrunePEFT).

The Python API (`prunepeft.api`): `load_run`, `load_export`, `predict`, `evaluate`.
"""

from prunepeft.version import __version__

_API = ("load_run", "load_export", "predict", "evaluate", "open_run")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    # Lazy: `import prunepeft` (the CLI does) must not pull in torch and transformers.
    if name in _API:
        from prunepeft import api

        return getattr(api, name)
    raise AttributeError(f"module 'prunepeft' has no attribute {name!r}")
