"""Resumable search state: what has been removed so far, and the counters of the search cost.

Written after the warm-up and after every round to `<run>/checkpoint/`; a search re-invoked on the
same run directory continues from its last finished round (docs/architecture.md#the-run-output-contract).

The checkpoint is one atomic unit. Each save writes a new *generation*: the weights go to
`supernet-<gen>.safetensors` (temp file + rename), then `state.json` is replaced (temp file +
rename) naming that file and its SHA-256. `state.json` is the commit point: a kill before it
leaves the previous state with its own (untouched) weights file; a kill after it leaves the new
pair. Older generations are deleted only after the commit. A damaged checkpoint is reported as
a `UserError` with the way out (`restart=true`), never as a traceback.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.run.io import WriteFailed, atomic_write_bytes, atomic_write_json, read_run_file
from prunepeft.peft.weights import load_trained_tensors, trained_tensors
from prunepeft.pruning import arms
from prunepeft.run.faults import debug_point
from prunepeft.run.record import RECOVERY_HINT

STATE_FILE = outputs.CHECKPOINT_STATE
WEIGHTS_FILE = outputs.CHECKPOINT_WEIGHTS_V1  # checkpoints written before generations existed


def damaged(directory: Path, what: str) -> UserError:
    """The one message for an unusable checkpoint: what is wrong and how to recover."""
    return UserError(f"the checkpoint in {str(directory)!r} cannot be used ({what}); {RECOVERY_HINT}")


@dataclass
class SearchState:
    """Counters and decisions that survive a crash.

    Attributes:
        rounds_done: finished pruning rounds.
        removed: unit keys ("layer:type") in removal order.
        warmup_done: the warm-up finished (warmup.json written).
        examples: training examples processed by the warm-up and the rounds (search cost).
        wall_s: wall-clock of the finished phases.
        phases: seconds per cost phase (prunepeft.pruning.cost), summed over invocations.
        forward_examples: forward-only rows of the search (dev evaluations, probe passes).
        generation: how many times this state was saved (names the weights file of the save).
        weights: the weights file committed with this state (None: no weights saved yet).
        weights_sha256: its SHA-256, checked when the weights are restored.
    """

    rounds_done: int = 0
    removed: list[str] = field(default_factory=list)
    warmup_done: bool = False
    examples: int = 0
    wall_s: float = 0.0
    generation: int = 0
    weights: str | None = None
    weights_sha256: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    forward_examples: int = 0

    @classmethod
    def load(cls, directory: Path) -> "SearchState":
        """The committed state in `directory` (a fresh state when there is none).

        Raises:
            UserError: state.json is unreadable, malformed, or names a weights file that is missing.
        """
        directory = Path(directory)
        path = directory / STATE_FILE
        if not path.exists():
            return cls()
        data = read_run_file(path, "object")  # the one guard: missing, torn or not an object
        try:
            state = cls(**data)
        except (ValueError, TypeError) as err:
            raise damaged(directory, f"{STATE_FILE} is unreadable: {type(err).__name__}: {err}") from None
        if state.weights is None and (directory / WEIGHTS_FILE).exists():
            state.weights = WEIGHTS_FILE  # a checkpoint from before generations: no hash to check
        if state.weights is not None and not (directory / state.weights).is_file():
            raise damaged(directory, f"{STATE_FILE} names {state.weights}, which is missing")
        state.charged_before = sum(state.phases.values())  # earlier invocations' cost (cost.summary)
        return state

    def save(self, directory: Path, tensors: dict[str, torch.Tensor] | None = None) -> None:
        """Commit this state (and `tensors`, when given) as the next generation.

        The weights file is new for each generation and complete (fsync'ed, renamed) before
        state.json names it, so no kill can pair a state with weights of another round.
        """
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WriteFailed(f"cannot create the checkpoint directory {str(directory)!r} ({err.strerror or err}); "
                              f"{RECOVERY_HINT}") from None
        self.generation += 1
        if tensors is not None:
            blob = save_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
            name = outputs.checkpoint_weights(self.generation)
            atomic_write_bytes(directory / name, blob)
            self.weights, self.weights_sha256 = name, hashlib.sha256(blob).hexdigest()
        debug_point("between_checkpoint_writes")
        atomic_write_json(directory / STATE_FILE, asdict(self))  # the commit point
        for old in directory.glob(outputs.CHECKPOINT_WEIGHTS_GLOB):  # superseded generations
            if old.name != self.weights:
                old.unlink(missing_ok=True)
        debug_point("after_checkpoint")


def supernet_tensors(supernet) -> dict[str, torch.Tensor]:
    """The active units' tensors and the head's (both are trained in a round; `reinit=keep` carries
    them), in the key scheme of `prunepeft.peft.weights`, plus the rank masks under granularity=rank."""
    return {**trained_tensors(supernet), **arms.checkpoint_tensors(supernet)}


def restore_weights(directory: Path, supernet) -> bool:
    """Load the tensors committed with the state into `supernet` (pruned units already deactivated).

    Returns:
        False when the checkpoint holds no weights.

    Raises:
        UserError: the weights file is damaged, differs from the hash in state.json, or does not
            fit the active units.
    """
    directory = Path(directory)
    state = SearchState.load(directory)
    if state.weights is None:
        return False
    blob = read_run_file(directory / state.weights, "bytes")
    if state.weights_sha256 is not None and hashlib.sha256(blob).hexdigest() != state.weights_sha256:
        raise damaged(directory, f"{state.weights} does not match the SHA-256 recorded in {STATE_FILE}")
    try:
        tensors = load_bytes(blob)
        load_trained_tensors(supernet, {k: v for k, v in tensors.items() if not arms.owns_tensor(k)},
                             where=state.weights)
        arms.call_all("restore_tensors", supernet, tensors)
    except Exception as err:  # safetensors, shape and key errors all mean "these weights do not fit"
        raise damaged(directory, f"{state.weights}: {type(err).__name__}: {err}") from None
    return True


def verify(directory: Path) -> SearchState:
    """Check the checkpoint in `directory` before a resume (state readable, weights intact).

    Called before anything is loaded or written, so a damaged checkpoint is reported at once.

    Raises:
        UserError: see `SearchState.load`; also a weights file whose hash or header is wrong.
    """
    directory = Path(directory)
    state = SearchState.load(directory)
    if state.weights is not None:
        blob = read_run_file(directory / state.weights, "bytes")
        if state.weights_sha256 is not None and hashlib.sha256(blob).hexdigest() != state.weights_sha256:
            raise damaged(directory, f"{state.weights} does not match the SHA-256 recorded in {STATE_FILE}")
        try:
            load_bytes(blob)
        except Exception as err:
            raise damaged(directory, f"{state.weights}: {type(err).__name__}: {err}") from None
    return state
