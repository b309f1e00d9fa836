"""Threat models: the l-infinity and l2 balls around a clean input, intersected with the [0, 1] box.

Small classes with ``project``, ``step`` and ``random_init``, as in MadryLab's ``robustness``. Tensors are
batch first; norms are taken per sample over all other dimensions.

The radius is one number for the whole batch or a (B,) tensor, one radius per input, so that one batch can
hold every (sample, radius, restart) instance of a sweep; the step size ``alpha`` likewise. Per sample, the
arithmetic is the same as with a scalar of the same value, so the two layouts give the same iterates.
"""

from __future__ import annotations

import torch

from . import _checks
from ._checks import (
    check_flag,
    check_inputs,
    check_norm,
    check_positive_int,
    check_radii,
    input_gradient,
    trusted_inputs,
)

__all__ = ["ThreatModel", "LinfBall", "L2Ball", "threat_model"]


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    """``||t_i||_2`` shaped to broadcast against ``t``; half precision summed in float32 (its squares underflow)."""
    wide = t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
    return wide.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def _unit(t: torch.Tensor) -> torch.Tensor:
    """``t_i / ||t_i||_2`` per sample, 0 where ``t_i`` is 0, in ``t``'s dtype (half precision via float32)."""
    norm = _per_sample_norm(t)
    return (t.to(norm.dtype) / norm.clamp_min(1e-12)).to(t.dtype)


def per_sample(value: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """A scalar as is, or a (B,) tensor shaped (B, 1, ..., 1) to broadcast against ``like`` (B, ...).

    Raises:
        ValueError: If the tensor's length is not the batch size of ``like``.
    """
    if not isinstance(value, torch.Tensor):
        return value
    if value.shape != like.shape[:1]:
        raise ValueError(f"per-sample radii or step sizes have {value.shape[0]} entries but the batch has "
                         f"{like.shape[0]} inputs; give one per input (restarts: repeat them per restart).")
    return value.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.ndim - 1)))


def _check_pair(x, x0, name: str, method: str) -> None:
    for value, what in ((x, name), (x0, "x0")):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{method}: {what} must be a torch.Tensor, got {type(value).__name__}.")


def _check_finite(value: torch.Tensor, name: str, method: str) -> None:
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{method}: {name} holds NaN or inf; a non-finite point has no projection or step (a "
                         "diverged objective?): check the model and the objective.")


