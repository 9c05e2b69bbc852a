"""Shared by the backbone-pruning tests (test_backbone_prune*.py): the two sentences fed to a tiny model."""
from __future__ import annotations


def batch(tok):
    enc = tok(["the story was good and the day was long", "not a great day"], padding=True, return_tensors="pt")
    return {k: v for k, v in enc.items()}
