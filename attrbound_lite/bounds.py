"""Matrix-free upper bounds on the worst-case attribution deviation (Wang & Kong, CVPR 2023, derived).

For an attribution ``A(x)`` (flattened to n values) with Jacobian ``J(x) = dA/dx`` (n x n), the
linearisation ``A(x + d) ~ A(x) + J d`` over the ball ``||d||_p <= eps`` (label constraint relaxed) gives

- Euclidean, l2:    ``eps * sigma_max(J)``;
- Euclidean, linf:  ``min(eps * sqrt(n) * sigma_max(J), eps * || |J| 1 ||_2)`` (the second needs the
  full Jacobian and is used where n <= ``max_dense_n``), with the lower estimate ``eps * ||J s||_2``,
  ``s in {-1, 1}^n`` from the sign power iteration ``s <- sign(J^T J s)``;
- cosine, both:     with ``r`` the Euclidean bound and ``a = ||A(x)||_2``,
  ``cos(A(x), A(x + d)) >= sqrt(1 - r^2 / a^2)`` if ``r < a``, else -1 (vacuous).

``sigma_max`` is computed without forming J: Lanczos (or power iteration) on J itself where it is
symmetric (saliency: ``J = H``), else on ``J^T J``, the whole batch advancing together and each sample
stopping at ``tol``. The products come from the attribution's own matrix-free operator
(``Attribution.jacobian_operator``; ``attrbound_lite.jacobians``), where every product reduces to
Hessian-vector products ``Hv = grad_x <grad_x f_c, v>`` on a first-order graph built once and reused:

- saliency: ``J v = H v``;
- input x gradient: ``J v = g * v + x * H v`` and ``J^T u = g * u + H (x * u)``;
- IG (m right-Riemann steps, path points ``z_k = b + k/m (x - b)``):
  ``J v = gbar * v + (x - b) * (1/m) sum_k (k/m) H(z_k) v`` and
  ``J^T u = gbar * u + (1/m) sum_k (k/m) H(z_k) ((x - b) * u)``, with ``gbar = (1/m) sum_k grad f_c(z_k)``.

``method="exact"`` differentiates the attribution itself row by row (``torch.autograd.grad`` with
``is_grads_batched``) and takes ``torch.linalg.svdvals``: the oracle, independent of the formulas above.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, fields
from typing import Annotated

import torch
from pydantic import BeforeValidator
from torch import nn

from ._checks import (
    MAX_SOLVER_TOL,
    as_numpy,
    check_choice,
    check_flag,
    check_logits,
    check_model_inputs,
    check_norm,
    check_positive_int,
    check_radii,
    check_seed,
    check_solver_tol,
    eval_mode,
    full_precision,
    resolve_target,
)
from .attributions import Attribution, check_attribution_options, check_explainer_model, get_explainer
from .config import Config, NonNegativeInt, OptionalPositiveInt, PositiveInt, check_float, choice
from .jacobians import JacobianOperator
from .models import smooth_surrogate

__all__ = ["BoundOptions", "BoundResult", "attribution_bound", "spectral_norm", "dense_jacobian",
           "lanczos", "power_iteration", "cosine_bound", "MAX_EXACT_N"]

MAX_EXACT_N = 4096
METHODS = ("lanczos", "power", "exact")
_DENSE_BUDGET = 2 ** 24  # elements of Jacobian rows held at once when building dense Jacobians


def _solver_tol_field(value) -> float:
    """A settings file's ``tol``: a number as YAML writes it (``config.check_float``), then at most 0.01."""
    value = check_float(value)
    if value > MAX_SOLVER_TOL:
        raise ValueError(f"must be at most {MAX_SOLVER_TOL:g} (the eigensolver's relative stopping tolerance: a looser "
                         f"one reports too small a bound as converged), got {value:g}")
    return value


class BoundOptions(Config):
    """The numerical options of ``attribution_bound`` (its defaults), validated once for every caller.

    The callers: ``experiments.validate_bounds(bound_options=...)``, ``bound_table``, the sweep file's ``bound:``.

    Args:
        method: ``"lanczos"``, ``"power"`` or ``"exact"`` (full Jacobian and SVD, n <= ``MAX_EXACT_N``).
        tol: relative tolerance at which a sample's iteration stops.
        max_iter: operator applications per sample (``None``: ``attribution_bound``'s choice).
        max_dense_n: l-infinity: use ``eps || |J| 1 ||_2`` (n Hessian-vector products) where n <= this; 0 keeps
            ``eps sqrt(n) sigma_max``.
        sign_iters: iterations of the sign power iteration ``s <- sign(J^T J s)`` (the l-infinity lower estimate).
    """

    method: choice(*METHODS) = "lanczos"
    tol: Annotated[float, BeforeValidator(_solver_tol_field)] = 1e-4
    max_iter: OptionalPositiveInt = None
    max_dense_n: NonNegativeInt = MAX_EXACT_N
    sign_iters: PositiveInt = 20