class ThreatModel:
    """The set ``{x : ||x - x0||_p <= eps, 0 <= x <= 1}`` around each clean input ``x0``.

    Args:
        eps: the radius, a positive finite number, or a (B,) tensor of radii, one per input of the batches
            this ball is used with.
    """

    norm: str = ""

    def __init__(self, eps: float | torch.Tensor):
        if type(self) is ThreatModel:
            raise TypeError("ThreatModel is the base class of the balls; use threat_model(norm, eps), LinfBall(eps) "
                            "or L2Ball(eps).")
        self.eps = check_radii(eps)

    def repeat(self, repeats: int) -> "ThreatModel":
        """This ball for a batch repeated ``repeats`` times (restart-major): per-sample radii are tiled."""
        repeats = check_positive_int(repeats, "repeats")
        if not isinstance(self.eps, torch.Tensor) or repeats == 1:
            return self
        return type(self)(self.eps.repeat(repeats))

    def to(self, like: torch.Tensor) -> "ThreatModel":
        """This ball with its per-sample radii on ``like``'s device and dtype (one copy, not one per step).

        Raises:
            TypeError: ``like`` is not a tensor (a device string or dtype included).
        """
        if not isinstance(like, torch.Tensor):
            raise TypeError(f"to: like must be a torch.Tensor (the batch whose device and dtype the radii follow), "
                            f"got {type(like).__name__} {like!r:.60}; pass the inputs themselves: threat.to(x).")
        if not isinstance(self.eps, torch.Tensor) or (self.eps.device, self.eps.dtype) == (like.device, like.dtype):
            return self
        return type(self)(self.eps.to(device=like.device, dtype=like.dtype))

    def project(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The point of the set closest to ``x``.

        Exact for linf; for l2, ball projection then the box, which stays inside the ball because clipping only shrinks
        each coordinate of ``x - x0``.

        Raises:
            ValueError: ``x`` and ``x0`` of different shapes, or ``x0`` outside [0, 1] (the ball around it would
                not meet the box where the projection puts the point), or ``x`` holding NaN or inf.
        """
        _check_pair(x, x0, "x", "project")
        if x.shape != x0.shape:
            raise ValueError(f"project: x has shape {tuple(x.shape)} but the clean inputs x0 {tuple(x0.shape)}; "
                             "pass the perturbed batch and its own clean batch.")
        if not _checks._TRUSTED:  # (inside the attacks' step loops x0 was checked once)
            check_inputs(x0, "x0 (the clean inputs)", box=True)
            _check_finite(x, "x", "project")
        return self._project(x, x0)

    def _project(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} defines no _project; a subclass of ThreatModel must "
                                  "define it.")

    def step(self, x: torch.Tensor, grad: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
        """One steepest-ascent step of size ``alpha`` (a number or (B,) per sample) in this norm (not projected).

        Raises:
            ValueError: a step size that is not positive and finite (a negative one would descend), or a ``grad``
                holding NaN or inf.
        """
        if not _checks._TRUSTED or not isinstance(alpha, torch.Tensor):
            alpha = check_radii(alpha, "alpha (the step size)")
        _check_pair(grad, x, "grad", "step")
        if grad.shape != x.shape:
            raise ValueError(f"step: grad has shape {tuple(grad.shape)} but x {tuple(x.shape)}; pass the gradient of "
                             "the objective with respect to x itself.")
        if not _checks._TRUSTED:
            _check_finite(grad, "grad", "step")
        return self._step(x, grad, alpha)

    def _step(self, x: torch.Tensor, grad: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} defines no _step; a subclass of ThreatModel must "
                                  "define it.")

    def random_init(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A uniformly random point of the ball around ``x0``, clipped to the box.

        Raises:
            TypeError: ``x0`` not a floating-point tensor, ``generator`` neither None nor a ``torch.Generator``.
            ValueError: ``x0`` outside [0, 1] or not finite.
        """
        if not _checks._TRUSTED:
            check_inputs(x0, "x0 (the clean inputs)", box=True)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be None or a torch.Generator (torch.Generator().manual_seed(seed)), got "
                            f"{type(generator).__name__}.")
        return self._random_init(x0, generator)

    def _random_init(self, x0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} defines no _random_init; a subclass of ThreatModel must "
                                  "define it.")

    def ascend(self, objective, x0: torch.Tensor, steps: int, alpha: float | torch.Tensor,
               generator: torch.Generator | None = None, random_start: bool = True) -> torch.Tensor:
        """Projected gradient ascent on ``objective(x).sum()``, staying in the ball and in [0, 1].

        ``objective``: (B, ...) -> (B,) or a scalar. Runs ``steps`` steps of size ``alpha``, from a random point of the
        ball (or ``x0``).

        Raises:
            ValueError: ``steps`` not a positive integer, ``alpha`` not positive, ``x0`` outside [0, 1].
            TypeError: ``random_start`` not True or False.
        """
        steps = check_positive_int(steps, "steps")
        random_start = check_flag(random_start, "random_start")
        if not callable(objective):
            raise TypeError(f"objective must be a function of x (B, ...) returning (B,) values, got "
                            f"{type(objective).__name__}.")
        if not _checks._TRUSTED:
            check_inputs(x0, "x0 (the clean inputs)", box=True)
            alpha = check_radii(alpha, "alpha (the step size)")
        x = self.random_init(x0, generator) if random_start else x0.clone()
        with trusted_inputs():  # checked once above
            for _ in range(steps):
                x = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    value = objective(x)
                    if not isinstance(value, torch.Tensor):
                        raise TypeError(f"objective must return a tensor of (B,) values (or a scalar tensor) "
                                        f"computed from x, got {type(value).__name__}.")
                    grad = input_gradient(value.sum(), x, "the objective's values",
                                          "the objective must be computed from x by differentiable operations.")
                x = self.project(self.step(x.detach(), grad, alpha), x0)
        return x.detach()

    def distance(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``||x - x0||_p`` per sample, shape (B,)."""
        _check_pair(x, x0, "x", "distance")
        if x.shape != x0.shape:
            raise ValueError(f"distance: x has shape {tuple(x.shape)} but x0 {tuple(x0.shape)}.")
        return (x - x0).flatten(1).norm(p=float("inf") if self.norm == "linf" else 2, dim=1)

    def __repr__(self) -> str:
        eps = self.eps if not isinstance(self.eps, torch.Tensor) else f"<{self.eps.numel()} per-sample radii>"
        return f"{type(self).__name__}(eps={eps})"


class LinfBall(ThreatModel):
    """The l-infinity ball ``||x - x0||_inf <= eps`` in [0, 1]: sign steps, coordinate-wise clipping."""

    norm = "linf"

    def _project(self, x, x0):
        """``clip(x, x0 - eps, x0 + eps)``, then ``clip(., 0, 1)``."""
        eps = per_sample(self.eps, x0)
        return torch.min(torch.max(x, x0 - eps), x0 + eps).clamp(0, 1)

    def _step(self, x, grad, alpha):
        """``x + alpha * sign(grad)``."""
        return x + per_sample(alpha, x) * grad.sign()

    def _random_init(self, x0, generator=None):
        """``x0 + U(-eps, eps)`` per coordinate, clipped to [0, 1]."""
        noise = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return (x0 + (2 * noise - 1) * per_sample(self.eps, x0)).clamp(0, 1)


class L2Ball(ThreatModel):
    """The l2 ball ``||x - x0||_2 <= eps`` in [0, 1]: normalised-gradient steps, radial projection."""

    norm = "l2"

    def _project(self, x, x0):
        """``x0 + delta * min(1, eps / ||delta||_2)``, then ``clip(., 0, 1)``."""
        delta = x - x0
        # eps * (1 / ||delta||), as Python evaluates ``float / tensor``: a scalar and a per-sample radius of the
        # same value give the same bits.
        scale = (_per_sample_norm(delta).clamp_min(1e-12).reciprocal() * per_sample(self.eps, x0)).clamp(max=1)
        return (x0 + delta * scale.to(x0.dtype)).clamp(0, 1)

    def _step(self, x, grad, alpha):
        """``x + alpha * grad / ||grad||_2``."""
        norm = _per_sample_norm(grad).clamp_min(1e-12)  # (half precision in float32: a zero gradient stays a zero step)
        return x + (per_sample(alpha, x) * grad.to(norm.dtype) / norm).to(x.dtype)

    def _random_init(self, x0, generator=None):
        """A uniform point of the ball (direction uniform on the sphere, radius ``eps * u^(1/n)``), clipped."""
        direction = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        direction = _unit(direction)
        u = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype)
        eps = self.eps.to(device=x0.device, dtype=x0.dtype) if isinstance(self.eps, torch.Tensor) else self.eps
        if isinstance(eps, torch.Tensor) and eps.shape != u.shape:
            per_sample(eps, x0)  # raises: one radius per input
        radius = eps * u ** (1.0 / x0[0].numel())
        return (x0 + direction * radius.view(-1, *([1] * (x0.ndim - 1)))).clamp(0, 1)


def threat_model(norm: str, eps: float | torch.Tensor) -> ThreatModel:
    """The threat model of a norm.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        eps: the radius, or a (B,) tensor of radii (one per input).

    Returns:
        ``LinfBall(eps)`` or ``L2Ball(eps)``.
    """
    return {"linf": LinfBall, "l2": L2Ball}[check_norm(norm)](eps)
