"""Where and how reproducibly things run: the default device and the project's seeding scheme."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import torch

__all__ = ["derive_seed", "resolve_device", "cpu_model"]


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed derived from any parts, ``sha256(repr(parts))``: one independent stream per unit of work.

    Training shuffles epoch ``e`` with ``derive_seed(seed, e)`` and draws batch ``b``'s noise from
    ``derive_seed(seed, e, b)``; a sweep seeds shard ``k`` of model ``m`` with ``derive_seed(seed, m, k)``.

    Args:
        *parts: integers and strings that name the unit of work.

    Returns:
        An int in ``[0, 2**63)``, the same for the same parts on every machine.
    """
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``device`` itself when given, else CUDA when available, else the CPU.

    Args:
        device: ``None``, ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.

    Returns:
        A ``torch.device``.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()`` or ``platform.machine()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
