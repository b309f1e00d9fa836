"""Matrix-free attribution Jacobians: the products ``J v`` and ``J^T u`` without forming ``J``.

Every attribution of this package is built from input gradients of the target logit, ``g(p) = grad_p f_c(p)``,
at one or more points ``p`` per sample (the input itself, or IG's path points). Its Jacobian ``J = dA/dx``
is then a combination of ``diag(.)`` terms and input Hessians ``H(p) = d g / d p``, and every product
reduces to Hessian-vector products ``H(p) v = grad_p <g(p), v>`` on a first-order graph built once
(``HessianAtPoints``). Each attribution class assembles its own ``JacobianOperator`` from these pieces
(``Attribution.jacobian_operator``), so the bounds (``attrbound_lite.bounds``) work for any attribution that
provides one, without knowing its formula.

Shapes: inputs are batch-first, ``(B, ...)`` with ``n`` features per sample; operator vectors are ``(B, n)``,
row ``i`` multiplied by sample ``i``'s own Jacobian ``J_i``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ._checks import check_logits, check_model

__all__ = ["HessianAtPoints", "JacobianOperator"]


class HessianAtPoints:
    """Products with the input Hessians ``H(p)`` of the target logit at a stack of points.

    The first-order graph ``g(p) = grad_p f_c(p)`` is built once, with ``create_graph=True``; each product
    ``H(p) v(p) = grad_p <g(p), v(p)>`` is one backward pass through it. With ``chunk`` the points are
    processed ``chunk`` at a time and each chunk's graph is rebuilt at every product (memory bound).

    Args:
        model: the classifier, logits of shape (P, classes).
        points: (P, ...) the points (for IG: the m path points of B samples, step-major, P = m * B).
        targets: (P,) the class c at each point.
        chunk: at most this many points per graph, or None for one graph.

    Attributes:
        grad: (P, ...) ``g(p)`` (detached when chunked).
        points: (P, ...) the points, a leaf that requires grad.
    """

    def __init__(self, model: nn.Module, points: torch.Tensor, targets: torch.Tensor, chunk: int | None = None):
        if not isinstance(targets, torch.Tensor) or targets.shape != points.shape[:1] or targets.is_floating_point():
            raise TypeError(f"target must be resolved to a ({points.shape[0]},) integer tensor of classes here (not "
                            f"None: use the predicted classes, model(inputs).argmax(1)), got "
                            f"{getattr(targets, 'dtype', type(targets).__name__)} "
                            f"{tuple(getattr(targets, 'shape', ()))}.")
        self.model, self.targets = check_model(model, second_order=True), targets
        self.points = points.detach().clone().requires_grad_(True)
        self.chunk = chunk if chunk is not None and chunk < points.shape[0] else None
        if self.chunk is None:
            self.grad = self._first_order(self.points, targets)
        else:
            self.grad = torch.cat([self._first_order(self.points[i:i + self.chunk].detach().requires_grad_(),
                                                     targets[i:i + self.chunk]).detach()
                                   for i in range(0, points.shape[0], self.chunk)])

    def _first_order(self, points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            logits = check_logits(self.model(points), points.shape[0])
            (grad,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), points, create_graph=True)
        return grad

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """``H(p) v(p)`` at every point.

        Args:
            v: (P, ...) one vector per point, shaped like the points.

        Returns:
            (P, ...) the products; zeros where the gradient does not depend on the input (a linear or
            piecewise-linear model).

        Raises:
            TypeError: ``v`` is not a floating-point tensor.
            ValueError: ``v`` is not shaped like the points.
        """
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise TypeError(f"v must be a floating-point tensor shaped like the points {tuple(self.points.shape)}, "
                            f"got {getattr(v, 'dtype', type(v).__name__)}.")
        if v.shape != self.points.shape:
            raise ValueError(f"v must be shaped like the points, {tuple(self.points.shape)} (one vector per point), "
                             f"got {tuple(v.shape)}; reshape it with v.view_as(points).")
        v = v.to(self.points)
        if self.chunk is None:
            if not self.grad.requires_grad:
                return torch.zeros_like(v)
            (out,) = torch.autograd.grad(self.grad, self.points, grad_outputs=v, retain_graph=True, allow_unused=True)
            return torch.zeros_like(v) if out is None else out
        out = []
        for i in range(0, self.points.shape[0], self.chunk):
            p = self.points[i:i + self.chunk].detach().requires_grad_(True)
            g = self._first_order(p, self.targets[i:i + self.chunk])
            part = torch.autograd.grad(g, p, grad_outputs=v[i:i + self.chunk], allow_unused=True)[0] \
                if g.requires_grad else None
            out.append(torch.zeros_like(p) if part is None else part)
        return torch.cat(out)


class JacobianOperator:
    """The attribution Jacobians ``J_i`` of a batch as a matrix-free operator on (B, n) tensors.

    Built by an attribution's ``jacobian_operator`` from two callables on input-shaped tensors (B, ...):
    ``matvec(v) = J v`` and, unless ``symmetric``, ``rmatvec(u) = J^T u``.

    Args:
        inputs: (B, ...) the inputs at which J is taken.
        hessian: the ``HessianAtPoints`` the products use (for the curvature check).
        matvec: ``v -> J v`` on (B, ...) tensors.
        rmatvec: ``u -> J^T u`` on (B, ...) tensors; None when ``symmetric``.
        symmetric: True when ``J = J^T`` (saliency: ``J = H``); the eigensolvers then work on J itself
            rather than on ``J^T J``.

    Attributes:
        x: (B, ...) the inputs, detached.
        n: features per sample.
    """

    def __init__(self, inputs: torch.Tensor, hessian: HessianAtPoints,
                 matvec: Callable[[torch.Tensor], torch.Tensor],
                 rmatvec: Callable[[torch.Tensor], torch.Tensor] | None = None, symmetric: bool = False):
        if rmatvec is None and not symmetric:
            raise ValueError("a non-symmetric Jacobian operator needs rmatvec (u -> J^T u).")
        self.x, self.shape, self.n = inputs.detach(), inputs.shape, inputs[0].numel()
        self.hessian, self.symmetric = hessian, symmetric
        self._matvec, self._rmatvec = matvec, matvec if symmetric else rmatvec

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``J_i v_i`` for every sample: (B, n) -> (B, n)."""
        return self._matvec(self._vectors(v, "v").view(self.shape)).reshape(self.shape[0], -1)

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        """``J_i^T u_i`` for every sample: (B, n) -> (B, n)."""
        return self._rmatvec(self._vectors(u, "u").view(self.shape)).reshape(self.shape[0], -1)

    def _vectors(self, v, name: str) -> torch.Tensor:
        """``v`` if it holds one vector per sample, (B, n) (or (B, ...) of the inputs' shape)."""
        batch, n = self.shape[0], math.prod(self.shape[1:])
        if not isinstance(v, torch.Tensor) or v.ndim < 2 or v.shape[0] != batch or v[0].numel() != n:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must hold one vector per sample, shape ({batch}, {n}), got {got}; a single "
                             f"vector v of n values: {name}.expand({batch}, -1) or one operator per sample.")
        return v.contiguous()

    def gram(self, v: torch.Tensor) -> torch.Tensor:
        """``J_i^T J_i v_i`` for every sample: (B, n) -> (B, n)."""
        return self.rmatvec(self.matvec(v))

    def curvature_free_samples(self, generator: torch.Generator) -> torch.Tensor:
        """Indices of the samples whose input Hessian ``H v`` is exactly zero for a random v.

        ``H v`` is zero at every point of such a sample: a piecewise-linear or linear model there, where a bound would
        be meaningless.
        """
        points = self.hessian.points
        v = torch.randn(points.shape, generator=generator, device=self.x.device, dtype=self.x.dtype)
        hv = self.hessian.hvp(v).abs().reshape(-1, self.shape[0], self.n).amax((0, 2))
        return (hv == 0).nonzero().flatten()
