"""Where and how reproducibly things run: the default device, the seeding scheme and batch sizes that fit."""

from __future__ import annotations

import hashlib
import numbers
import platform
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

import torch

from ._checks import check_positive_int

__all__ = ["derive_seed", "sample_generators", "resolve_device", "cpu_model", "run_in_chunks", "CPU_CHUNK"]

T = TypeVar("T")
CPU_CHUNK = 128
"""Rows per chunk on a CPU. A CPU gains little from larger batches (per image, one forward and double backward
of the width-0.25 MNIST CNN costs about 0.50 ms at 32 rows and 0.43-0.47 ms at 64-192 on the 2-core
development machine); 128 rows keep two cores busy and bound the memory of an Integrated Gradients batch."""
# Per (key, device): the largest chunk known to fit, learnt from out-of-memory errors.
_FITTED: dict[tuple[Hashable, str], int] = {}


def derive_seed(*parts: int | float | str) -> int:
    """A 63-bit seed derived from its parts, ``sha256(repr(parts))``: one independent stream per unit of work.

    Training shuffles epoch ``e`` with ``derive_seed(seed, e)`` and draws batch ``b``'s noise from
    ``derive_seed(seed, e, b)``; a sweep seeds shard ``k`` of model ``m`` with ``derive_seed(seed, m, k)``.

    Numpy numbers count as the Python numbers they equal (``np.int64(3)`` as ``3``), so a seed read from an
    array gives the stream of the same seed typed by hand.

    Args:
        *parts: integers, floats and strings (Python or numpy) that name the unit of work.

    Returns:
        An int in ``[0, 2**63)``, the same for the same parts on every machine.

    Raises:
        TypeError: a part that is not an integer, float or string (a bool, None, a tensor, a list).
    """
    parts = tuple(_seed_part(p, i) for i, p in enumerate(parts))
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def sample_generators(x: torch.Tensor, *parts: int | float | str) -> list[torch.Generator]:
    """One random stream per sample of ``x``, seeded by ``parts`` and a digest of the sample's own values.

    A sample draws the same numbers in any batch, at any position: ``derive_seed(*parts, sha256(x[i])[:16])``.

    Args:
        x: (B, ...) the samples.
        *parts: what else names the unit of work (the seed, a restart, the purpose), as in ``derive_seed``.

    Returns:
        B generators on ``x``'s device.

    Raises:
        TypeError: ``x`` is not a tensor with a batch dimension, or a part is not an integer, float or string.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise TypeError(f"x must be a batched tensor (B, ...), got {getattr(x, 'shape', type(x).__name__)}.")
    out = []
    for row in x.detach():
        digest = hashlib.sha256(row.reshape(-1).cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
        out.append(torch.Generator(device=x.device).manual_seed(derive_seed(*parts, digest)))
    return out


def _seed_part(part, index: int) -> int | float | str:
    if isinstance(part, str):
        return str(part)  # numpy's str_ has another repr
    if isinstance(part, numbers.Integral) and not isinstance(part, bool):
        return int(part)
    if isinstance(part, numbers.Real) and not isinstance(part, bool):
        return float(part)
    raise TypeError(f"derive_seed takes integers, floats and strings; part {index} is {part!r} "
                    f"({type(part).__name__}).")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``device`` itself when given, else CUDA when available, else the CPU.

    Args:
        device: ``None``, ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.

    Returns:
        A ``torch.device``.

    Raises:
        ValueError: an unknown device name, or a CUDA device on a machine without one.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be a string or a torch.device, got {type(device).__name__}; use 'auto', "
                         "'cpu', 'cuda' or 'cuda:N'.")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}; use 'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'.") \
            from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: attrbound_lite runs on 'cpu' and 'cuda' (the {resolved.type!r} backend "
                         "is not supported); use 'auto', 'cpu', 'cuda' or 'cuda:N'.")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asks for CUDA, but this machine has no CUDA device; use 'cpu' or 'auto'.")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
    return resolved


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()`` or ``platform.machine()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_in_chunks(fn: Callable[[int, int], T], n: int, device: str | torch.device, key: Hashable = None,
                  size: int | None = None) -> list[T]:
    """``[fn(0, s), fn(s, 2 s), ...]`` over rows ``0..n``, in chunks as large as the device allows.

    On CUDA the first chunk is the whole work (or the largest size known to fit for ``key``); when a chunk
    raises ``torch.cuda.OutOfMemoryError`` the cache is emptied, the size halved and the chunk retried, and the
    size that fits is remembered for ``key``, so that a sweep that fits in smaller chunks never fails for
    memory. On a CPU, chunks of ``CPU_CHUNK`` rows: the same on every run, so results do not depend on memory.

    Args:
        fn: computes rows ``start:stop`` (it must have no side effects that a retry would repeat).
        n: the number of rows.
        device: where ``fn`` runs.
        key: what the memory of a row depends on (model, attribution, attack, input shape, dtype); None: not
            remembered.
        size: a fixed chunk size (overrides the above, and is halved on CUDA only when memory runs out).

    Returns:
        The chunks' results, in order.

    Raises:
        torch.cuda.OutOfMemoryError: If even one row does not fit.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable (start, stop) -> result, got {type(fn).__name__}.")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n (the number of rows) must be an integer >= 0, got {n!r}.")
    if size is not None:
        size = check_positive_int(size, "size")
    try:
        hash(key)
    except TypeError:
        raise TypeError(f"key must be hashable (a tuple of what a row's memory depends on), got "
                        f"{type(key).__name__} {key!r:.60}; use a tuple instead of a list.") from None
    try:  # not resolve_device: a chunked computation runs where its tensors already are
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N' (where the tensors are).") \
            from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(device)!r}: attrbound_lite runs on 'cpu' and 'cuda'.")
    cuda = device.type == "cuda"
    if size is None:
        size = _FITTED.get((key, str(device)), n) if cuda else CPU_CHUNK
    size = max(1, min(int(size), n))
    out, start = [], 0
    while start < n:
        stop = min(start + size, n)
        try:
            out.append(fn(start, stop))
        except torch.cuda.OutOfMemoryError:
            if not cuda or stop - start == 1:
                raise
            torch.cuda.empty_cache()
            size = max(1, (stop - start) // 2)
            if key is not None:
                _FITTED[(key, str(device))] = size
            continue
        start = stop
    return out
