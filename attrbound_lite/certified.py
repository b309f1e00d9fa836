"""Certified upper bounds on the attribution deviation: numbers proven to be at least the worst case.

The quantity is ``D(x, eps) = sup { ||A(x + d) - A(x)||_2 : ||d||_p <= eps, x + d in [0, 1]^n }``. The first-order bound
(``bounds``) approximates it and the region bound (``region``) estimates it from below; ``certified_bound`` proves an
upper bound, for models made of affine layers (``Normalize``, ``Conv2d``, ``AvgPool2d``, ``Flatten``, ``Linear``) and
softplus activations: the reference zoo's architectures. A ReLU model is certified through its softplus surrogate
(``surrogate_beta``) only, and the result says so: the certificate is then the surrogate's.

Every quantity is carried as an interval ``[c - r, c + r]`` (midpoint ``c``, radius ``r >= 0``) that holds for every
point ``z`` of the set ``S = B_p(x, eps) ∩ [0, 1]^n``:

- forward: the first affine block exactly for the ball (``W x + b +- eps ||W_i||_q``, ``q`` the dual norm) intersected
  with the box's interval; later blocks by ``W c +- |W| r``; softplus (increasing) maps endpoints to endpoints;
- the derivatives of softplus, ``sigma'(a) = sigmoid(beta a)`` (increasing) and ``sigma''(a) = beta s (1 - s)``
  (largest at the point of the interval nearest 0), as images of the pre-activation intervals;
- backward and Jacobian products by the rule ``(a +- ra)(b +- rb) ⊆ ab +- (|a| rb + ra |b| + ra rb)``.

Three routes, the smallest per sample is returned:

1. ``gradient_interval`` (any attribution): ``l <= A(z) <= u`` on ``S``, so ``D <= || max(u - A(x), A(x) - l) ||_2``.
2. ``interval_hessian`` (the mean-value inequality with an interval Jacobian; tends to the first-order bound as
   ``eps -> 0``): for saliency ``J = H(z) = sum_k J_k^T diag(s_k sigma''(a_k)) J_k`` with ``J_k = da_k/dx`` and ``s_k``
   the backward signal at layer ``k``; every factor gets an interval, so ``|J(z) - J(x)| <= Delta`` entrywise on ``S``
   and ``A(x + d) - A(x) = (int_0^1 J(x + t d) dt) d`` gives
   ``D <= eps (sigma_max(J(x)) + ||Delta||_2)`` (l2) and ``D <= eps (min(|| |J(x)| 1 ||_2, sqrt(n) sigma_max(J(x)))
   + ||Delta 1||_2)`` (l-infinity). ``sigma_max(J(x))`` comes from a dense float64 SVD; ``||Delta||_2`` is bounded by
   the Collatz-Wielandt inequality ``rho(M) <= max_i (M v)_i / v_i`` (any positive ``v``) on ``M = Delta^T Delta``.
   Input x gradient: ``J = diag(g) + diag(z) H``; integrated gradients: ``J = diag(mean_j g(p_j)) + diag(z - b)
   (1/m) sum_j alpha_j H(p_j)`` with the Riemann points ``p_j = b + alpha_j (z - b)``, which lie in the set
   ``b + alpha_j (S - b)``.
3. ``global_curvature`` (saliency; Singla & Feizi 2020): with ``0 <= sigma' <= 1`` and ``0 <= sigma'' <= beta / 4``,
   ``||H(z)||_2 <= sum_k (beta_k / 4) ||s_k||_inf prod_{j <= k} ||W_j||_2^2`` everywhere, ``||W||_2`` bounded by
   ``sqrt(||W||_1 ||W||_inf)``: a loose reference line.

Floating point: the model is copied to float64 and every interval radius is widened outward by ``MARGIN`` times the
interval's magnitude, the final bound by ``FINAL_MARGIN`` relative: far above the rounding of float64 sums of these
sizes (about ``n 2^-53``, 1e-12 at n = 3072); affine outputs are also widened by ``ROUNDING`` times ``|W| (|c| + r)``,
which covers the rounding of their sums even where they cancel. The certificate is that of the analytic softplus
network. PyTorch's ``nn.Softplus`` switches to the identity where ``beta a > threshold`` (20 by default): a difference
of at most 2.1e-9 / beta in value and 2.1e-9 in slope per unit, which the certificate does not cover; a softplus
with a lower threshold (a larger difference) is refused.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._checks import (
    check_choice,
    check_flag,
    check_model_inputs,
    check_names,
    check_norm,
    check_positive_int,
    check_radii,
    eval_mode,
    resolve_target,
)
from .attributions import IntegratedGradients, check_explainer_model
from .bounds import cosine_bound
from .certified_intervals import _from_bounds, _Layers, _mul, _propagate, _widen
from .models import Normalize, smooth_surrogate

__all__ = ["certified_bound", "CertifiedResult", "ROUTES", "ATTRIBUTIONS"]

ROUTES = ("gradient_interval", "interval_hessian", "global_curvature")
ATTRIBUTIONS = ("saliency", "input_x_gradient", "integrated_gradients")
FINAL_MARGIN = 1e-8    # relative widening of the final certificate
_AFFINE = (Normalize, nn.Conv2d, nn.AvgPool2d, nn.Flatten, nn.Linear)
DENSE_N = 4096         # blocks with at most this many inputs get their operator norm from a dense SVD
_NORMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (weights' identity, operator norms)


@dataclass
class CertifiedResult:
    """Per-sample results of ``certified_bound`` (tensors of shape (B,), on the inputs' device, float64).

    Attributes:
        eps: the radius (a float or the (B,) tensor given).
        norm: ``"l2"`` or ``"linf"``.
        attribution: the attribution's name.
        target: (B,) the classes explained.
        euclidean: (B,) proven upper bound on ``sup ||A(x + d) - A(x)||_2`` over the ball and the box.
        cosine: (B,) the lower bound on ``cos(A(x), A(x + d))`` that follows from it (``bounds.cosine_bound``).
        cosine_distance: (B,) ``1 - cosine``.
        attribution_norm: (B,) ``||A(x)||_2``.
        first_order: (B,) the first-order bound at ``x`` from the dense float64 Jacobian (the limit of the
            interval-Hessian route as eps -> 0).
        routes: each route's value per sample (``inf`` where a route does not apply).
        route: per sample, the route that gave the smallest value.
        surrogate: whether a ReLU model was certified through its softplus surrogate (the certificate is the
            surrogate's then).
        seconds: wall-clock seconds of the call.
    """

    eps: float | torch.Tensor
    norm: str
    attribution: str
    target: torch.Tensor
    euclidean: torch.Tensor
    cosine: torch.Tensor
    cosine_distance: torch.Tensor
    attribution_norm: torch.Tensor
    first_order: torch.Tensor
    routes: dict
    route: list
    surrogate: bool
    seconds: float


# --------------------------------------------------------------------------- the network as blocks
class _Affine:
    """A run of affine modules between two softplus layers.

    ``forward`` (with bias), ``linear`` (without), ``absolute`` (``|W|``, no bias) and the transposes of the last two
    (vector-Jacobian products of linear maps).
    """

    def __init__(self, modules: list[nn.Module]):
        self.modules = modules

    def _apply(self, v: torch.Tensor, mode: str) -> torch.Tensor:
        for m in self.modules:
            if isinstance(m, Normalize):
                v = (v - m.mean) / m.std if mode == "forward" else v / (m.std if mode == "linear" else m.std.abs())
            elif isinstance(m, nn.Conv2d):
                w = m.weight.abs() if mode == "absolute" else m.weight.square() if mode == "square" else m.weight
                v = F.conv2d(v, w, m.bias if mode == "forward" else None, m.stride, m.padding, m.dilation, m.groups)
            elif isinstance(m, nn.Linear):
                w = m.weight.abs() if mode == "absolute" else m.weight.square() if mode == "square" else m.weight
                v = F.linear(v, w, m.bias if mode == "forward" else None)
            else:  # AvgPool2d (non-negative weights: |W| = W), Flatten
                v = m(v)
        return v

    def forward(self, v):
        return self._apply(v, "forward")

    def linear(self, v):
        return self._apply(v, "linear")

    def absolute(self, v):
        return self._apply(v, "absolute")

    def _transpose(self, fn, u, shape):
        probe = torch.zeros(shape, dtype=u.dtype, device=u.device, requires_grad=True)
        with torch.enable_grad():
            (out,) = torch.autograd.grad(fn(probe), probe, u)
        return out

    def linear_t(self, u, shape):
        return self._transpose(self.linear, u, shape)

    def absolute_t(self, u, shape):
        return self._transpose(self.absolute, u, shape)

    def row_norms(self, x_shape, norm: str) -> torch.Tensor | None:
        """``||W_i||_q`` per output unit (q the dual norm of ``norm``), or None.

        None unless the block is one convolution or linear layer (with normalisations and reshapes): the squares of a
        product are not the product of the squares.
        """
        if sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in self.modules) != 1 or \
                any(isinstance(m, nn.AvgPool2d) for m in self.modules):
            return None
        ref = next(t for m in self.modules for t in (*m.parameters(), *m.buffers()))
        ones = torch.ones((1, *x_shape), dtype=ref.dtype, device=ref.device)
        if norm == "linf":
            return self.absolute(ones)[0]
        squares = ones
        for m in self.modules:
            if isinstance(m, Normalize):
                squares = squares / m.std.square()
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                squares = _Affine([m])._apply(squares, "square")
            else:
                squares = m(squares)
        return squares[0].sqrt()


def _blocks(model: nn.Module) -> tuple[list[_Affine], list[float]]:
    """The model as affine blocks separated by softplus layers: ``(blocks, betas)``, ``len(blocks) = len(betas) + 1``.

    Raises:
        ValueError: a module the certificate cannot handle, named, or a model that does not end in an affine block.
    """
    leaves = []

    def walk(module: nn.Module, name: str) -> None:
        if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
            for child_name, child in module.named_children():
                walk(child, f"{name}.{child_name}" if name else child_name)
        else:
            leaves.append((name or type(module).__name__, module))

    walk(model, "")
    blocks, betas, current = [], [], []
    for name, module in leaves:
        base = next((b for b in (nn.Softplus, *_AFFINE) if isinstance(module, b)), None)
        if base is not None and type(module).forward is not base.forward:
            raise ValueError(f"certified_bound cannot certify module {name!r} ({type(module).__name__}): it overrides "
                             f"the forward pass of {base.__name__}; only the plain layers are certified.")
        if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
            raise ValueError(f"certified_bound: {name!r} pads with {module.padding_mode!r}; only zero padding is "
                             "supported.")
        if isinstance(module, nn.Softplus):
            if not current:
                raise ValueError(f"certified_bound: the softplus {name!r} does not follow an affine layer.")
            if not 0 < float(module.beta) < math.inf:
                raise ValueError(f"certified_bound: the softplus {name!r} has beta={module.beta!r}; softplus needs a "
                                 "positive finite beta (log(1 + exp(beta a)) / beta).")
            if not float(module.threshold) >= 20:
                raise ValueError(f"certified_bound: the softplus {name!r} has threshold={module.threshold!r}: PyTorch "
                                 "computes it as the identity where beta a > threshold, which differs from the "
                                 "analytic softplus the certificate covers by up to exp(-threshold) / beta in value "
                                 "and exp(-threshold) in slope per unit; certify a model with threshold >= 20 "
                                 "(the default; the difference is then at most 2.1e-9).")
            blocks.append(_Affine(current))
            betas.append(float(module.beta))
            current = []
        elif isinstance(module, _AFFINE):
            if isinstance(module, nn.AvgPool2d) and (module.ceil_mode or module.divisor_override is not None):
                raise ValueError(f"certified_bound: {name!r} uses ceil_mode or divisor_override; not supported.")
            current.append(module)
        else:
            raise ValueError(f"certified_bound cannot certify module {name!r} ({type(module).__name__}): it handles "
                             "Normalize, Conv2d, AvgPool2d, Flatten and Linear layers and Softplus activations (the "
                             "zoo's architectures; a ReLU model through surrogate_beta). Max-pooling, batch norm and "
                             "other layers are not supported.")
    if not current:
        raise ValueError("certified_bound: the model must end in an affine layer (the logits).")
    if not betas:
        raise ValueError("certified_bound: the model has no softplus layer, so it is affine: its saliency is constant "
                         "and every deviation bound is trivial; the certificate needs at least one softplus.")
    blocks.append(_Affine(current))
    return blocks, betas


@dataclass
class _Hessian:
    """``H`` at the point and how far it can move on the set, per sample."""

    at_x: torch.Tensor        # (B, n, n) H(x)
    delta: torch.Tensor       # (B, n, n) entrywise bound on |H(z) - H(x)|, symmetric
    layer_bound: torch.Tensor  # (B,) sum over layers of min(||Delta_k||_2 bound, operator bound) >= ||H(z) - H(x)||_2


def _operator_norms(blocks, x_shape, dtype, device) -> list[float]:
    """Proven upper bounds on ``||W_k||_2`` of the blocks' linear parts.

    A dense float64 SVD where the block has at most ``DENSE_N`` inputs (widened by 1e-9 relative for its rounding),
    else ``sqrt(||W||_1 ||W||_inf)``.
    """
    norms, shape = [], tuple(x_shape)
    for block in blocks:
        size = math.prod(shape)
        ones = torch.ones((1, *shape), dtype=dtype, device=device)
        out = block.linear(ones)
        if size <= DENSE_N:
            eye = torch.eye(size, dtype=dtype, device=device).view(size, *shape)
            dense = block.linear(eye).flatten(1)
            value = float(torch.linalg.matrix_norm(dense, 2).detach()) * (1 + 1e-9)
        else:
            row = block.absolute(ones).max()
            col = block.absolute_t(torch.ones_like(out), (1, *shape)).max()
            value = float((row * col).sqrt())
        norms.append(value)
        shape = tuple(out.shape[1:])
    return norms


def _hessian(layers: _Layers, op_norms: list[float]) -> _Hessian:
    """``H(x)`` and bounds on ``H(z) - H(x)`` for every z of the set.

    ``H = sum_k J_k^T diag(w_k) J_k``, ``w_k = s_k sigma''(a_k)``, ``J_1 = W_1``, ``J_{k+1} = W_{k+1} diag(sigma'(a_k))
    J_k`` (the Jacobian intervals of ``_propagate``). Per layer two bounds on ``||T_k(z) - T_k(x)||_2``: the entrywise
    interval (Collatz-Wielandt), and the operator form ``||F|| ||J||^2 + 2 ||W|| ||E|| ||J|| + ||W|| ||E||^2`` with
    ``E = J(z) - J(x)``, ``F = W(z) - W(x)``, ``||E_{k+1}|| <= ||W_{k+1}|| (rho_k (||J_k(x)|| + ||E_k||) + max
    sigma'(a_k(x)) ||E_k||)``; their sum over layers bounds ``||H(z) - H(x)||_2`` too.
    """
    j0 = layers.jac[0][0]
    batch, n = j0.shape[0], j0.shape[1]
    h_x = torch.zeros(batch, n, n, dtype=j0.dtype, device=j0.device)
    h_c, h_r = torch.zeros_like(h_x), torch.zeros_like(h_x)
    norm_j = torch.full((batch,), op_norms[0], dtype=j0.dtype, device=j0.device)  # ||J_k(x)||_2 bound
    norm_e = torch.zeros_like(norm_j)                                             # ||J_k(z) - J_k(x)||_2 bound
    layer_bound = torch.zeros_like(norm_j)
    for k, (j_x, j_c, j_r) in enumerate(layers.jac):
        w_x = (layers.s_x[k] * layers.d2_x[k]).unsqueeze(1).flatten(2)          # (B, 1, m)
        w_c, w_r = _mul(*layers.s[k], *layers.d2[k])
        w_c, w_r = w_c.unsqueeze(1).flatten(2), w_r.unsqueeze(1).flatten(2)
        jx, jc, jr = j_x.flatten(2), j_c.flatten(2), j_r.flatten(2)             # (B, n, m)
        t_x = jx @ (w_x * jx).transpose(1, 2)
        if k == 0:  # J_1 = W_1 exactly: no radius
            t_c, t_r = jx @ (w_c * jx).transpose(1, 2), jx.abs() @ (w_r * jx.abs()).transpose(1, 2)
        else:
            n_c, n_r = _mul(jc, jr, w_c, w_r)                                   # diag(w) J, transposed
            t_c = jc @ n_c.transpose(1, 2)
            t_r = jc.abs() @ n_r.transpose(1, 2) + jr @ (n_c.abs() + n_r).transpose(1, 2)
        h_x += t_x
        h_c += t_c
        h_r += t_r
        if k > 0:
            d_c, d_r = layers.d1[k - 1]
            rho = ((d_c - layers.d1_x[k - 1]).abs() + d_r).flatten(1).amax(1)
            d_max = layers.d1_x[k - 1].flatten(1).amax(1)
            norm_e = op_norms[k] * (rho * (norm_j + norm_e) + d_max * norm_e)
            norm_j = op_norms[k] * d_max * norm_j
        entry = _symmetric_upper((t_c - t_x).abs() + t_r)
        w_max = (w_c.abs() + w_r).flatten(1).amax(1)
        f_max = ((w_c - w_x).abs() + w_r).flatten(1).amax(1)
        operator = f_max * norm_j ** 2 + 2 * w_max * norm_e * norm_j + w_max * norm_e ** 2
        layer_bound = layer_bound + torch.minimum(_norm2_upper(entry), operator)
    h_r = _widen(h_r, h_c)
    delta = _symmetric_upper((h_c - h_x).abs() + h_r)  # H(z) is symmetric: so is every bound on |H(z) - H(x)|
    return _Hessian(at_x=(h_x + h_x.transpose(1, 2)) / 2, delta=_widen(delta, h_x), layer_bound=layer_bound)


def _symmetric_upper(m: torch.Tensor) -> torch.Tensor:
    """``min(M, M^T)``: a bound on ``|S|`` entrywise for a symmetric S bounded by M entrywise."""
    return torch.minimum(m, m.transpose(1, 2))


def _norm2_upper(m: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """A proven upper bound on ``||M||_2`` of non-negative (B, p, q) matrices (Collatz-Wielandt).

    ``||M||_2`` is the spectral radius of the non-negative ``P = [[0, M], [M^T, 0]]``, and ``rho(P) <= max_i (P v)_i /
    v_i`` for any positive v. With ``v = (u, t w)`` (u, w from power iterations, floored away from zero) the bound is
    ``max(t r1, r2 / t)``, ``r1 = max (M w) / u``, ``r2 = max (M^T u) / w``: at its best t, ``sqrt(r1 r2)``.
    """
    u = torch.ones(m.shape[0], m.shape[1], 1, dtype=m.dtype, device=m.device)
    w = torch.ones(m.shape[0], m.shape[2], 1, dtype=m.dtype, device=m.device)
    for _ in range(iters):
        u = m @ w
        u = u / u.amax(1, keepdim=True).clamp_min(1e-300)
        w = m.transpose(1, 2) @ u
        w = w / w.amax(1, keepdim=True).clamp_min(1e-300)
    u = u + 1e-3 * u.amax(1, keepdim=True) + 1e-300
    w = w + 1e-3 * w.amax(1, keepdim=True) + 1e-300
    r1 = ((m @ w) / u).amax(1).squeeze(1)
    r2 = ((m.transpose(1, 2) @ u) / w).amax(1).squeeze(1)
    return (r1 * r2).clamp_min(0).sqrt() * (1 + 1e-10)


def _box_and_ball(x, eps_t):
    """The interval of every coordinate on the set: ``[max(0, x - eps), min(1, x + eps)]`` (both norms)."""
    return (x - _rows(eps_t, x)).clamp(0, 1), (x + _rows(eps_t, x)).clamp(0, 1)


def _rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


# --------------------------------------------------------------------------- the routes
@dataclass
class _Sums:
    """The attribution's pieces on the set, summed over its Riemann points as they are computed.

    Saliency and input x gradient have one point (alpha 1, baseline 0). The means of the gradient (at x, and its
    interval), ``K = (1/m) sum_j alpha_j H(p_j)`` at x and its deviation bound, and the per-layer operator bound on
    ``||K(z) - K(x)||_2``.
    """

    baseline: torch.Tensor
    grad_x: torch.Tensor
    grad_c: torch.Tensor
    grad_r: torch.Tensor
    k_x: torch.Tensor
    k_d: torch.Tensor
    k_layer: torch.Tensor


def _attribution_sums(name, n_steps, baseline, blocks, betas, x, lo, hi, eps_t, norm, target, op_norms) -> _Sums:
    """The gradient and the Hessian over the set ``b + alpha_j (S - b)`` of every Riemann point, accumulated.

    The points are ``p_j = b + alpha_j (z - b)``; one at a time, so the memory is one Hessian pair per sample.
    """
    points = [(1.0, torch.zeros_like(x))] if name != "integrated_gradients" else \
        [(k / n_steps, baseline) for k in range(1, n_steps + 1)]
    m, total = len(points), None
    for alpha, b in points:
        layers = _propagate(blocks, betas, b + alpha * (x - b), b + alpha * (lo - b), b + alpha * (hi - b),
                            alpha * eps_t, norm, target, jacobians=True)
        hess = _hessian(layers, op_norms)
        parts = [layers.grad_x / m, layers.grad[0] / m, layers.grad[1] / m, alpha / m * hess.at_x,
                 alpha / m * hess.delta, alpha / m * hess.layer_bound]
        total = parts if total is None else [t + p for t, p in zip(total, parts, strict=True)]
        del layers, hess
    return _Sums(points[0][1], *total)


def _gradient_route(name, sums: _Sums, x, lo, hi):
    """Route 1: ``|| max(u - A(x), A(x) - l) ||_2`` from the attribution's interval on the set; and ``A(x)``."""
    if name == "saliency":
        a_c, a_r, a_x = sums.grad_c, sums.grad_r, sums.grad_x
    else:
        b = sums.baseline
        a_c, a_r = _mul(*_from_bounds(lo - b, hi - b), sums.grad_c, sums.grad_r)
        a_x = (x - b) * sums.grad_x
    dev = torch.maximum((a_c + a_r - a_x).abs(), (a_c - a_r - a_x).abs())
    return dev.flatten(1).norm(dim=1), a_x


def _hessian_route(name, sums: _Sums, x, lo, hi, eps_t, norm):
    """Route 2: the mean-value inequality with the interval Jacobian, and the first-order bound at x."""
    n = x[0].numel()
    if name == "saliency":
        j_x, delta = sums.k_x, sums.k_d
        spread = torch.minimum(_norm2_upper(delta), sums.k_layer)          # >= sup ||J(z) - J(x)||_2
    else:
        b, xf = sums.baseline.flatten(1), x.flatten(1)
        g_x, g_c, g_r = sums.grad_x.flatten(1), sums.grad_c.flatten(1), sums.grad_r.flatten(1)
        e = torch.maximum(xf - lo.flatten(1), hi.flatten(1) - xf)           # |z - x| on the set
        j_x = torch.diag_embed(g_x) + (xf - b).unsqueeze(2) * sums.k_x
        # J(z) - J(x) = diag(g(z) - g(x)) + diag(z - x) K(z) + diag(x - b) (K(z) - K(x))
        delta = torch.diag_embed((g_c - g_x).abs() + g_r) + e.unsqueeze(2) * (sums.k_x.abs() + sums.k_d) \
            + (xf - b).abs().unsqueeze(2) * sums.k_d
        spread = _norm2_upper(delta)
    sigma = torch.linalg.matrix_norm(j_x, 2) * (1 + 1e-9)
    if norm == "l2":
        return eps_t * (sigma + spread), eps_t * sigma
    first = eps_t * torch.minimum(j_x.abs().sum(2).norm(dim=1), math.sqrt(n) * sigma)
    spread_linf = torch.minimum(delta.sum(2).norm(dim=1), math.sqrt(n) * spread)
    return first + eps_t * spread_linf, first


def _global_route(blocks, betas, x, eps_t, norm, target, op_norms):
    """Route 3 (saliency): ``sup_z ||H(z)||_2 <= sum_k (beta_k / 4) ||s_k||_inf prod_{j<=k} ||W_j||_2^2``.

    With ``||s_k||_inf <= ||W_{K+1}^T e_c||_2 prod_{k<j<=K} ||W_j||_2`` (``0 <= sigma' <= 1``).
    """
    h = x[:1]
    for block in blocks[:-1]:
        h = block.forward(h)
    e = torch.zeros(x.shape[0], *blocks[-1].forward(h).shape[1:], dtype=x.dtype, device=x.device)
    e[torch.arange(x.shape[0]), target] = 1
    last = blocks[-1].linear_t(e, (x.shape[0], *h.shape[1:])).flatten(1).norm(dim=1)
    total = sum(beta / 4 * math.prod(op_norms[k + 1:-1]) * math.prod(op_norms[:k + 1]) ** 2
                for k, beta in enumerate(betas))
    return eps_t * last * total * (1 if norm == "l2" else math.sqrt(x[0].numel()))


# --------------------------------------------------------------------------- the entry point
def certified_bound(model: nn.Module, inputs: torch.Tensor, eps: float | torch.Tensor, norm: str = "l2",
                    attribution="saliency", target=None, *, routes=ROUTES, surrogate_beta: float | None = None,
                    n_steps: int | None = None, baseline=None, chunk_size: int = 4,
                    progress: bool = False) -> CertifiedResult:
    """A proven upper bound on the attribution deviation over the ball and the box, per sample.

    ``sup { ||A(x + d) - A(x)||_2 : ||d||_norm <= eps, x + d in [0, 1]^n } <= euclidean`` for every input, for
    saliency, input x gradient and integrated gradients (Riemann right sums, ``n_steps`` points), l2 and l-infinity,
    on models of affine layers and softplus activations (see the module docstring for the three routes and the
    floating-point margin). The smallest route per sample is returned; ``cosine`` is the cosine bound it implies.

    Args:
        model: the classifier (logits (B, classes)); ``Normalize``, ``Conv2d``, ``AvgPool2d``, ``Flatten`` and
            ``Linear`` layers with ``Softplus`` activations, nested in ``nn.Sequential``.
        inputs: (B, ...) images in [0, 1], of the model's dtype, device and input shape.
        eps: the radius, > 0, or a (B,) tensor of radii, one per input.
        norm: ``"l2"`` or ``"linf"``.
        attribution: ``"saliency"``, ``"input_x_gradient"`` or ``"integrated_gradients"``.
        target: None (the predicted class), an int, or a (B,) tensor of classes.
        routes: the routes to try, a subset of ``ROUTES`` (``global_curvature`` applies to saliency only).
        surrogate_beta: certify a ReLU model through its softplus surrogate of this sharpness (the result says so).
        n_steps: integrated gradients' Riemann points (default 16); integrated gradients only.
        baseline: integrated gradients' baseline (None: zeros); integrated gradients only.
        chunk_size: samples per dense computation (the Jacobians take ``n * units`` floats per sample).
        progress: show a progress bar over the chunks.

    Returns:
        A ``CertifiedResult`` of per-sample float64 tensors.

    Raises:
        ValueError: a module the certificate cannot handle (named), a ReLU model without ``surrogate_beta``, an
            unknown route or attribution, or inputs the contract refuses.
    """
    started = time.perf_counter()
    progress = check_flag(progress, "progress")
    check_model_inputs(model, inputs, box=True)
    if inputs.min() < 0 or inputs.max() > 1:  # always, also under trusted_inputs: the proof needs x in the box
        raise ValueError("certified_bound: inputs must lie in [0, 1].")
    eps = check_radii(eps, "eps", batch=inputs.shape[0])
    norm = check_norm(norm)
    check_explainer_model(attribution, model, "certified")
    if isinstance(attribution, IntegratedGradients):  # an instance: its own steps and baseline
        if n_steps is not None or baseline is not None:
            raise ValueError("n_steps and baseline come from the IntegratedGradients instance; set them there.")
        n_steps, baseline = attribution.n_steps, attribution.baseline
    name = check_choice(attribution if isinstance(attribution, str) else getattr(attribution, "name", ""),
                        ATTRIBUTIONS, "attribution")
    if name != "integrated_gradients" and (n_steps is not None or baseline is not None):
        raise ValueError(f"n_steps and baseline are options of integrated gradients; {name} takes neither.")
    n_steps = 16 if n_steps is None else n_steps
    if baseline is not None:
        IntegratedGradients(nn.Identity(), 1, baseline)  # validates the baseline (finite number or tensor)
    routes = check_names(routes, ROUTES, "routes")
    if set(routes) == {"global_curvature"} and name != "saliency":
        raise ValueError(f"the global_curvature route bounds the saliency map only; for {name} add "
                         "'gradient_interval' or 'interval_hessian'.")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    n_steps = check_positive_int(n_steps, "n_steps")
    surrogate = surrogate_beta is not None and any(isinstance(m, nn.ReLU) for m in model.modules())
    smooth = smooth_surrogate(model, surrogate_beta)
    with eval_mode(model), torch.no_grad():
        target = resolve_target(target, model(inputs))
    net = copy.deepcopy(smooth).to(torch.float64).eval()
    blocks, betas = _blocks(net)
    x_all = inputs.detach().to(torch.float64)
    b_all = None
    if name == "integrated_gradients":  # the baseline per input, sliced with the chunks
        b_all = IntegratedGradients(net, n_steps, baseline).resolve_baseline(x_all).detach().to(torch.float64)
    with torch.no_grad():
        op_norms = _cached_operator_norms(smooth, blocks, inputs.shape[1:], inputs.device)
        return _certify(x_all, inputs.device, eps, norm, name, routes, target, blocks, betas, op_norms, n_steps, b_all,
                        chunk_size, progress, surrogate, started)


def _cached_operator_norms(model: nn.Module, blocks, x_shape, device) -> list[float]:
    """``_operator_norms`` of the model's blocks, cached per model under a sha256 of its weights and the input shape."""
    digest = hashlib.sha256(repr(tuple(x_shape)).encode())
    for tensor in model.state_dict().values():
        digest.update(str(tensor.dtype).encode())  # numpy has no bfloat16: hash the float64 values
        digest.update(tensor.detach().cpu().to(torch.float64).contiguous().numpy().tobytes())
    key = digest.hexdigest()
    cached = _NORMS.get(model)
    if cached is None or cached[0] != key:
        cached = _NORMS[model] = (key, _operator_norms(blocks, x_shape, torch.float64, device))
    return cached[1]


def _certify(x_all, device, eps, norm, name, routes, target, blocks, betas, op_norms, n_steps, baseline, chunk_size,
             progress, surrogate, started) -> CertifiedResult:
    """The chunked computation of ``certified_bound`` (checked float64 inputs, no autograd graph)."""
    eps_all = (eps.to(x_all) if isinstance(eps, torch.Tensor) else torch.full((x_all.shape[0],), eps, dtype=x_all.dtype,
                                                                              device=x_all.device))
    values = {r: [] for r in ROUTES}
    firsts, norms = [], []
    for start in tqdm(range(0, x_all.shape[0], chunk_size), desc="certified bound", disable=not progress,
                      leave=False):
        x, eps_t, tgt = (t[start:start + chunk_size] for t in (x_all, eps_all, target))
        lo, hi = _box_and_ball(x, eps_t)
        b = baseline[start:start + chunk_size] if baseline is not None else None
        sums = _attribution_sums(name, n_steps, b, blocks, betas, x, lo, hi, eps_t, norm, tgt, op_norms)
        g_route, a_x = _gradient_route(name, sums, x, lo, hi)
        h_route, first = _hessian_route(name, sums, x, lo, hi, eps_t, norm)
        inf = torch.full_like(g_route, math.inf)
        values["gradient_interval"].append(g_route if "gradient_interval" in routes else inf)
        values["interval_hessian"].append(h_route if "interval_hessian" in routes else inf)
        values["global_curvature"].append(_global_route(blocks, betas, x, eps_t, norm, tgt, op_norms)
                                          if "global_curvature" in routes and name == "saliency" else inf)
        firsts.append(first)
        norms.append(a_x.flatten(1).norm(dim=1))
    table = {r: torch.cat(v) * (1 + FINAL_MARGIN) for r, v in values.items()}
    stacked = torch.stack([table[r] for r in ROUTES])
    best, which = stacked.min(0)
    attribution_norm = torch.cat(norms)
    cosine = cosine_bound(best, attribution_norm)
    return CertifiedResult(eps=eps, norm=norm, attribution=name, target=target, euclidean=best.to(device),
                           cosine=cosine.to(device), cosine_distance=(1 - cosine).to(device),
                           attribution_norm=attribution_norm.to(device), first_order=torch.cat(firsts).to(device),
                           routes={r: v.to(device) for r, v in table.items()},
                           route=[ROUTES[i] for i in which.tolist()], surrogate=surrogate,
                           seconds=time.perf_counter() - started)
