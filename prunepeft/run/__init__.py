"""The run wing: the run directory and its record (record), the lock, atomic io, the output contract
(outputs), trackers, sweeps and progress logging. Below every other layer but config/errors/seed:
it knows nothing of models, PEFT or pruning."""
