"""prunepeft: find which PEFT modules to put where, by hybrid pruning of a supernet (PrunePEFT)."""

__version__ = "0.1.0"
