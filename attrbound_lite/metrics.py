"""Per-sample similarity metrics between attribution maps.

Conventions follow the attributional-robustness literature (Ghorbani et al.
2019, "Interpretation of Neural Networks is Fragile"; Chen et al. 2019,
"Robust Attribution Regularization"):

* Every function takes batch-first tensors and returns one value per sample,
  shape ``(B,)`` (``mass_center`` returns ``(B, 2)``, ``saliency_map`` a map).
* Pair metrics flatten each sample of ``a`` and ``b`` (identical shapes
  ``(B, ...)``) to a vector of length ``n``.  Ranking metrics (Spearman,
  Kendall, top-k) are usually applied to ``saliency_map(attr)``, i.e. the
  channel-summed absolute attribution normalised to sum to one per sample.
* Every function takes ``mask`` (bool, shape ``(B,)``); the result is NaN
  where ``mask`` is False (the field marks samples whose label the attack
  changed this way).
* Integer inputs are converted to the default float dtype; results have the
  (promoted) floating dtype of the inputs and live on their device.
* Everything is vectorised over the batch; no scipy at runtime.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from . import _checks

__all__ = [
    "saliency_map",
    "euclidean",
    "cosine",
    "pearson",
    "spearman",
    "kendall_tau",
    "topk_intersection",
    "mass_center",
    "mass_center_shift",
]

_DEFAULT_MAX_PAIRS = 2**24  # pair elements per chunk in kendall_tau


# --------------------------------------------------------------------- helpers
def _as_float(x: Tensor, name: str, dtype: torch.dtype | None = None) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise ValueError(f"{name} is complex ({x.dtype}); pass a real tensor")
    if x.device.type == "meta":
        raise ValueError(f"{name} is on the 'meta' device and holds no values; pass a tensor with data")
    if dtype is None:
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    x = x.to(dtype)
    if x.ndim < 2:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}, but a batch dimension is required: "
            f"expected (B, ...) with ndim >= 2; use {name}.unsqueeze(0) for one sample"
        )
    if x.numel() > 0 and not _checks._TRUSTED and not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"{name} contains NaN or Inf values; clean the input "
            f"(e.g. torch.nan_to_num) before computing metrics"
        )
    return x


def _pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Validate a pair and return both flattened to (B, n) in a common float dtype."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have identical shapes, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}; compare attributions of the same inputs"
        )
    dtype = torch.promote_types(a.dtype, b.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    a, b = _as_float(a, "a", dtype), _as_float(b, "b", dtype)
    if a.shape[1:].numel() == 0:
        raise ValueError(
            f"samples are empty (shape {tuple(a.shape)}); need n >= 1 values per sample"
        )
    return a.flatten(1), b.flatten(1)


def _masked(out: Tensor, mask: Tensor | None) -> Tensor:
    """Set ``out[i]`` (any trailing shape) to NaN where ``mask[i]`` is False."""
    if mask is None:
        return out
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise ValueError("mask must be a bool torch.Tensor of shape (B,); use mask.bool()")
    if mask.shape != out.shape[:1]:
        raise ValueError(
            f"mask has shape {tuple(mask.shape)} but the batch size is {out.shape[0]}; "
            f"expected shape ({out.shape[0]},)"
        )
    if mask.device.type == "meta":  # no values to read (the maps' own meta check says the same)
        raise ValueError("mask is on the meta device (it holds no values); build it on the maps' device.")
    keep = mask.to(out.device).reshape(-1, *([1] * (out.ndim - 1)))
    return out.masked_fill(~keep, float("nan"))


def _unit_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Rows scaled to unit L2 norm (overflow-safe) and a flag for all-zero rows."""
    zero = ~(x != 0).any(dim=1)
    scale = x.abs().amax(dim=1, keepdim=True)
    x = x / torch.where(scale > 0, scale, torch.ones_like(scale))  # max |x| = 1
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x / torch.where(norm > 0, norm, torch.ones_like(norm)), zero


