"""Scale-out on PyTorch's own engine: DistributedDataParallel under torchrun, and Ray for sweeps across machines.

Under torchrun every process holds the whole (small) data set; each step takes one global batch of
world_size x batch_size images from the shared permutation, and each rank trains on its own slice of it. Its loss
is scaled by its share of the global batch, so DDP's gradient average equals the gradient of the global batch mean:
N processes with batch B follow the trajectory of one process with batch N*B.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

from ..errors import BetaVAEError


@dataclass(frozen=True)
class Context:
    """This process's place in the job: rank 0 of 1 when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over ranks (a copy; the input is unchanged)."""
        if not self.distributed:
            return tensor.clone()
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on any rank (for decisions all ranks must take together)."""
        if not self.distributed:
            return flag
        return bool(self.all_sum(torch.tensor([int(flag)], device=device)).item())

    def max(self, values: list[float], device: torch.device) -> list[float]:
        """The element-wise maximum over ranks, so that every rank acts on the same numbers."""
        if not self.distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def local_slice(self, batch: torch.Tensor) -> tuple[slice, float]:
        """This rank's part of a global batch, and its loss scale (its share of the batch times world_size)."""
        bounds = [len(batch) * r // self.world_size for r in range(self.world_size + 1)]
        part = slice(bounds[self.rank], bounds[self.rank + 1])
        return part, (part.stop - part.start) * self.world_size / len(batch)


def from_environment(device: torch.device) -> Context:
    """Join the torchrun job described by the environment (RANK, WORLD_SIZE, ...), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as error:
            raise BetaVAEError(f"could not join the torchrun job ({error}); check MASTER_ADDR/MASTER_PORT or "
                               "--rdzv-endpoint") from None
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(name: str, context_local_rank: int = 0) -> torch.device:
    """cpu, cuda (this process's GPU under torchrun) or auto (CUDA when present)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise BetaVAEError("device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", context_local_rank)) % torch.cuda.device_count())
    return torch.device("cpu")


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def ray_map(function: Callable[..., Any], calls: Sequence[tuple], num_cpus_per_task: float = 1.0) -> list[Any]:
    """Run function(*args) for each args as Ray tasks (on the cluster ray.init finds, else a local one)."""
    try:
        import ray
    except ImportError:
        raise BetaVAEError("the ray backend needs the optional extra: pip install 'betavae[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=num_cpus_per_task)(function)
        return ray.get([task.remote(*args) for args in calls])
    finally:
        if started_here:
            ray.shutdown()
