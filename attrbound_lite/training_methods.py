"""The training methods' losses on a batch, for ``training``'s loop: one short class per method.

``Natural``, ``PGDAT``, ``IGNorm``, ``AAT`` and ``AdvAAT`` share ``Method``'s inner maximisation (projected ascent in
the threat model's ball, the model in eval mode) and differ in their loss; ``training`` describes each. Also here:
``dissimilarity``, the attribution distance of AAT and AdvAAT (``DISSIMILARITIES``), and
``loss_integrated_gradients``, IG-NORM's path integral of the loss's gradient. ``training`` re-exports the public
names.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import (
    check_labels,
    check_model,
    check_positive_int,
    eval_mode,
    trusted_inputs,
)
from .attributions import get_explainer
from .models import smooth_surrogate
from .threat_models import threat_model

if TYPE_CHECKING:  # annotations only: training imports this module
    from .training import TrainConfig

__all__ = ["DISSIMILARITIES", "dissimilarity", "loss_integrated_gradients"]


DISSIMILARITIES = ("pearson", "cosine", "l2")


def dissimilarity(a: Tensor, b: Tensor, kind: str = "pearson") -> Tensor:
    """Per-sample dissimilarity of attribution maps (B, ...) -> (B,), differentiable everywhere.

    ``1 - pearson``, ``1 - cos`` or ``||a - b||_2`` (smoothed by 1e-12 under the root).

    Raises:
        TypeError: the maps are not tensors, or not floating point (integer or boolean maps: convert with
            ``.float()``).
        ValueError: maps of different shapes or without a batch dimension, or an unknown ``kind``.
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"dissimilarity compares torch tensors, got {type(a).__name__} and {type(b).__name__}.")
    if not a.is_floating_point() or not b.is_floating_point():
        raise TypeError(f"dissimilarity compares floating-point attribution maps, got {a.dtype} and {b.dtype}; "
                        "convert integer or boolean maps with .float().")
    if a.shape != b.shape:
        raise ValueError(f"dissimilarity: the maps have shapes {tuple(a.shape)} and {tuple(b.shape)}; compare maps "
                         "of the same inputs.")
    if a.ndim < 2:
        raise ValueError(f"dissimilarity: the maps have shape {tuple(a.shape)}, without a batch dimension; pass "
                         "(B, ...) maps (one map: a[None], b[None]).")
    a, b = a.flatten(1), b.flatten(1)
    if kind == "pearson":
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    if kind in ("pearson", "cosine"):
        return 1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    if kind == "l2":
        return ((a - b).pow(2).sum(1) + 1e-12).sqrt()
    raise ValueError(f"unknown dissimilarity {kind!r}; choose one of {DISSIMILARITIES}.")


class Method:
    """A training loss on a batch; ``loss`` returns ``(total, cross_entropy, regulariser, logits)``."""

    def __init__(self, model: nn.Module, cfg: TrainConfig):
        self.model, self.cfg = model, cfg
        self.scale = 1.0
        self.threat = threat_model(cfg.norm, cfg.eps) if cfg.eps is not None else None

    def set_radius_scale(self, scale: float) -> None:
        """Run the inner maximisation at ``scale * eps`` with step ``scale * alpha`` (the radius warm-up)."""
        if self.cfg.eps is not None and scale != self.scale:
            self.scale = scale
            self.threat = threat_model(self.cfg.norm, self.cfg.eps * scale)

    def loss(self, x: Tensor, y: Tensor, gen: torch.Generator):
        raise NotImplementedError

    def ascend(self, objective, x, gen, *also: nn.Module) -> Tensor:
        """The inner maximisation, with the model (and ``also``, e.g. its surrogate) in eval mode.

        The attributions inside skip their value checks (``trusted_inputs``: a host synchronisation per step on a
        GPU); the batch was checked on entry (``_AttributionMethod.reference``).
        """
        with ExitStack() as stack:
            for module in {id(m): m for m in (self.model, *also)}.values():
                stack.enter_context(eval_mode(module))
            stack.enter_context(trusted_inputs())
            return self.threat.ascend(objective, x, self.cfg.steps, self.cfg.alpha * self.scale, gen)


class Natural(Method):
    def loss(self, x, y, gen):
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        return ce, ce, torch.zeros_like(ce), logits


class PGDAT(Method):
    def loss(self, x, y, gen):
        x_adv = self.ascend(lambda z: F.cross_entropy(self.model(z), y, reduction="none"), x, gen)
        logits = self.model(x_adv)
        ce = F.cross_entropy(logits, y)
        return ce, ce, torch.zeros_like(ce), logits


