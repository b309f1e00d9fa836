"""Threat models: the l-infinity and l2 balls around a clean input, intersected with the [0, 1] box.

Small classes with ``project``, ``step`` and ``random_init``, as in MadryLab's ``robustness``. Tensors are
batch first; norms are taken per sample over all other dimensions.
"""

from __future__ import annotations

import torch

from ._checks import check_eps, check_norm

__all__ = ["ThreatModel", "LinfBall", "L2Ball", "threat_model"]


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


class ThreatModel:
    """The set ``{x : ||x - x0||_p <= eps, 0 <= x <= 1}`` around each clean input ``x0``.

    Args:
        eps: the radius, a positive finite number.
    """

    norm: str = ""

    def __init__(self, eps: float):
        self.eps = check_eps(eps)

    def project(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The point of the set closest to ``x``.

        Exact for linf; for l2, ball projection then the box, which stays inside the ball because clipping only shrinks
        each coordinate of ``x - x0``.
        """
        raise NotImplementedError

    def step(self, x: torch.Tensor, grad: torch.Tensor, alpha: float) -> torch.Tensor:
        """One steepest-ascent step of size ``alpha`` in this norm (not yet projected)."""
        raise NotImplementedError

    def random_init(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A uniformly random point of the ball around ``x0``, clipped to the box."""
        raise NotImplementedError

    def ascend(self, objective, x0: torch.Tensor, steps: int, alpha: float,
               generator: torch.Generator | None = None, random_start: bool = True) -> torch.Tensor:
        """Projected gradient ascent on ``objective(x).sum()``, staying in the ball and in [0, 1].

        ``objective``: (B, ...) -> (B,) or a scalar. Runs ``steps`` steps of size ``alpha``, from a random point of the
        ball (or ``x0``).
        """
        x = self.random_init(x0, generator) if random_start else x0.clone()
        for _ in range(steps):
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(objective(x).sum(), x)
            x = self.project(self.step(x.detach(), grad, alpha), x0)
        return x.detach()

    def distance(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``||x - x0||_p`` per sample, shape (B,)."""
        return (x - x0).flatten(1).norm(p=float("inf") if self.norm == "linf" else 2, dim=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps})"


class LinfBall(ThreatModel):
    """The l-infinity ball ``||x - x0||_inf <= eps`` in [0, 1]: sign steps, coordinate-wise clipping."""

    norm = "linf"

    def project(self, x, x0):
        """``clip(x, x0 - eps, x0 + eps)``, then ``clip(., 0, 1)``."""
        return torch.min(torch.max(x, x0 - self.eps), x0 + self.eps).clamp(0, 1)

    def step(self, x, grad, alpha):
        """``x + alpha * sign(grad)``."""
        return x + alpha * grad.sign()

    def random_init(self, x0, generator=None):
        """``x0 + U(-eps, eps)`` per coordinate, clipped to [0, 1]."""
        noise = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return (x0 + (2 * noise - 1) * self.eps).clamp(0, 1)


class L2Ball(ThreatModel):
    """The l2 ball ``||x - x0||_2 <= eps`` in [0, 1]: normalised-gradient steps, radial projection."""

    norm = "l2"

    def project(self, x, x0):
        """``x0 + delta * min(1, eps / ||delta||_2)``, then ``clip(., 0, 1)``."""
        delta = x - x0
        scale = (self.eps / _per_sample_norm(delta).clamp_min(1e-12)).clamp(max=1)
        return (x0 + delta * scale).clamp(0, 1)

    def step(self, x, grad, alpha):
        """``x + alpha * grad / ||grad||_2``."""
        return x + alpha * grad / _per_sample_norm(grad).clamp_min(1e-12)

    def random_init(self, x0, generator=None):
        """A uniform point of the ball (direction uniform on the sphere, radius ``eps * u^(1/n)``), clipped."""
        direction = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        direction = direction / _per_sample_norm(direction).clamp_min(1e-12)
        u = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype)
        radius = self.eps * u ** (1.0 / x0[0].numel())
        return (x0 + direction * radius.view(-1, *([1] * (x0.ndim - 1)))).clamp(0, 1)


def threat_model(norm: str, eps: float) -> ThreatModel:
    """The threat model of a norm.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        eps: the radius.

    Returns:
        ``LinfBall(eps)`` or ``L2Ball(eps)``.
    """
    return {"linf": LinfBall, "l2": L2Ball}[check_norm(norm)](eps)
