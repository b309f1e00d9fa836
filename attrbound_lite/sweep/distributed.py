"""The process group of a sweep under ``torchrun`` (a no-op for a single process)."""

from __future__ import annotations

import datetime
import os
from typing import Any, Callable

import torch

from ..runtime import resolve_device

_TIMEOUT = datetime.timedelta(hours=24)  # how long a rank may wait at a barrier (the slowest rank's shards)


class _Ranks:
    """The process group from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    A no-op for a single process. Joins an existing group rather than creating a second one. ``device``: the
    config's device (``auto``: ``runtime.resolve_device``), with ``cuda`` meaning the GPU of ``LOCAL_RANK``.
    """

    def __init__(self, device_name: str):
        import torch.distributed as dist

        self.dist, self.owned = dist, False
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = local = int(os.environ.get("LOCAL_RANK", "0"))
        if device_name.startswith("cuda:") and self.world > 1:
            raise ValueError(f"device {device_name!r} would put every rank on the same GPU; use device: cuda (each "
                             "rank takes the GPU of its LOCAL_RANK) or run a single process.")
        device = resolve_device(device_name)
        self.device = torch.device(f"cuda:{local}") if device.type == "cuda" and device.index is None else device
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if dist.is_available() and dist.is_initialized():
            self.world, self.rank = dist.get_world_size(), dist.get_rank()
        elif self.world > 1:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo", timeout=_TIMEOUT)
            self.owned = True
        self.active = self.world > 1

    def barrier(self) -> None:
        if self.active:
            self.dist.barrier()

    def on_rank0(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on rank 0 and hand its result (or its error) to every rank."""
        result, error = None, None
        if self.rank == 0:
            try:
                result = fn()
            except Exception as err:  # re-raised below, on every rank
                error = err
        if self.active:
            box = [result, None if error is None else f"{type(error).__name__}: {error}"]
            self.dist.broadcast_object_list(box, src=0)
            result, message = box
            if message is not None and error is None:
                raise RuntimeError(f"rank 0 failed: {message}")
        if error is not None:
            raise error
        return result

    def close(self) -> None:
        if self.owned:
            self.dist.destroy_process_group()
