"""One seed drives Python, NumPy, torch, every subset and every tie-break."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU torch.Generator seeded with `seed` (for re-initialisation and random scores)."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g