@dataclass
class EigenResult:
    """Largest |eigenvalue| of a batch of symmetric operators, per sample (from ``lanczos``, ``power_iteration``).

    Attributes:
        value: (B,) the largest |lambda|.
        vector: (B, n) its (Ritz) eigenvector, unit norm.
        converged: (B,) bool, whether the sample reached the tolerance.
        iterations: (B,) operator applications used.
    """
    value: torch.Tensor       # (B,) largest |lambda|
    vector: torch.Tensor      # (B, n) its (Ritz) eigenvector, unit norm
    converged: torch.Tensor   # (B,) bool
    iterations: torch.Tensor  # (B,) operator applications used


def _start_vector(batch: int, n: int, like: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=like.device).manual_seed(seed)
    v = torch.randn(batch, n, generator=gen, device=like.device, dtype=like.dtype)
    return v / v.norm(dim=1, keepdim=True)


def _check_eigen_args(matvec, v0, max_iter, tol) -> tuple[int, float]:
    """The shared arguments of ``lanczos`` and ``power_iteration``: a callable, (B, n) float starts, steps, tol."""
    if not callable(matvec):
        raise TypeError(f"matvec must be a callable mapping (B, n) to (B, n), got {type(matvec).__name__}.")
    if not isinstance(v0, torch.Tensor):
        raise TypeError(f"v0 must be a torch.Tensor of shape (B, n) (one start vector per sample), got "
                        f"{type(v0).__name__}; convert with torch.as_tensor(v0).")
    if not v0.is_floating_point() or v0.ndim != 2 or 0 in v0.shape:
        given = (f"{v0.dtype} of shape {tuple(v0.shape)}" if isinstance(v0, torch.Tensor) else type(v0).__name__)
        raise ValueError(f"v0 must be a non-empty floating-point tensor of shape (B, n) (one start vector per "
                         f"sample), got {given}; for one vector write v0[None].")
    if v0.device.type != "meta" and not bool((torch.isfinite(v0).all(1) & (v0.norm(dim=1) > 0)).all()):
        raise ValueError("v0 must have finite, non-zero rows (each is normalised to a unit start vector); "
                         "draw them with torch.randn(B, n).")
    return check_positive_int(max_iter, "max_iter"), check_solver_tol(tol)


def _check_product(w, v: torch.Tensor) -> torch.Tensor:
    """The operator's first product: a tensor of the start vectors' shape and dtype."""
    if not isinstance(w, torch.Tensor) or w.shape != v.shape or w.dtype != v.dtype:
        given = f"{w.dtype} of shape {tuple(w.shape)}" if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"matvec must return a {v.dtype} tensor of the shape of its argument {tuple(v.shape)} "
                         f"(one product per sample), got {given}.")
    if not bool(torch.isfinite(w).all()):
        raise ValueError("matvec returned NaN or inf for a finite start vector: the operator is not finite (a model "
                         "with non-finite weights, or inputs where its curvature overflows); check the model and "
                         "inputs, or run in float64.")
    return w


