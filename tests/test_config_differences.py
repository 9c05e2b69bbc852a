"""Which config changes make a finished run directory "another configuration" (runs.config_differences)."""
from prunepeft.run.record import config_differences


def test_a_key_added_after_the_run_is_not_a_difference():
    old = {"search": {"k": 2, "warmup": {"epochs": 2}}, "seed": 1}
    new = {"search": {"k": 2, "eval_rounds": True, "warmup": {"epochs": 2, "lr": None}}, "seed": 1}
    assert config_differences(old, new) == []


def test_a_changed_or_removed_key_is_a_difference_named_with_both_values():
    old = {"search": {"k": 2, "fidelity": "high"}, "budget": {"percent": 0.75}}
    new = {"search": {"k": 4}, "budget": {"percent": 0.75}}
    assert config_differences(old, new) == ["search.fidelity: 'high' -> '<unset>'", "search.k: 2 -> 4"]