def _cos_rows(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    xu, zx = _unit_rows(x)
    yu, zy = _unit_rows(y)
    return (xu * yu).sum(dim=1).clamp(-1.0, 1.0), zx, zy


def _pearson_rows(x: Tensor, y: Tensor) -> Tensor:
    """Centred in float64: a row whose spread is a few units in the last place of its mean keeps its deviations."""
    const = (x == x[:, :1]).all(dim=1) | (y == y[:, :1]).all(dim=1)
    xd, yd = x.double(), y.double()
    r, _, _ = _cos_rows(xd - xd.mean(dim=1, keepdim=True), yd - yd.mean(dim=1, keepdim=True))
    return r.to(x.dtype).masked_fill(const, float("nan"))


def _tie_groups(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Sort rows; return sort indices and the bounds of each position's group of ties.

    Per sorted position, the first and last (0-based) position of its group of tied values.
    """
    s, idx = x.sort(dim=1)
    n = x.shape[1]
    pos = torch.arange(n, device=x.device).expand_as(idx)
    diff = s[:, 1:] != s[:, :-1]
    true = torch.ones(x.shape[0], 1, dtype=torch.bool, device=x.device)  # (a row of one value is one group)
    start_flag = torch.cat([true, diff], dim=1)
    end_flag = torch.cat([diff, true], dim=1)
    start = torch.where(start_flag, pos, 0).cummax(dim=1).values
    end = torch.where(end_flag, pos, n).flip(1).cummin(dim=1).values.flip(1)
    return idx, start, end


def _ranks(x: Tensor) -> Tensor:
    """1-based average ranks per row (ties get the mean of their positions)."""
    idx, start, end = _tie_groups(x)
    dtype = torch.promote_types(x.dtype, torch.float32)  # ranks up to n overflow float16 above 65504
    avg = (start + end).to(dtype) / 2 + 1
    return torch.empty_like(x, dtype=dtype).scatter_(1, idx, avg)


def _untied_pairs(x: Tensor) -> Tensor:
    """Number of pairs i < j with x_i != x_j per row, i.e. n0 - n_ties (float64)."""
    n = x.shape[1]
    _, start, end = _tie_groups(x)
    # each element of a group of size t contributes t - 1, summing to t (t - 1)
    tied2 = (end - start).sum(dim=1).to(torch.float64)
    return n * (n - 1) / 2 - tied2 / 2


# ---------------------------------------------------------------------- public
def saliency_map(attr: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Saliency map: channel-summed absolute attribution, normalised to sum to one per sample.

    ``s = sum_c |attr[:, c]| / sum_{c,h,w} |attr|``.

    ``(B, C, H, W) -> (B, H, W)``; a ``(B, H, W)`` input is only abs'ed and
    normalised.  Each map sums to one; an all-zero map stays zero (no NaN).

    Args:
        attr: Attributions of shape ``(B, C, H, W)``, or ``(B, H, W)`` for a single channel.
        mask: Optional bool tensor of shape ``(B,)``; the result is NaN where it is False. Default ``None``
            keeps every sample.

    Returns:
        The saliency maps, shape ``(B, H, W)``, in the floating dtype of ``attr``.

    Raises:
        TypeError: If ``attr`` is not a tensor.
        ValueError: If ``attr`` is complex, holds NaN/Inf or is neither 3-D nor 4-D, or ``mask`` is invalid.
    """
    attr = _as_float(attr, "attr")
    dtype = attr.dtype
    if attr.ndim not in (3, 4):
        raise ValueError(
            f"attr has shape {tuple(attr.shape)}; expected (B, C, H, W) or (B, H, W)"
        )
    attr = attr.to(torch.promote_types(dtype, torch.float32))  # a float16 map's total can overflow 65504
    s = attr.abs().sum(dim=1) if attr.ndim == 4 else attr.abs()
    total = s.sum(dim=(1, 2), keepdim=True)
    return _masked((s / torch.where(total > 0, total, torch.ones_like(total))).to(dtype), mask)


def euclidean(a: Tensor, b: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """L2 distance between two attributions, per sample.

    ``d_i = ||a_i - b_i||_2`` over the flattened samples.

    Args:
        a: First attributions (or maps), shape ``(B, ...)``; each sample is flattened to ``n`` values.
        b: Second attributions, same shape as ``a``.
        mask: Optional bool tensor of shape ``(B,)``; the result is NaN where it is False. Default ``None``
            keeps every sample.

    Returns:
        The distances, shape ``(B,)``.

    Raises:
        TypeError: If ``a`` or ``b`` is not a tensor.
        ValueError: If the shapes differ, a sample is empty, the inputs are complex, lack a batch dimension or
            hold NaN/Inf, or ``mask`` is not a bool tensor of shape ``(B,)``.
    """
    a, b = _pair(a, b)
    return _masked(_scaled_norm(a - b), mask)


def _scaled_norm(d: Tensor) -> Tensor:
    """``||d_i||_2`` per row, scaled by the row's largest magnitude so that squares neither overflow nor underflow."""
    scale = d.abs().amax(dim=1, keepdim=True)
    safe = torch.where((scale > 0) & torch.isfinite(scale), scale, torch.ones_like(scale))
    norm = (torch.linalg.vector_norm(d / safe, dim=1) * safe[:, 0]).to(d.dtype)
    return torch.where(torch.isinf(scale[:, 0]), torch.full_like(norm, math.inf), norm)  # a - b overflowed: inf


def cosine(a: Tensor, b: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Cosine similarity between two attributions, per sample, in ``[-1, 1]``.

    ``cos_i = <a_i, b_i> / (||a_i|| ||b_i||)``.

    By convention the result is 1 when both vectors are exactly zero and 0
    when exactly one is.  Rows are rescaled by their max-abs value first, so
    very large or tiny values neither overflow nor underflow.

    Args:
        a: First attributions (or maps), shape ``(B, ...)``; each sample is flattened to ``n`` values.
        b: Second attributions, same shape as ``a``.
        mask: Optional bool tensor of shape ``(B,)``; the result is NaN where it is False. Default ``None``
            keeps every sample.

    Returns:
        The cosine similarities, shape ``(B,)``.

    Raises:
        TypeError: If ``a`` or ``b`` is not a tensor.
        ValueError: If the shapes differ, a sample is empty, the inputs are complex, lack a batch dimension or
            hold NaN/Inf, or ``mask`` is not a bool tensor of shape ``(B,)``.
    """
    a, b = _pair(a, b)
    c, za, zb = _cos_rows(a, b)
    c = torch.where(za | zb, (za & zb).to(c.dtype), c)
    return _masked(c, mask)


def pearson(a: Tensor, b: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Pearson correlation between two attributions, per sample.

    ``r_i = cos(a_i - mean(a_i), b_i - mean(b_i))``.

    NaN where a sample of ``a`` or ``b`` is constant (as scipy.stats.pearsonr).

    Args:
        a: First attributions (or maps), shape ``(B, ...)``; each sample is flattened to ``n`` values.
        b: Second attributions, same shape as ``a``.
        mask: Optional bool tensor of shape ``(B,)``; the result is NaN where it is False. Default ``None``
            keeps every sample.

    Returns:
        The correlations in ``[-1, 1]``, shape ``(B,)``.

    Raises:
        TypeError: If ``a`` or ``b`` is not a tensor.
        ValueError: If the shapes differ, a sample is empty, the inputs are complex, lack a batch dimension or
            hold NaN/Inf, or ``mask`` is not a bool tensor of shape ``(B,)``.
    """
    a, b = _pair(a, b)
    return _masked(_pearson_rows(a, b), mask)


def spearman(a: Tensor, b: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Spearman rank correlation between two attributions, per sample.

    ``rho_i = pearson(rank(a_i), rank(b_i))`` with 1-based average ranks.

    Ties get the mean of their positions (as scipy.stats.spearmanr); NaN where
    a sample is constant.  Usually applied to ``saliency_map(attr)``.

    Args:
        a: First attributions (or maps), shape ``(B, ...)``; each sample is flattened to ``n`` values.
        b: Second attributions, same shape as ``a``.
        mask: Optional bool tensor of shape ``(B,)``; the result is NaN where it is False. Default ``None``
            keeps every sample.

    Returns:
        The rank correlations in ``[-1, 1]``, shape ``(B,)``.

    Raises:
        TypeError: If ``a`` or ``b`` is not a tensor.
        ValueError: If the shapes differ, a sample is empty, the inputs are complex, lack a batch dimension or
            hold NaN/Inf, or ``mask`` is not a bool tensor of shape ``(B,)``.
    """
    a, b = _pair(a, b)
    return _masked(_pearson_rows(_ranks(a), _ranks(b)).to(a.dtype), mask)


def kendall_tau(
    a: Tensor,
    b: Tensor,
    *,
    mask: Tensor | None = None,
    _max_pairs: int = _DEFAULT_MAX_PAIRS,
) -> Tensor:
    """Kendall's tau-b between two attributions, per sample (scipy.stats.kendalltau's default variant).

    ``tau_b = (P - Q) / sqrt((n0 - n1) (n0 - n2))`` with ``P - Q =
    sum_{i<j} sign(a_i - a_j) sign(b_i - b_j)``, ``n0 = n (n - 1) / 2`` and
    ``n1``, ``n2`` the numbers of pairs tied in ``a`` and in ``b``.  NaN where
    a sample is constant.  O(n^2) time; pairs are evaluated in chunks of at
    most ``_max_pairs`` elements (over batch x rows x columns), so memory stays
    bounded (a few hundred MB) even for n = 224 * 224.

    Args:
        a: First attributions (or maps), shape ``(B, ...)``; each sample is flattened to ``n`` values.
        b: Second attributions, same shape as ``a``.
        mask: Optional bool tensor of shape ``(B,)``; the result is NaN where it is False. Default ``None``
            keeps every sample.
        _max_pairs: Private tuning knob: the most pair elements (batch x rows x columns) evaluated at once.
            Default ``2**24``.

    Returns:
        The tau-b values in ``[-1, 1]``, shape ``(B,)``, in the floating dtype of the inputs.

    Raises:
        TypeError: If ``a`` or ``b`` is not a tensor.
        ValueError: If the shapes differ, a sample is empty, the inputs are complex, lack a batch dimension or
            hold NaN/Inf, or ``mask`` is not a bool tensor of shape ``(B,)``, or ``_max_pairs < 1``.
    """
    a, b = _pair(a, b)
    if _max_pairs < 1:
        raise ValueError(f"_max_pairs must be >= 1, got {_max_pairs}")
    B, n = a.shape
    s = torch.zeros(B, dtype=torch.float64, device=a.device)
    bb = max(1, min(B, _max_pairs // n))  # samples per chunk
    rows = max(1, _max_pairs // (bb * n))  # rows i per chunk
    for b0 in range(0, B, bb):
        xa, xb = a[b0 : b0 + bb], b[b0 : b0 + bb]
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            # rows i in [r0, r1) against columns j in [r0, n): the square block
            # [r0, r1)^2 holds every pair twice, the rest (j >= r1) once.
            prod = (xa[:, r0:r1, None] - xa[:, None, r0:]).sign_()
            prod.mul_((xb[:, r0:r1, None] - xb[:, None, r0:]).sign_())
            w = r1 - r0
            s[b0 : b0 + bb] += prod[:, :, :w].sum(dim=(1, 2), dtype=torch.float64) / 2
            s[b0 : b0 + bb] += prod[:, :, w:].sum(dim=(1, 2), dtype=torch.float64)
    denom = torch.sqrt(_untied_pairs(a) * _untied_pairs(b))
    tau = torch.where(denom > 0, s / denom.clamp_min(1), torch.full_like(s, math.nan))
    return _masked(tau.clamp(-1.0, 1.0).to(a.dtype), mask)


def topk_intersection(a: Tensor, b: Tensor, k: int, *, mask: Tensor | None = None) -> Tensor:
    """Top-k intersection of two attributions, per sample: the fraction of shared top-k features.

    ``|topk(a_i) ∩ topk(b_i)| / k``.

    ``topk`` is the set of indices of the k largest values of the flattened
    sample (apply to saliency maps for the usual convention); ties at the k-th
    value are broken as ``torch.topk`` does.

    Args:
        a: First attributions (or maps), shape ``(B, ...)``; each sample is flattened to ``n`` values.
        b: Second attributions, same shape as ``a``.
        mask: Optional bool tensor of shape ``(B,)``; the result is NaN where it is False. Default ``None``
            keeps every sample.
        k: Number of top features compared, an int with ``1 <= k <= n``.

    Returns:
        The intersections in ``[0, 1]``, shape ``(B,)``.

    Raises:
        TypeError: If ``a`` or ``b`` is not a tensor.
        ValueError: If the shapes differ, a sample is empty, the inputs are complex, lack a batch dimension or
            hold NaN/Inf, or ``mask`` is not a bool tensor of shape ``(B,)``, or ``k`` is not an int in ``[1, n]``.
    """
    a, b = _pair(a, b)
    n = a.shape[1]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer (Python or numpy) with 1 <= k <= n = {n} (values per sample), "
                         f"got {k!r}")
    k = int(k)
    in_a = torch.zeros_like(a, dtype=torch.bool).scatter_(1, a.topk(k, dim=1).indices, True)
    in_b = torch.zeros_like(b, dtype=torch.bool).scatter_(1, b.topk(k, dim=1).indices, True)
    return _masked((in_a & in_b).sum(dim=1).to(a.dtype) / k, mask)


def _as_map(m: Tensor, name: str) -> Tensor:
    m = _as_float(m, name)
    if m.ndim == 4:
        return saliency_map(m)
    if m.ndim != 3:
        raise ValueError(
            f"{name} has shape {tuple(m.shape)}; expected a (B, H, W) map or "
            f"(B, C, H, W) attribution"
        )
    if not _checks._TRUSTED and bool((m < 0).any()):
        raise ValueError(
            f"{name} is a (B, H, W) map with negative values; pass non-negative "
            f"maps (e.g. saliency_map(attr)) or the (B, C, H, W) attribution"
        )
    return m


def _center(m: Tensor) -> Tensor:
    """(B, H, W) non-negative maps -> (B, 2) centres of mass; NaN for zero mass."""
    _, H, W = m.shape
    if m.dtype in (torch.float16, torch.bfloat16):  # sums of a 64 x 64 map overflow float16's 65504
        return _center(m.float()).to(m.dtype)
    total = m.sum(dim=(1, 2))
    rows = torch.arange(H, dtype=m.dtype, device=m.device)
    cols = torch.arange(W, dtype=m.dtype, device=m.device)
    c = torch.stack([(m.sum(dim=2) * rows).sum(dim=1), (m.sum(dim=1) * cols).sum(dim=1)], dim=1)
    safe = torch.where(total > 0, total, torch.ones_like(total))[:, None]
    return torch.where((total > 0)[:, None], c / safe, torch.full_like(c, math.nan))


def mass_center(m: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Centre of mass of each map, in pixel coordinates.

    ``(sum_p m_p * row_p, sum_p m_p * col_p) / sum_p m_p``.

    ``(B, H, W)`` non-negative maps (or ``(B, C, H, W)`` attributions, turned
    into saliency maps first) ``-> (B, 2)`` (row, col) in pixel coordinates.
    NaN for a map with zero mass.

    Args:
        m: Non-negative maps of shape ``(B, H, W)``, or attributions of shape ``(B, C, H, W)``.
        mask: Optional bool tensor of shape ``(B,)``; the result is NaN where it is False. Default ``None``
            keeps every sample.

    Returns:
        The centres ``(row, col)``, shape ``(B, 2)``.

    Raises:
        TypeError: If ``m`` is not a tensor.
        ValueError: If ``m`` is neither 3-D nor 4-D, a ``(B, H, W)`` map has negative values, ``m`` holds
            NaN/Inf, or ``mask`` is invalid.
    """
    return _masked(_center(_as_map(m, "m")), mask)


def mass_center_shift(a: Tensor, b: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Pixel distance between the centres of mass of two maps, per sample.

    ``||mass_center(a_i) - mass_center(b_i)||_2``.

    Same input rules as :func:`mass_center`; NaN where a map has zero mass.

    Args:
        a: First maps ``(B, H, W)`` (non-negative) or attributions ``(B, C, H, W)``.
        b: Second maps or attributions, same shape as ``a``.
        mask: Optional bool tensor of shape ``(B,)``; the result is NaN where it is False. Default ``None``
            keeps every sample.

    Returns:
        The shifts in pixels, shape ``(B,)``.

    Raises:
        TypeError: If ``a`` or ``b`` is not a tensor.
        ValueError: If the shapes differ or either input breaks the rules of :func:`mass_center`.
    """
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape != b.shape:
        raise ValueError(
            f"a and b must have identical shapes, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}; compare attributions of the same inputs"
        )
    d = torch.linalg.vector_norm(_center(_as_map(a, "a")) - _center(_as_map(b, "b")), dim=1)
    return _masked(d, mask)