def lanczos(matvec, v0: torch.Tensor, max_iter: int = 100, tol: float = 1e-4, psd: bool = False) -> EigenResult:
    """Batched Lanczos with full reorthogonalisation for the largest |eigenvalue| of symmetric operators.

    Sample i stops when the residual of its extreme Ritz pair, ``beta_k |y_k|``, is at most
    ``tol * |theta|`` (or on breakdown, an invariant subspace); stopped samples are fed zeros.

    Args:
        matvec: Callable mapping (B, n) to (B, n), sample i by its own symmetric operator.
        v0: Start vectors, shape (B, n) (normalised here).
        max_iter: Most operator applications per sample (capped at n). Default 100.
        tol: Relative tolerance of the residual. Default 1e-4.
        psd: ``True`` takes the largest eigenvalue (for ``J^T J``), otherwise the largest in absolute value.
            Default False.

    Returns:
        An ``EigenResult``: value (B,), vector (B, n), converged (B,) and iterations (B,).
    """
    max_iter, tol = _check_eigen_args(matvec, v0, max_iter, tol)
    psd = check_flag(psd, "psd")
    batch, n = v0.shape
    steps = max(1, min(max_iter, n))
    basis = v0.new_zeros(batch, steps + 1, n)
    basis[:, 0] = v0 / v0.norm(dim=1, keepdim=True)
    alpha = torch.zeros(batch, steps, dtype=torch.float64, device=v0.device)
    beta = torch.zeros_like(alpha)
    value = torch.zeros(batch, dtype=torch.float64, device=v0.device)
    vector = basis[:, 0].clone()
    converged = torch.zeros(batch, dtype=torch.bool, device=v0.device)
    iterations = torch.zeros(batch, dtype=torch.long, device=v0.device)
    active = ~converged
    tiny = torch.finfo(v0.dtype).eps
    scale = torch.zeros(batch, dtype=torch.float64, device=v0.device)
    for j in range(steps):
        q = basis[:, j]
        w = matvec(q)
        if j == 0:
            _check_product(w, q)
        alpha[:, j] = (w * q).sum(1).double()
        for _ in range(2):  # classical Gram-Schmidt, twice: full reorthogonalisation
            w = w - torch.einsum("bk,bkn->bn", torch.einsum("bkn,bn->bk", basis[:, :j + 1], w), basis[:, :j + 1])
        b = w.norm(dim=1)
        beta[:, j] = b.double()
        iterations += active.long()
        k = j + 1
        tri = (torch.diag_embed(alpha[:, :k]) + torch.diag_embed(beta[:, :k - 1], 1)
               + torch.diag_embed(beta[:, :k - 1], -1))
        try:
            theta, y = torch.linalg.eigh(tri)
        except torch.linalg.LinAlgError as err:  # a NaN or inf product after the first
            raise ValueError(f"lanczos: the operator's products became non-finite at iteration {k} (eigh of the "
                             "tridiagonal matrix failed); check the model and inputs, or run in float64.") from err
        idx = theta.argmax(1) if psd else theta.abs().argmax(1)
        lam = theta.gather(1, idx[:, None]).squeeze(1).abs()
        y_top = y.gather(2, idx[:, None, None].expand(-1, k, 1)).squeeze(2)          # (B, k)
        residual = beta[:, j] * y_top[:, -1].abs()
        scale = torch.maximum(scale, alpha[:, :k].abs().amax(1) + beta[:, :k].amax(1))
        done = active & ((residual <= tol * lam) | (beta[:, j] <= 10 * tiny * scale) | (k == n))
        update = active  # keep the latest estimate of every sample still running
        value = torch.where(update, lam, value)
        ritz = torch.einsum("bk,bkn->bn", y_top.to(v0.dtype), basis[:, :k])
        vector = torch.where(update[:, None], ritz, vector)
        converged |= done
        active = ~converged
        if not active.any():
            break
        nxt = w / b.clamp_min(torch.finfo(v0.dtype).tiny)[:, None]
        basis[:, j + 1] = torch.where(active[:, None], nxt, torch.zeros_like(nxt))
    return EigenResult(value.to(v0.dtype), vector / vector.norm(dim=1, keepdim=True).clamp_min(tiny),
                       converged, iterations)


def power_iteration(matvec, v0: torch.Tensor, max_iter: int = 500, tol: float = 1e-4) -> EigenResult:
    """Batched power iteration for the largest |eigenvalue| of symmetric operators.

    ``v <- S v / ||S v||``, estimate ``||S v||`` (at most the true value); sample i stops when the residual
    of the Rayleigh quotient ``rho = v^T S v``, ``||S v - rho v|| = sqrt(||S v||^2 - rho^2)``, is at most
    ``tol ||S v||`` (an eigenvalue then lies within that distance of rho). A sample whose top eigenvalues
    are ``+l`` and ``-l`` never converges: it is reported so. Stopped samples are fed zeros.

    Args:
        matvec: Callable mapping (B, n) to (B, n), sample i by its own symmetric operator ``S``.
        v0: Start vectors, shape (B, n) (normalised here).
        max_iter: Most iterations per sample. Default 500.
        tol: Relative tolerance of the residual. Default 1e-4.

    Returns:
        An ``EigenResult``: value (B,), vector (B, n), converged (B,) and iterations (B,).
    """
    max_iter, tol = _check_eigen_args(matvec, v0, max_iter, tol)
    batch = v0.shape[0]
    v = v0 / v0.norm(dim=1, keepdim=True)
    value = torch.zeros(batch, dtype=v0.dtype, device=v0.device)
    converged = torch.zeros(batch, dtype=torch.bool, device=v0.device)
    iterations = torch.zeros(batch, dtype=torch.long, device=v0.device)
    for step in range(max_iter):
        active = ~converged
        w = matvec(torch.where(active[:, None], v, torch.zeros_like(v)))
        if step == 0:
            _check_product(w, v)
        lam = w.norm(dim=1)
        rho = (w * v).sum(1)
        residual = (lam.double() ** 2 - rho.double() ** 2).clamp_min(0).sqrt()
        iterations += active.long()
        done = active & (residual <= tol * lam.double())
        value = torch.where(active, lam, value)
        v = torch.where(active[:, None], w / lam.clamp_min(torch.finfo(v0.dtype).tiny)[:, None], v)
        converged |= done | (active & (lam == 0))
        if converged.all():
            break
    return EigenResult(value, v, converged, iterations)


