"""A curvature-aware bound: the mean-value inequality over the whole ball, its supremum estimated by ascent.

The first-order bounds of ``attrbound_lite.bounds`` use the Jacobian at ``x`` alone and are exceeded once the
radius is large enough for the curvature of the attribution map to matter. The mean-value inequality holds for
every perturbation in the ball (the ball intersected with the [0, 1] box is convex, so it contains the segment
from ``x`` to ``x + d``):

    ||A(x + d) - A(x)||_2 <= ||d||_2 * sup_{z in [x, x + d]} sigma_max(J(z))
                          <= ||d||_2 * S,     S = sup_{z in B_p(x, eps) ∩ [0, 1]^n} sigma_max(J(z)),

so ``eps * S`` (l2) and ``eps * sqrt(n) * S`` (l-infinity, ``||d||_2 <= sqrt(n) eps``) bound the Euclidean
deviation with or without the label constraint. ``S`` is not known: ``region_bound`` estimates it **from below**
by projected ascent on ``sigma_max(J(z))`` over the ball and the box, from ``x`` and from random starts. The
result is therefore a stronger *practical* bound, not a certificate: it holds wherever the ascent found the
supremum, and an attack can still exceed it where the ascent fell short.

The ascent: with ``(u, v)`` the current top singular pair of ``J(z)``, ``sigma_max(J(z)) = u^T J(z) v`` and its
gradient in ``z`` is that of ``u^T J(z) v`` with ``u, v`` held fixed (third derivatives of the model, through
autograd: ``u^T J v = <grad_z <u, A(z)>, v>``). After every step the pair is refreshed by ``power_steps``
warm-started power steps on ``J^T J`` (on ``J`` where it is symmetric, saliency), whose estimate ``||J v||`` is at
most ``sigma_max``. The best point of every sample is finally refined by Lanczos to ``tol``.

The l-infinity bound also has the row-sum form of the point bound, ``eps * sup_z || |J(z)| 1 ||_2``; its supremum
is not ascended (that would need the dense Jacobian's gradient), only evaluated at ``x`` and at the point the
ascent found, so where it is the smaller form it is a weaker estimate than the sigma form, and
``RegionBoundResult.linf_smaller`` says which form each sample used.

With ``surrogate_beta`` (a ReLU model) the Jacobians are the softplus surrogate's, as for the point bound: ``S`` is
then the surrogate's supremum, and the inequality bounds the surrogate's attribution, not the ReLU model's, whose map
jumps between linear regions.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, fields

import torch
from torch import nn

from ._checks import (
    as_numpy,
    check_model_inputs,
    check_norm,
    check_radii,
    check_seed,
    eval_mode,
    full_precision,
    trusted_inputs,
)
from .attributions import check_attribution_options
from .bounds import (
    MAX_EXACT_N,
    BoundResult,
    _prepare,
    _sigma_max,
    attribution_bound,
    cosine_bound,
    dense_jacobian,
)
from .config import Config, OptionalPositiveFloat, PositiveInt
from .runtime import sample_generators
from .threat_models import threat_model

__all__ = ["RegionOptions", "RegionBoundResult", "region_bound"]


class RegionOptions(Config):
    """The ascent of ``region_bound`` (its defaults), validated once for every caller.

    Args:
        steps: projected ascent steps per start.
        restarts: starts per sample: ``x`` itself, then ``restarts - 1`` uniformly random points of the ball.
        step_size: the step, in the norm of the ball (``None``: ``2.5 * eps / steps``, as PGD).
        power_steps: warm-started power steps that refresh the top singular pair after every ascent step.
    """

    steps: PositiveInt = 10
    restarts: PositiveInt = 1
    step_size: OptionalPositiveFloat = None
    power_steps: PositiveInt = 2


@dataclass
class RegionBoundResult:
    """Per-sample results of ``region_bound`` (tensors of shape (B,) unless stated).

    Attributes:
        eps: Radius of the ball (a float, or the (B,) tensor of per-sample radii given).
        norm: ``"l2"`` or ``"linf"``.
        attribution: Name of the attribution method.
        target: (B,) the classes explained (of the clean input, held fixed over the ball).
        sigma_max: (B,) the supremum of ``sigma_max(J(z))`` over the ball found by the ascent (never below the
            point value ``point.sigma_max``).
        argmax: (B, ...) the point ``z`` where it was found (``x`` itself where no point of the ball beat ``x``).
        attribution_norm: (B,) ``||A(x)||_2``.
        euclidean: (B,) the region bound on ``||A(x + d) - A(x)||_2``.
        cosine: (B,) the lower bound on ``cos(A(x), A(x + d))`` from ``euclidean``; -1 when vacuous.
        cosine_distance: (B,) ``1 - cosine``.
        gain: (B,) ``sigma_max / point.sigma_max``, how much the curvature adds (1: none found).
        point: the first-order ``BoundResult`` at ``x`` (same eps, norm, attribution, tolerance).
        seconds: wall-clock seconds of the ascent and refinement (the region bound's cost beyond the point bound).
        point_seconds: wall-clock seconds of the point bound.
        linf_sqrt_n: (B,) ``eps sqrt(n) sigma_max`` (linf only).
        linf_abs_rowsum: (B,) ``eps max(|| |J| 1 ||_2 at x and at argmax)``, NaN where n > ``max_dense_n`` (linf only).
        linf_smaller: which form ``euclidean`` used per sample: ``"sqrt_n"`` or ``"abs_rowsum"`` (linf only).
    """
    eps: float | torch.Tensor
    norm: str
    attribution: str
    target: torch.Tensor
    sigma_max: torch.Tensor
    argmax: torch.Tensor
    attribution_norm: torch.Tensor
    euclidean: torch.Tensor
    cosine: torch.Tensor
    cosine_distance: torch.Tensor
    gain: torch.Tensor
    point: BoundResult
    seconds: float
    point_seconds: float
    linf_sqrt_n: torch.Tensor | None = None
    linf_abs_rowsum: torch.Tensor | None = None
    linf_smaller: list[str] | None = None

    def to_dataframe(self):
        """One row per sample: the region fields (tensors of shape (B,)) and the point bound's, prefixed ``point_``.

        Returns:
            A pandas DataFrame.
        """
        import pandas as pd

        columns = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor) and value.ndim == 1:
                columns[f.name] = as_numpy(value)
            elif isinstance(value, (list, str, float, int)):
                columns[f.name] = value
        point = self.point.to_dataframe()
        for name in ("sigma_max", "euclidean", "cosine", "converged"):
            columns[f"point_{name}"] = point[name].to_numpy()
        return pd.DataFrame(columns)


def _top_pair(op, v: torch.Tensor, power_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``power_steps`` power steps from ``v`` on ``J`` (symmetric) or ``J^T J``: ``(sigma, u, v)``, sigma = ||J v||."""
    tiny = torch.finfo(v.dtype).tiny
    for _ in range(power_steps):
        w = op.matvec(v) if op.symmetric else op.gram(v)
        v = w / w.norm(dim=1, keepdim=True).clamp_min(tiny)
    jv = op.matvec(v)
    sigma = jv.norm(dim=1)
    return sigma, jv / sigma.clamp_min(tiny)[:, None], v


def _sigma_gradient(explainer, z: torch.Tensor, target: torch.Tensor, u: torch.Tensor,
                    v: torch.Tensor) -> torch.Tensor:
    """``grad_z (u^T J(z) v)`` per sample, ``u, v`` fixed: ``u^T J v = <grad_z <u, A(z)>, v>``, differentiated."""
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        a = explainer.attribute(z, target=target, create_graph=True).reshape(z.shape[0], -1)
        (jt_u,) = torch.autograd.grad((a * u).sum(), z, create_graph=True)
        if not jt_u.requires_grad:  # J does not depend on z (a quadratic model): no third derivative
            return torch.zeros_like(z)
        (grad,) = torch.autograd.grad((jt_u.reshape(z.shape[0], -1) * v).sum(), z, materialize_grads=True)
    return grad


def _abs_rowsum(explainer, x: torch.Tensor, target: torch.Tensor, max_dense_n: int) -> torch.Tensor:
    """``|| |J| 1 ||_2`` per sample, from the dense Jacobian's rows."""
    sums = x.new_zeros(x.shape[0], x[0].numel())

    def accumulate(start, block):
        sums[:, start:start + block.shape[1]] = block.abs().sum(2)

    dense_jacobian(explainer, x, target, max_n=max_dense_n, rows=accumulate)
    return sums.norm(dim=1)


def _random_starts(ball, x: torch.Tensor, restart: int, seed: int) -> torch.Tensor:
    """Start ``restart`` of every sample: a uniform point of its ball, the same for a sample in any batch.

    Each sample's stream is seeded by the seed, the restart and a digest of the sample's own values.
    """
    starts = []
    for i, (row, gen) in enumerate(zip(x, sample_generators(x, seed, restart), strict=True)):
        own = ball if not isinstance(ball.eps, torch.Tensor) else type(ball)(ball.eps[i:i + 1])  # its own radius
        starts.append(own.random_init(row[None], gen))
    return torch.cat(starts)


def region_bound(model: nn.Module, inputs: torch.Tensor, eps: float | torch.Tensor, norm: str = "l2",
                 attribution="saliency", target=None, *, steps: int = 10, restarts: int = 1,
                 step_size: float | None = None, power_steps: int = 2, surrogate_beta: float | None = None,
                 tol: float = 1e-4, max_iter: int | None = None, max_dense_n: int = MAX_EXACT_N, seed: int = 0,
                 **attribution_options) -> RegionBoundResult:
    """The mean-value bound ``eps * S`` (l2) or ``eps * sqrt(n) * S`` (l-infinity), ``S`` estimated by ascent.

    ``S = sup_{z in B_p(x, eps) ∩ [0, 1]^n} sigma_max(J(z))``, estimated from below by projected ascent (see the
    module docstring): a stronger practical bound than ``attribution_bound``'s first-order one, which it never falls
    below, but not a certificate. The cosine bound follows from the Euclidean one as in ``bounds.cosine_bound``.

    The model is evaluated in eval mode (its mode restored afterwards), with TF32 off; the attribution of the target
    class of ``x`` is followed over the whole ball (no label constraint: the bound holds with or without it).

    Args:
        model: the classifier, logits (B, classes).
        inputs: (B, ...) the inputs, in [0, 1], of the model's dtype, device and input shape.
        eps: the radius, > 0, or a (B,) tensor of radii, one per input (the same values as one call per radius).
        norm: ``"l2"`` or ``"linf"``.
        attribution: ``"saliency"``, ``"input_x_gradient"``, ``"integrated_gradients"`` or an ``Attribution``
            instance with a ``jacobian_operator``.
        target: None (the predicted class), an int, or a (B,) tensor of classes.
        steps: ascent steps per start (``RegionOptions``).
        restarts: starts per sample: ``x``, then random points of the ball.
        step_size: the ascent step (``None``: ``2.5 * eps / steps``).
        power_steps: power steps refreshing the singular pair after each ascent step.
        surrogate_beta: take the Jacobian of the softplus surrogate (piecewise-linear models), as the point bound.
        tol: relative residual of the Lanczos runs (the point bound and the refinement at the best point).
        max_iter: Lanczos iterations (default 100).
        max_dense_n: l-infinity: also the row-sum form where n <= this, as the point bound.
        seed: seed of the random starts and the start vectors.
        **attribution_options: options of a named attribution (``n_steps``, ``baseline``, ...).

    Returns:
        A ``RegionBoundResult``; its ``point`` is the first-order bound at ``x``.
    """
    check_model_inputs(model, inputs, box=True, second_order=True)
    eps, norm = check_radii(eps, "eps", batch=inputs.shape[0]), check_norm(norm)
    check_attribution_options(attribution_options, "region_bound")
    seed = check_seed(seed)
    steps, restarts, power_steps = (int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v
                                    for v in (steps, restarts, power_steps))  # numpy integers too
    options = RegionOptions(steps=steps, restarts=restarts, step_size=step_size, power_steps=power_steps)
    started = time.perf_counter()
    point = attribution_bound(model, inputs, eps, norm, attribution, target, "lanczos", surrogate_beta, tol, max_iter,
                              max_dense_n=max_dense_n, seed=seed, **attribution_options)
    point_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with eval_mode(model), full_precision(), trusted_inputs():  # checked above: no value checks in the ascent
        _, explainer, target = _prepare(model, inputs, attribution, point.target, surrogate_beta, attribution_options)
        x = inputs.detach()
        batch, n, reps = x.shape[0], x[0].numel(), options.restarts
        scale = eps if not isinstance(eps, torch.Tensor) else eps.to(device=x.device, dtype=x.dtype)
        ball = threat_model(norm, scale)
        alpha = options.step_size or 2.5 * scale / options.steps
        if isinstance(alpha, torch.Tensor):
            alpha = alpha.repeat(reps)
        x0 = x.repeat(reps, *([1] * (x.ndim - 1)))            # restart-major: block r is start r of every sample
        z = torch.cat([x, *(_random_starts(ball, x, r, seed) for r in range(1, reps))])
        ball = ball.repeat(reps)  # per-sample radii tiled over the restarts (restart-major)
        ztarget = target.repeat(reps)
        walker = explainer.for_batch(x, repeats=reps)
        v = point.top_vector.repeat(reps, 1)  # warm start: the top singular vector at x
        best = torch.zeros(batch * reps, dtype=x.dtype, device=x.device)
        best_z = z.clone()
        for step in range(options.steps + 1):
            op = walker.jacobian_operator(z, ztarget)  # (x itself passed the point bound's curvature check)
            sigma, u, v = _top_pair(op, v, options.power_steps)
            better = sigma > best
            best = torch.where(better, sigma, best)
            best_z = torch.where(better.view(-1, *([1] * (x.ndim - 1))), z, best_z)
            if step == options.steps:
                break
            grad = _sigma_gradient(walker, z, ztarget, u.detach(), v.detach())
            z = ball.project(ball.step(z.detach(), grad, alpha), x0).detach()
        winner = best.view(reps, batch).argmax(0)                # the best start of every sample
        rows = winner * batch + torch.arange(batch, device=x.device)
        z_star = best_z[rows]
        refined, _ = _sigma_max(explainer, z_star, target, "lanczos", tol, max_iter, seed)
        sup = torch.maximum(torch.maximum(refined.value, best[rows]), point.sigma_max).detach()
        argmax = torch.where((sup > point.sigma_max).view(-1, *([1] * (x.ndim - 1))), z_star, x)
        euclidean, linf = scale * sup, {}
        if norm == "linf":
            sqrt_n = scale * math.sqrt(n) * sup
            rowsum = torch.full_like(sup, float("nan"))
            if n <= max_dense_n:  # the point bound formed the row sums at x already
                rowsum = torch.maximum(point.linf_abs_rowsum,
                                       scale * _abs_rowsum(explainer, argmax, target, max_dense_n))
            use_rowsum = rowsum < sqrt_n  # False where NaN
            euclidean = torch.where(use_rowsum, rowsum, sqrt_n)
            linf = dict(linf_sqrt_n=sqrt_n, linf_abs_rowsum=rowsum,
                        linf_smaller=["abs_rowsum" if r else "sqrt_n" for r in use_rowsum.tolist()])
        cosine = cosine_bound(euclidean, point.attribution_norm)
    return RegionBoundResult(eps=eps, norm=norm, attribution=point.attribution, target=target, sigma_max=sup,
                             argmax=argmax.detach(), attribution_norm=point.attribution_norm, euclidean=euclidean,
                             cosine=cosine, cosine_distance=1 - cosine, gain=sup / point.sigma_max, point=point,
                             seconds=time.perf_counter() - started, point_seconds=point_seconds, **linf)
