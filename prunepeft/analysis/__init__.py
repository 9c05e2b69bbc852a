"""Instruments: they measure the method (ground truth per decision, the rule grid, rank statistics)
and never steer it. They watch a search through `pruning.observe.SearchObserver`, handed to `search()`
by the command; `prunepeft.pruning` never imports this package."""
