"""Houlsby adapters (Houlsby et al. 2019), the placement the paper's text names: one bottleneck
adapter after the attention output projection AND one after the FFN output projection; both
form ONE unit per layer (site_index 0 = attn_out, 1 = ffn_out)."""
from __future__ import annotations

from prunepeft.peft.units.adapter import AdapterType


class HoulsbyType(AdapterType):
    name = "houlsby"
    sites = ("attn_out", "ffn_out")

