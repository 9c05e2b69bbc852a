"""Data parallelism through torch.distributed (launched by `torchrun`); a no-op in one process.

`torchrun --nproc_per_node=N -m prunepeft.cli search ...` starts N processes with RANK, WORLD_SIZE,
LOCAL_RANK and MASTER_ADDR/PORT set; `setup()` (called by every run command) joins them into one
process group (NCCL on CUDA, gloo on CPU). From there:

- every rank builds the same model, subsets and seeds (nothing here depends on the rank), loads
  the same batches in the same order, and keeps rows r::W of each single-process micro-batch
  (`shard`): the union of the shards is exactly the single-process batch, padded the same way;
- the one training loop wraps the model in DistributedDataParallel (`wrap`), which averages the
  gradients after backward, so gradients, clipping, optimizer steps and every weight stay
  identical on all ranks;
- only rank 0 writes files (`is_main`; prunepeft.run.io skips writes elsewhere) and takes the run
  lock; the other ranks follow its decision (`follow_main`).
"""
from __future__ import annotations

import atexit
import contextlib
import inspect
import logging
import os
import sys
from datetime import timedelta
from typing import Any, Callable, Optional, TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)
T = TypeVar("T")


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0, the only rank that writes files and prints results."""
    return rank() == 0


def launched() -> bool:
    """True when a launcher (torchrun) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _export_submitit_env() -> None:
    """Inside a submitit job of several tasks (`hydra.launcher.tasks_per_node` or `nodes` > 1), set
    torch.distributed's env:// variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) from
    submitit's own job environment, so each task joins one process group as under torchrun.

    A job started by torchrun already has WORLD_SIZE and is left alone; so is a one-task job.
    CUDA_VISIBLE_DEVICES is not narrowed: `setup` picks the GPU by LOCAL_RANK.
    """
    if "WORLD_SIZE" in os.environ or not os.environ.get("SUBMITIT_EXECUTOR"):
        return
    try:
        from submitit import JobEnvironment
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:  # the launcher is an optional extra
        return
    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def setup() -> None:
    """Join the process group of a `torchrun` launch or of a several-task submitit job (no-op in a
    single process or when joined).

    Ranks other than 0 stop printing to stdout and log warnings only, and drop the run-log file
    handler: results and logs appear once, from rank 0.
    """
    _export_submitit_env()
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return
    cuda = torch.cuda.is_available() and os.environ.get("PRUNEPEFT_DIST_BACKEND", "") != "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    minutes = float(os.environ.get("PRUNEPEFT_DIST_TIMEOUT_MIN", "30"))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=minutes))
    atexit.register(teardown)
    if rank() != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, logging.FileHandler):
                root.removeHandler(handler)
        root.setLevel(logging.WARNING)
    log.info("data parallel: %d processes (%s)", world_size(), dist.get_backend())


def teardown() -> None:
    """Leave the process group (at exit)."""
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if active():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (picklable objects; no-op in one process)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def follow_main(fn: Callable[[], T], error_type: type[Exception]) -> Optional[T]:
    """Run `fn` on rank 0 only; every rank raises `error_type` with rank 0's message if it did.

    For decisions that must be taken once (the run lock): the other ranks get None back.
    """
    if not active():
        return fn()
    result, failure = None, None
    if is_main():
        try:
            result = fn()
        except error_type as err:
            failure = str(err)
        except BaseException:
            broadcast_object(("crashed", "rank 0 failed while preparing the run directory"))
            raise
    failure = broadcast_object(("error", failure) if is_main() else None)
    if failure[1] is not None:
        raise error_type(failure[1])
    return result


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """`t` summed over ranks, in place (no-op in one process)."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order ([obj] in one process)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def shard(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Rows r::W of a collated batch and how many there are (the whole batch in one process).

    A rank whose share is empty (a last batch with fewer rows than ranks) gets row 0 back with a
    count of 0: it still runs forward and backward (DDP needs every rank in every all-reduce), and
    the loop weighs that pass by 0 and hides it from the statistics.
    """
    if not active():
        return batch, len(batch["labels"])
    r, w = rank(), world_size()
    n = len(batch["labels"])
    rows = torch.arange(r, n, w)
    if len(rows) == 0:
        return {k: v[:1] for k, v in batch.items()}, 0
    return {k: v[rows] for k, v in batch.items()}, len(rows)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel when several processes train it, else `model` itself.

    The ranks already hold identical weights (same seed, same code), so DDP's initial broadcast of
    every parameter and buffer (the whole frozen backbone) is skipped where torch allows it.
    """
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    accepts = inspect.signature(DistributedDataParallel.__init__).parameters
    # Buffers (position ids) never change: no sync per forward either.
    kwargs: dict[str, Any] = {"forward_sync_buffers" if "forward_sync_buffers" in accepts else "broadcast_buffers": False}
    if "init_sync" in accepts:
        kwargs["init_sync"] = False
    if device.type == "cuda":
        kwargs["device_ids"] = [device.index if device.index is not None else torch.cuda.current_device()]
    return DistributedDataParallel(model, **kwargs)


def no_sync(model: torch.nn.Module, skip: bool) -> contextlib.AbstractContextManager:
    """DDP's `no_sync()` for the micro-batches before the last of an optimizer step."""
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()
