"""Distributed data parallel under ``torchrun``: gloo on CPU, nccl on CUDA.

``DistContext.from_env()`` reads torchrun's environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``); with one process it is a no-op context. Only rank 0 writes files and
the database; every rank takes its own slice of each global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class DistContext:
    """This process's place in a torchrun (DDP) run; one process of world 1 when not distributed."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes files and reports."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains together."""
        return self.world > 1

    @classmethod
    def from_env(cls) -> "DistContext":
        """Read rank, world size and local rank from torchrun's environment variables."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    def init(self, device_type: str) -> None:
        """Start the process group (NCCL on CUDA, else Gloo); does nothing when not distributed or
        already started."""
        if not self.enabled or self.initialised:
            return
        import torch.distributed as dist
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(self.local_rank)
        dist.init_process_group(backend=backend)
        self.initialised = True

    def device(self, device: str) -> torch.device:
        """The device this process trains on: its own GPU under DDP, else ``device`` as given."""
        if device.startswith("cuda") and self.enabled:
            return torch.device("cuda", self.local_rank)
        return torch.device(device)

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.enabled:
            return obj
        import torch.distributed as dist
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all ranks, in place; returns it."""
        if self.enabled:
            import torch.distributed as dist
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any_flag(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any rank (e.g. a stop request)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        return bool(self.all_reduce_sum(t).item() > 0)

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model wrapped in ``DistributedDataParallel`` under DDP, else unchanged."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP
        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    def barrier(self) -> None:
        """Wait until every rank reaches this point."""
        if self.enabled:
            import torch.distributed as dist
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this context started it."""
        if self.initialised:
            import torch.distributed as dist
            dist.destroy_process_group()
            self.initialised = False
