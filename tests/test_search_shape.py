"""`search()` reads like Algorithm 1 in one screen (issue 13, Deliver 3): checked on its source."""
from __future__ import annotations

import ast
import inspect

from prunepeft.pruning import search as search_module

MAX_LINES, MAX_LOOP_BODY = 60, 10


def _search_def() -> ast.FunctionDef:
    tree = ast.parse(inspect.getsource(search_module))
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "search")


def test_search_fits_one_screen():
    fn = _search_def()
    assert fn.end_lineno - fn.lineno + 1 <= MAX_LINES


def test_round_loop_is_in_search_with_a_short_body():
    fn = _search_def()
    loops = [n for n in ast.walk(fn) if isinstance(n, (ast.While, ast.For))]
    rounds = [n for n in loops if any(isinstance(c, ast.Call) and getattr(c.func, "id", None) == "run_round"
                                      for c in ast.walk(n))]
    assert len(rounds) == 1, "the round loop (the one calling run_round) is in search() itself"
    body = rounds[0].body
    assert body[-1].end_lineno - body[0].lineno + 1 <= MAX_LOOP_BODY
    # Algorithm 1's steps, in order: train one round, combine (Eq. (1)), choose, remove, record.
    calls = [c.func.id for s in body for c in ast.walk(s) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
    steps = ["run_round", "combine_round", "choose_removals", "remove_units", "record_round"]
    assert [c for c in calls if c in steps] == steps