def loss_integrated_gradients(model: nn.Module, x: Tensor, x_end: Tensor, y: Tensor, steps: int,
                              create_graph: bool = True) -> Tensor:
    """IG of the per-sample cross-entropy along the straight path from ``x`` to ``x_end`` (both (B, ...)).

    ``(x_end - x) * (1/m) sum_{k=1..m} grad CE(x + k/m (x_end - x))``; its sum over features tends to
    ``CE(x_end) - CE(x)`` (completeness). Differentiable in the weights with ``create_graph``.

    Args:
        model: the classifier.
        x: the path's start (B, ...), a floating-point tensor.
        x_end: its end, of ``x``'s shape.
        y: the classes (B,), an integer tensor.
        steps: ``m``, the path points, a positive integer.
        create_graph: keep the graph of the gradients (to train through them).

    Returns:
        The attributions (B, ...).

    Raises:
        TypeError: a model that is not a Module, ``x`` / ``x_end`` not floating-point tensors, ``y`` not integers.
        ValueError: ``steps`` not a positive integer, ``x_end`` of another shape than ``x``, ``y`` not (B,).
    """
    check_model(model, second_order=create_graph)
    steps = check_positive_int(steps, "steps (IG path points)")
    for value, name in ((x, "x"), (x_end, "x_end")):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            got = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise TypeError(f"{name} must be a floating-point tensor (B, ...), got {got}.")
    if x.ndim < 1 or x_end.shape != x.shape:
        raise ValueError(f"x_end must have the shape of x (the path's start), got {tuple(x_end.shape)} and "
                         f"{tuple(x.shape)}; pass one end point per input.")
    check_labels(y, batch=x.shape[0], name="y")  # dtype and shape only: no value read (none per training step)
    m, delta = steps, (x_end - x).detach()
    k = torch.arange(1, m + 1, dtype=x.dtype, device=x.device).view(m, *([1] * x.ndim)) / m
    path = (x.detach() + k * delta).flatten(0, 1).requires_grad_(True)  # (m * B, ...), step-major
    with torch.enable_grad():
        path_loss = F.cross_entropy(model(path), y.repeat(m), reduction="sum")
        (grads,) = torch.autograd.grad(path_loss, path, create_graph=create_graph)
    return delta * grads.view(m, *x.shape).mean(0)


class IGNorm(Method):
    def loss(self, x, y, gen):
        x_adv = self.ascend(lambda z: F.cross_entropy(self.model(z), y, reduction="none"), x, gen)
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        ig = loss_integrated_gradients(self.model, x, x_adv, y, self.cfg.ig_steps)
        reg = ig.abs().flatten(1).sum(1).mean()
        return ce + self.cfg.lam * reg, ce, reg, logits


class _AttributionMethod(Method):
    def __init__(self, model, cfg):
        super().__init__(model, cfg)
        options = {"n_steps": cfg.ig_steps} if cfg.attribution == "integrated_gradients" else {}
        self._options = options
        smooth_surrogate(model, cfg.surrogate_beta)  # refuse a ReLU model without surrogate_beta now

    def explainer(self):
        # Rebuilt per batch so that the surrogate follows the model's mode (it shares the weights).
        return get_explainer(self.cfg.attribution, smooth_surrogate(self.model, self.cfg.surrogate_beta),
                             **self._options)

    def reference(self, explainer, x: Tensor, y: Tensor) -> Tensor:
        """``A(x)``, fixed during the inner maximisation (eval mode); checks ``x`` (finite) and ``y`` (classes) once."""
        with eval_mode(self.model), eval_mode(explainer.model):
            return explainer.attribute(x, target=y).detach()

    def d(self, a: Tensor, b: Tensor) -> Tensor:
        return dissimilarity(a, b, self.cfg.dissimilarity)


class AAT(_AttributionMethod):
    def loss(self, x, y, gen):
        explainer = self.explainer()
        ref = self.reference(explainer, x, y)
        x_star = self.ascend(lambda z: self.d(ref, explainer.attribute(z, target=y, create_graph=True)), x, gen,
                             explainer.model)
        logits = self.model(x)  # predictions from the real model, attributions from the surrogate
        ce = F.cross_entropy(logits, y)
        with trusted_inputs():  # checked by reference()
            attr = explainer.attribute(x, target=y, create_graph=True)
            reg = self.d(attr, explainer.attribute(x_star, target=y, create_graph=True)).mean()
        return ce + self.cfg.lam * reg, ce, reg, logits


class AdvAAT(_AttributionMethod):
    def loss(self, x, y, gen):
        explainer = self.explainer()
        ref = self.reference(explainer, x, y)

        def inner(z):
            attr = explainer.attribute(z, target=y, create_graph=True)
            ce = F.cross_entropy(self.model(z), y, reduction="none")
            return ce + self.cfg.lam * self.d(ref, attr)

        x_adv = self.ascend(inner, x, gen, explainer.model)
        logits = self.model(x_adv)
        ce = F.cross_entropy(logits, y)
        with trusted_inputs():  # checked by reference()
            attr_adv = explainer.attribute(x_adv, target=y, create_graph=True)
            reg = self.d(explainer.attribute(x, target=y, create_graph=True), attr_adv).mean()
        return ce + self.cfg.lam * reg, ce, reg, logits


_METHODS = {"natural": Natural, "pgd_at": PGDAT, "ig_norm": IGNorm, "aat": AAT, "advaat": AdvAAT}
