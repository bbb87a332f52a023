"""One run on several processes: data parallelism under ``torchrun``.

    torchrun --nproc-per-node 2 -m srlib.train --batch 16 ...

torchrun starts one process per GPU (or per CPU share) and sets ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK``; ``srlib.train`` reads them (``world``). Every rank draws the run's
whole seeded batch from its own ``PatchSampler`` (same seed, same stream) and trains on
its share of it (``share``: rows ``rank * B/N`` to ``(rank + 1) * B/N``), so that N ranks
at batch B see exactly the patches of one process at batch B. After each backward pass
the gradients are averaged over the ranks (``average_gradients``, an all-reduce: nccl on
CUDA, gloo on the CPU), which is the gradient of the whole batch's mean loss: the ranks
take the single process's steps, up to the order of floating-point sums.

The all-reduce is explicit rather than ``DistributedDataParallel``'s reducer because
the training step runs the generator twice before one backward pass (the ``ms`` and
``ds`` terms), the critic twice before its backward pass, and differentiates the critic
twice for R1: patterns DDP's reducer refuses or needs ``static_graph`` for. The cost is
DDP's overlap of communication with the backward pass, which these small networks do not
need.

Rank 0 alone writes: logs, validation, checkpoints, the generator, the evaluation and
``metrics.json``. A stop signal (SIGTERM, SIGINT) is agreed on by all ranks at each
iteration, so that they checkpoint and stop at the same one; a resumed run loads the
checkpoint on every rank.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

# generous: rank 0 validates and checkpoints while the others wait at the next collective
TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of one run: ``rank`` in ``[0, size)``,
    ``local_rank`` its GPU on this machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this rank writes the run's files (rank 0)."""
        return self.rank == 0

    @property
    def on(self) -> bool:
        """Whether the run is spread over several processes."""
        return self.size > 1


def peer_failure(err: BaseException) -> str:
    """What a collective's error says when another rank of a torchrun job died (killed, out
    of memory): gloo's or nccl's "connection closed / reset by peer" and the like, as one
    line; '' for any other error (a bug, which keeps its traceback)."""
    if not isinstance(err, RuntimeError) or world().size < 2:
        return ""
    text = str(err)
    signs = ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
             "NCCL communicator was aborted", "ncclRemoteError", "Gloo", "gloo", "timed out")
    return text.strip().splitlines()[0][:300] if any(s in text for s in signs) else ""


def world() -> World:
    """The ranks as torchrun (or ``srun`` with the same variables) set them; one process
    without them. ``ValueError`` on values that do not make sense."""
    env = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    if env["WORLD_SIZE"] is None:
        return World()
    try:
        w = World(int(env["RANK"] or 0), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"] or 0))
    except ValueError:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers (as torchrun sets "
                         f"them), got {env}") from None
    if not (w.size >= 1 and 0 <= w.rank < w.size and w.local_rank >= 0):
        raise ValueError(f"RANK {w.rank} must lie in [0, WORLD_SIZE {w.size}), got {env}")
    return w


def check_batch(batch: int, w: World) -> None:
    """Each rank trains on ``batch / size`` patches: the world size must divide the
    batch."""
    if w.on and batch % w.size:
        raise ValueError(f"batch {batch} is not divisible by torchrun's world size {w.size}: "
                         f"each rank trains on batch / world size patches; use a batch that "
                         f"is a multiple of {w.size}")


def device(w: World, dev: torch.device) -> torch.device:
    """A rank's device: its own GPU (``cuda:LOCAL_RANK``) on CUDA, else ``dev``."""
    if w.on and dev.type == "cuda":
        dev = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(dev)
    return dev


def start(w: World, dev: torch.device) -> None:
    """Join the run's process group (nccl on CUDA, gloo otherwise); nothing for one
    process."""
    if w.on and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=TIMEOUT,
                                device_id=dev if dev.type == "cuda" else None)


def stop(w: World) -> None:
    """Leave the process group (the end of a run, or its failure)."""
    if w.on and dist.is_initialized():
        dist.destroy_process_group()


def share(x: torch.Tensor, w: World) -> torch.Tensor:
    """This rank's rows of a whole batch ``(B, ...)``: ``B / size`` of them."""
    if not w.on:
        return x
    n = x.shape[0] // w.size
    return x[w.rank * n:(w.rank + 1) * n]


def average_gradients(module: nn.Module, w: World) -> None:
    """Replace every gradient of ``module`` by its mean over the ranks (one all-reduce of
    all of them, flattened)."""
    if not w.on:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= w.size
    start_at = 0
    for g in grads:
        g.copy_(flat[start_at:start_at + g.numel()].view_as(g))
        start_at += g.numel()


def same_weights(module: nn.Module, w: World) -> None:
    """Every rank's parameters and buffers set to rank 0's."""
    if not w.on:
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, 0)


def mean(values: dict[str, torch.Tensor], w: World) -> dict[str, torch.Tensor]:
    """Scalars averaged over the ranks (the logged loss terms: the whole batch's)."""
    if not w.on or not values:
        return values
    keys = list(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(flat)
    return dict(zip(keys, flat / w.size, strict=True))


def any_rank(flag: bool, w: World, dev: torch.device) -> bool:
    """Whether ``flag`` is set on any rank (a stop signal: all ranks stop together)."""
    if not w.on:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
