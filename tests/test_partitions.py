"""The spindle partition formula b_j = floor(c_j·L + 0.5), block(l) = #{j : l >= b_j}."""
from __future__ import annotations

import pytest

from prunepeft.errors import UserError
from prunepeft.pruning.partitions import Partition, boundaries, key_str, parse_key


@pytest.mark.parametrize(
    "layers, bounds, blocks",
    [
        (4, [1, 2, 3], [[0], [1], [2], [3]]),
        (6, [1, 3, 5], [[0], [1, 2], [3, 4], [5]]),
        (12, [2, 6, 10], [[0, 1], [2, 3, 4, 5], [6, 7, 8, 9], [10, 11]]),
        (24, [5, 12, 19], [list(range(0, 5)), list(range(5, 12)), list(range(12, 19)), list(range(19, 24))]),
    ],
)
def test_partition_formula(layers, bounds, blocks):
    assert boundaries(layers) == bounds
    part = Partition(layers)
    assert part.blocks() == blocks
    assert [part.block(layer) for layer in range(layers)] == [b for b, ls in enumerate(blocks) for _ in ls]


def test_tiny_models_allow_empty_blocks():
    assert Partition(1).blocks() == [[], [0], [], []]  # b = (0, 1, 1)
    assert Partition(2).blocks() == [[], [0], [1], []]  # b = (0, 1, 2)


def test_custom_cuts_and_validation():
    assert Partition(10, cuts=(0.5,)).blocks() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    with pytest.raises(UserError, match="partition_cuts"):
        Partition(6, cuts=(0.5, 0.2))
    with pytest.raises(UserError, match="partition_cuts"):
        Partition(6, cuts=(0.0, 0.5))
    with pytest.raises(UserError, match="num_layers"):
        Partition(0)
    with pytest.raises(ValueError, match="outside"):
        Partition(6).block(6)


def test_keys_and_string_form():
    part = Partition(6)
    units = [(0, "lora"), (0, "adapter"), (2, "lora"), (1, "lora"), (5, "adapter")]
    assert part.key((2, "lora")) == (1, "lora")
    assert part.keys(units) == [(0, "adapter"), (0, "lora"), (1, "lora"), (3, "adapter")]
    assert part.group(units)[(1, "lora")] == [(2, "lora"), (1, "lora")]
    assert key_str((1, "lora")) == "b1:lora"
    assert parse_key("b1:lora") == (1, "lora")
    assert parse_key(key_str((3, "houlsby"))) == (3, "houlsby")
    for bad in ("1:lora", "bx:lora", "b1", "b1:"):
        with pytest.raises(UserError, match="partition key"):
            parse_key(bad)