def dense_jacobian(explainer: Attribution, inputs: torch.Tensor, target=None, *, max_n: int = MAX_EXACT_N,
                   rows=None, limit_name: str = "max_n") -> torch.Tensor:
    """The full attribution Jacobians ``J = dA/dx``, by differentiating ``A(x)`` row by row (the oracle).

    Args:
        explainer: The attribution method whose Jacobian is taken.
        inputs: Inputs of shape (B, ...) with n features per sample.
        target: Classes, as accepted by ``explainer.attribute`` (``None``: its default, the predicted class).
        max_n: Largest n for which the result is stored; above it only ``rows`` is allowed. Default
            ``MAX_EXACT_N``.
        rows: Optional callable receiving ``(start, block)`` with ``block`` = rows ``start..start+c`` of every
            sample, (B, c, n), instead of storing the result. Default ``None``.
        limit_name: The caller's name for ``max_n``, which the refusal above it tells the user to raise.

    Returns:
        The Jacobians, shape (B, n, n), or ``None`` when ``rows`` is given.

    Raises:
        ValueError: If n > ``max_n`` without ``rows``, the batch is empty, or the attribution does not depend on the
            input.
        TypeError: If ``explainer`` is not an ``Attribution`` or ``inputs`` not a floating-point tensor.
    """
    if not isinstance(explainer, Attribution):
        raise TypeError(f"explainer must be an attrbound_lite Attribution (e.g. get_explainer('saliency', model)), "
                        f"got {type(explainer).__name__}.")
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 2:
        given = f"shape {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        error = ValueError if isinstance(inputs, torch.Tensor) else TypeError
        raise error(f"inputs must be a batch tensor (B, ...) (the explainer checks it against its model), got {given}.")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point (the Jacobian is a derivative), got {inputs.dtype}; pass "
                        "images in [0, 1] as float32 (uint8 images: x.float() / 255).")
    if inputs.shape[0] == 0 or inputs[0].numel() == 0:
        raise ValueError(f"inputs of shape {tuple(inputs.shape)} hold no sample; pass at least one (B >= 1, n >= 1).")
    if isinstance(max_n, bool) or not isinstance(max_n, numbers.Integral) or max_n < 0:
        raise ValueError(f"max_n must be an integer >= 0 (the largest n stored), got {max_n!r}.")
    if rows is not None and not callable(rows):
        raise TypeError(f"rows must be None or a callable (start, block), got {type(rows).__name__}.")
    n = inputs[0].numel()
    if n > max_n and rows is None:
        raise ValueError(f"the exact Jacobian has n x n = {n} x {n} entries per sample, above the limit n <= {max_n}; "
                         f"use method='lanczos' (matrix-free), or raise {limit_name} if you have the memory.")
    x = inputs.detach().requires_grad_(True)
    batch = x.shape[0]
    with torch.enable_grad():
        attr = explainer.attribute(x, target=target, create_graph=True).reshape(batch, n)
    if not attr.requires_grad:
        raise ValueError("the attribution does not depend on the input: its Jacobian is zero.")
    out = None if rows is not None else x.new_empty(batch, n, n)
    # each backward row also carries every path point of the attribution (IG: m of them)
    chunk = max(1, min(n, _DENSE_BUDGET // (batch * n * explainer.path_points)))
    for start in range(0, n, chunk):
        c = min(chunk, n - start)
        eye = torch.zeros(c, batch, n, dtype=x.dtype, device=x.device)
        eye[torch.arange(c), :, torch.arange(start, start + c)] = 1
        (block,) = torch.autograd.grad(attr, x, grad_outputs=eye, is_grads_batched=True, retain_graph=True,
                                       allow_unused=True)
        if block is None:  # a graph through the weights only (a linear model's saliency is constant in x)
            raise ValueError("the attribution does not depend on the input: its Jacobian is zero (e.g. the saliency "
                             "of a linear model); the bound is 0 without any computation.")
        block = block.reshape(c, batch, n).transpose(0, 1)  # rows start..start+c of J_i: (B, c, n)
        if rows is not None:
            rows(start, block)
        else:
            out[:, start:start + c] = block
    if out is not None and not bool(out.any()):
        raise ValueError("the attribution Jacobian is exactly zero at every input: the model is piecewise linear "
                         "(ReLU, max pooling), so its attribution has no curvature to measure; take the Jacobian of "
                         "its softplus surrogate (attrbound_lite.models.smooth_relu(model, beta)).")
    return out


def cosine_bound(euclidean: torch.Tensor, attribution_norm: torch.Tensor) -> torch.Tensor:
    """Lower bound on ``cos(A(x), A(x + d))`` from a bound ``||A(x + d) - A(x)|| <= r``.

    ``sqrt(1 - r^2 / a^2)`` if ``r < a`` (the tangent from the origin to the ball of radius r around A(x)),
    else -1 (vacuous), with ``a = ||A(x)||_2``.

    Args:
        euclidean: The Euclidean bounds ``r``, shape (B,).
        attribution_norm: The norms ``a = ||A(x)||_2``, shape (B,).

    Returns:
        The cosine lower bounds in ``[-1, 1]`` (NaN where an input is NaN), shape (B,).
    """
    for name, value in (("euclidean", euclidean), ("attribution_norm", attribution_norm)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            given = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise TypeError(f"{name} must be a floating-point tensor (B,), got {given}.")
    if euclidean.shape != attribution_norm.shape:
        raise ValueError(f"euclidean and attribution_norm must have one shape (one value per sample), got "
                         f"{tuple(euclidean.shape)} and {tuple(attribution_norm.shape)}.")
    if euclidean.device.type != "meta" and bool(((euclidean < 0) | (attribution_norm < 0)).any()):
        raise ValueError("euclidean and attribution_norm are norms: they must be >= 0 (NaN gives NaN).")
    ratio = euclidean / attribution_norm.clamp_min(torch.finfo(euclidean.dtype).tiny)
    cosine = torch.where(ratio < 1, (1 - ratio.clamp(max=1) ** 2).sqrt(), torch.full_like(ratio, -1.0))
    return torch.where(ratio.isnan(), ratio, cosine)  # an undefined bound stays undefined, not "vacuous"


@dataclass
class BoundResult:
    """Per-sample results of ``attribution_bound`` (tensors of shape (B,)).

    Attributes:
        eps: Radius of the ball: a float, or the (B,) tensor of per-sample radii the call was given.
        norm: ``"l2"`` or ``"linf"``.
        attribution: Name of the attribution method.
        method: ``"lanczos"``, ``"power"`` or ``"exact"``.
        target: (B,) the classes explained.
        sigma_max: (B,) largest singular value of the attribution Jacobian.
        attribution_norm: (B,) ``||A(x)||_2``.
        euclidean: (B,) upper bound on ``||A(x + d) - A(x)||_2``.
        cosine: (B,) lower bound on ``cos(A(x), A(x + d))``; -1 when vacuous.
        cosine_distance: (B,) ``1 - cosine``.
        converged: (B,) bool, whether the eigensolver converged.
        iterations: (B,) Lanczos / power iterations.
        products: (B,) Hessian-vector products spent on sigma_max.
        linf_sqrt_n: (B,) ``eps sqrt(n) sigma_max`` (linf only).
        linf_abs_rowsum: (B,) ``eps || |J| 1 ||_2``, NaN where not computed (linf only).
        linf_lower: (B,) ``eps ||J s||_2``, s from the sign iteration (linf only).
        linf_smaller: Per sample, which upper bound was used: ``"sqrt_n"`` or ``"abs_rowsum"`` (linf only).
        top_vector: (B, n) the top right singular vector of J (unit norm; ``method="exact"``: l-infinity only).
    """
    eps: float
    norm: str
    attribution: str
    method: str
    target: torch.Tensor
    sigma_max: torch.Tensor
    attribution_norm: torch.Tensor
    euclidean: torch.Tensor          # upper bound on ||A(x + d) - A(x)||_2
    cosine: torch.Tensor             # lower bound on cos(A(x), A(x + d)); -1 when vacuous
    cosine_distance: torch.Tensor    # 1 - cosine
    converged: torch.Tensor
    iterations: torch.Tensor         # Lanczos / power iterations
    products: torch.Tensor           # Hessian-vector products spent on sigma_max
    linf_sqrt_n: torch.Tensor | None = None      # eps sqrt(n) sigma_max
    linf_abs_rowsum: torch.Tensor | None = None  # eps || |J| 1 ||_2 (NaN where not computed)
    linf_lower: torch.Tensor | None = None       # eps ||J s||_2, s from the sign iteration
    linf_smaller: list[str] | None = None        # which upper bound was used: "sqrt_n" or "abs_rowsum"
    top_vector: torch.Tensor | None = None       # (B, n) top right singular vector

    def to_dataframe(self):
        """The results as a table, one row per sample.

        Returns:
            A pandas DataFrame with one column per per-sample field that is set (tensors moved to numpy; not
        ``top_vector``).
        """
        import pandas as pd

        columns = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor) and value.ndim > 1:
                continue
            if isinstance(value, torch.Tensor):
                columns[f.name] = as_numpy(value)
            elif value is not None:
                columns[f.name] = value
        return pd.DataFrame(columns)


def _prepare(model, inputs, attribution, target, surrogate_beta, attribution_options, box=True):
    """Validate, pick the model whose Jacobian is taken, resolve the targets on the real model."""
    check_model_inputs(model, inputs, box=box, second_order=True)
    check_explainer_model(attribution, model)
    jacobian_model = smooth_surrogate(model, surrogate_beta)
    real = get_explainer(attribution, model, **attribution_options)
    with torch.no_grad():
        logits = check_logits(model(inputs), inputs.shape[0])
    target = resolve_target(target, logits)
    return real, real.rebind(jacobian_model), target


class _RunningRows:
    """Apply the symmetric operator (``J`` for saliency, ``J^T J`` otherwise) to the samples still running only.

    Those are the samples fed a non-zero vector (the eigensolvers feed zeros to converged samples). When at most half of
    the rows the operator was built for are running, it is rebuilt on those rows, so the batch costs the sum of the
    per-sample iterations rather than the maximum.
    """

    def __init__(self, explainer: Attribution, x: torch.Tensor, target: torch.Tensor):
        self.explainer, self.x, self.target = explainer, x, target
        self.rows = torch.arange(x.shape[0], device=x.device)
        self.op = explainer.jacobian_operator(x, target)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        running = (v != 0).any(1).nonzero().flatten()
        if 0 < running.numel() <= self.rows.numel() // 2:
            self.rows = running
            self.op = self.explainer.for_batch(self.x, rows=running).jacobian_operator(self.x[running],
                                                                                       self.target[running])
        apply = self.op.matvec if self.op.symmetric else self.op.gram
        out = torch.zeros_like(v)
        out[self.rows] = apply(v[self.rows])
        return out


def _require_curvature(op: JacobianOperator, seed: int) -> None:
    """Refuse samples where the model has no input curvature: a bound there would be 0 (or diag(g))."""
    flat = op.curvature_free_samples(torch.Generator(device=op.x.device).manual_seed(seed + 1))
    if flat.numel():
        raise ValueError(
            f"the input Hessian is exactly zero for samples {flat.tolist()}: the model behaves (piecewise) linearly "
            "there, e.g. F.relu called inside forward (which the module check cannot see) or a linear model; the "
            "attribution Jacobian would then miss every jump between linear regions. Pass surrogate_beta with a "
            "model built from nn.ReLU modules, or use a smooth model.")


def _sigma_max(explainer: Attribution, x: torch.Tensor, target: torch.Tensor, method: str, tol: float,
               max_iter: int | None, seed: int) -> tuple[EigenResult, bool]:
    operator = _RunningRows(explainer, x, target)
    symmetric = operator.op.symmetric
    _require_curvature(operator.op, seed)
    v0 = _start_vector(x.shape[0], operator.op.n, x, seed)
    if method == "lanczos":
        result = lanczos(operator, v0, max_iter=max_iter or 100, tol=tol, psd=not symmetric)
    else:
        result = power_iteration(operator, v0, max_iter=max_iter or 500, tol=tol)
    if not symmetric:
        result.value = result.value.clamp_min(0).sqrt()
    return result, symmetric


def spectral_norm(model: nn.Module, inputs: torch.Tensor, attribution="saliency", target=None,
                  method: str = "lanczos", surrogate_beta: float | None = None, tol: float = 1e-4,
                  max_iter: int | None = None, seed: int = 0, max_dense_n: int = MAX_EXACT_N, box: bool = True,
                  **attribution_options) -> torch.Tensor:
    """``sigma_max(J_i)``, the largest singular value of the attribution Jacobian of every sample.

    Args:
        model: the classifier, logits (B, classes).
        inputs: (B, ...) the inputs.
        attribution: a name or an ``Attribution`` instance, as in ``attribution_bound``.
        target: None (the predicted class), an int, or a (B,) tensor of classes.
        method: ``"lanczos"`` (default), ``"power"`` or ``"exact"``, as in ``attribution_bound``.
        surrogate_beta: take the Jacobian of the softplus surrogate, as in ``attribution_bound``.
        tol: relative residual at which a sample's eigensolver stops.
        max_iter: eigensolver iterations (default 100 for Lanczos, 500 for power iteration).
        seed: seed of the start vectors.
        max_dense_n: largest n for which ``method="exact"`` forms the Jacobian, as in ``attribution_bound``.
        box: require inputs in [0, 1], as in ``attribution_bound`` (``False`` for models on R^n).
        **attribution_options: options of a named attribution (``n_steps``, ``baseline``, ...).

    Returns:
        (B,) tensor.
    """
    check_attribution_options(attribution_options, "spectral_norm (sigma_max does not depend on a radius or norm)")
    return attribution_bound(model, inputs, 1.0, "l2", attribution, target, method, surrogate_beta, tol,
                             max_iter, max_dense_n=max_dense_n, seed=seed, box=box, **attribution_options).sigma_max


def attribution_bound(model: nn.Module, inputs: torch.Tensor, eps: float | torch.Tensor, norm: str = "l2",
                      attribution="saliency", target=None, method: str = "lanczos",
                      surrogate_beta: float | None = None, tol: float = 1e-4, max_iter: int | None = None, *,
                      max_dense_n: int = MAX_EXACT_N, sign_iters: int = 20, seed: int = 0, box: bool = True,
                      **attribution_options) -> BoundResult:
    """Upper bounds on the worst-case Euclidean deviation and lower bounds on the cosine similarity of attributions.

    The bounds hold for the attributions of ``inputs`` in [0, 1] under ``||d||_norm <= eps`` perturbations
    (first-order; see the module docstring for the formulas).

    The model is evaluated in eval mode (its mode restored afterwards), with TF32 off.

    Args:
        model: the classifier, logits (B, classes).
        inputs: (B, ...) the inputs, in [0, 1], of the model's dtype, device and input shape.
        eps: the radius, > 0, or a (B,) tensor of radii, one per input (every bound is linear in eps: the same
            values as one call per radius).
        norm: ``"l2"`` or ``"linf"``.
        attribution: ``"saliency"``, ``"input_x_gradient"``, ``"integrated_gradients"`` or an ``Attribution``
            instance (any class that provides ``jacobian_operator``; ``method="exact"`` needs only ``attribute``).
        target: None (the predicted class), an int, or a (B,) tensor of classes.
        method: ``"lanczos"`` (default), ``"power"`` or ``"exact"`` (full Jacobian and SVD, n <= ``max_dense_n``).
        surrogate_beta: take the Jacobian of the softplus surrogate (required for piecewise-linear models);
            the attribution norm and the target always come from the real model.
        tol: relative residual at which a sample's eigensolver stops.
        max_iter: eigensolver iterations (default 100 for Lanczos, 500 for power iteration).
        max_dense_n: largest n for which the l-infinity bound also forms ``|| |J| 1 ||_2`` (n products).
        sign_iters: iterations of the l-infinity lower estimate.
        seed: seed of the start vectors.
        box: require inputs in [0, 1] (images, the default). ``False`` for models on R^n, such as the 2-D toys of
            ``attrbound_lite.toy``: the first-order bound itself does not use the box.
        **attribution_options: options of a named attribution (``n_steps``, ``baseline``, ...).

    Returns:
        A ``BoundResult`` of per-sample tensors of shape (B,).
    """
    box = check_flag(box, "box")
    check_model_inputs(model, inputs, box=box, second_order=True)
    eps = check_radii(eps, "eps", batch=inputs.shape[0])
    norm = check_norm(norm)
    method = check_choice(method, METHODS, "method")
    check_attribution_options(attribution_options, "attribution_bound")
    seed = check_seed(seed)
    check_solver_tol(tol)
    if max_iter is not None:
        check_positive_int(max_iter, "max_iter")
    if isinstance(max_dense_n, bool) or not isinstance(max_dense_n, numbers.Integral) or max_dense_n < 0:
        raise ValueError(f"max_dense_n must be a non-negative integer (0: no dense forms), got {max_dense_n!r}.")
    check_positive_int(sign_iters, "sign_iters")
    with eval_mode(model), full_precision():  # TF32 would move sigma_max by ~1e-3 relative on a GPU
        real, explainer, target = _prepare(model, inputs, attribution, target, surrogate_beta, attribution_options,
                                           box)
        x = inputs.detach()
        batch, n = x.shape[0], x[0].numel()
        scale = eps if not isinstance(eps, torch.Tensor) else eps.to(device=x.device, dtype=x.dtype)
        attribution_norm = real.attribute(x, target=target).detach().reshape(batch, -1).norm(dim=1)
        if method == "exact":
            if n <= max_dense_n:
                try:
                    _require_curvature(explainer.jacobian_operator(x, target), seed)
                except NotImplementedError:  # an attribution without an operator: the dense Jacobian is its oracle
                    pass
            jac = dense_jacobian(explainer, x, target, max_n=max_dense_n, limit_name="max_dense_n")
            jac = jac.to(torch.promote_types(jac.dtype, torch.float32))  # (no SVD in float16 on the CPU)
            if norm == "linf":
                _, singular, vh = torch.linalg.svd(jac)
                top_vector = vh[:, 0].to(x.dtype)
            else:
                singular, top_vector = torch.linalg.svdvals(jac), None
            sigma = singular[:, 0].to(x.dtype)
            converged = torch.ones(batch, dtype=torch.bool, device=x.device)
            iterations = torch.zeros(batch, dtype=torch.long, device=x.device)
            products = torch.full((batch,), n, dtype=torch.long, device=x.device)
        else:
            eig, symmetric = _sigma_max(explainer, x, target, method, tol, max_iter, seed)
            sigma, converged, iterations, top_vector = eig.value, eig.converged, eig.iterations, eig.vector
            products = iterations * (1 if symmetric else 2)
            if not converged.all():
                warnings.warn(f"{method} did not converge for {int((~converged).sum())} of {batch} samples within "
                              f"max_iter={max_iter or (100 if method == 'lanczos' else 500)} at tol={tol}; "
                              "their sigma_max is a lower estimate. Raise max_iter or tol.", stacklevel=2)
        euclidean, linf = scale * sigma, {}
        if norm == "linf":
            linf = _linf_bounds(scale, sigma.detach(), explainer, x, target, top_vector, max_dense_n, sign_iters,
                                jac if method == "exact" else None)
            euclidean = linf.pop("euclidean")
        cosine = cosine_bound(euclidean, attribution_norm)
        return BoundResult(eps=eps, norm=norm, attribution=real.name, method=method, target=target,
                           sigma_max=sigma.detach(), attribution_norm=attribution_norm, euclidean=euclidean,
                           cosine=cosine, cosine_distance=1 - cosine, converged=converged, iterations=iterations,
                           products=products, top_vector=None if top_vector is None else top_vector.detach(), **linf)


def _linf_bounds(eps: float | torch.Tensor, sigma: torch.Tensor, explainer: Attribution, x: torch.Tensor,
                 target: torch.Tensor, top_vector: torch.Tensor, max_dense_n: int, sign_iters: int,
                 jac: torch.Tensor | None = None) -> dict:
    """The l-infinity fields of ``BoundResult``.

    The two upper bounds, their minimum (``euclidean``), which one was used, and the sign-iteration lower estimate
    started from the sign of the top singular vector.
    """
    batch, n = x.shape[0], x[0].numel()
    sqrt_n = eps * math.sqrt(n) * sigma
    rowsum = torch.full_like(sigma, float("nan"))
    if jac is not None:
        rowsum = eps * jac.abs().sum(2).norm(dim=1)
    elif n <= max_dense_n:
        sums = x.new_zeros(batch, n)

        def accumulate(start, block):
            sums[:, start:start + block.shape[1]] = block.abs().sum(2)

        dense_jacobian(explainer, x, target, max_n=max_dense_n, rows=accumulate)
        rowsum = eps * sums.norm(dim=1)
    use_rowsum = rowsum < sqrt_n  # False where NaN
    op = explainer.jacobian_operator(x, target)
    s = torch.where(top_vector >= 0, 1.0, -1.0).to(x.dtype)
    best = torch.zeros(batch, dtype=x.dtype, device=x.device)
    for _ in range(max(1, sign_iters)):
        image = op.matvec(s)
        best = torch.maximum(best, image.norm(dim=1))
        s_next = torch.where(op.rmatvec(image) >= 0, 1.0, -1.0).to(x.dtype)
        if torch.equal(s_next, s):
            break
        s = s_next
    return dict(euclidean=torch.where(use_rowsum, rowsum, sqrt_n), linf_sqrt_n=sqrt_n, linf_abs_rowsum=rowsum,
                linf_lower=eps * best, linf_smaller=["abs_rowsum" if u else "sqrt_n" for u in use_rowsum.tolist()])
