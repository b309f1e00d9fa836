"""Differentiable attribution maps, shaped like Captum's: ``Saliency(model).attribute(x, target=...)``.

For a classifier ``f`` with logits ``f(x)`` of shape (B, classes) and inputs ``x`` of shape (B, ...),
the attribution ``A(x)`` has the shape of ``x`` and uses the logit of class ``c = target`` (default: the
predicted class):

- ``Saliency``:            ``A(x) = grad_x f_c(x)`` (signed, as the bounds use it);
- ``InputXGradient``:      ``A(x) = x * grad_x f_c(x)``;
- ``IntegratedGradients``: ``A(x) = (x - b) * (1/m) sum_{k=1..m} grad f_c(b + k/m (x - b))``
  (right Riemann sum, Captum's ``"riemann_right"``; baseline ``b`` defaults to zeros).

Unlike Captum, ``attribute(..., create_graph=True)`` returns a map that is differentiable with respect to
the inputs (as Zennit's are), which the attribution attacks and robust-attribution training need.
Attributions use the model as it is (train or eval mode); the bounds and attacks switch it to eval.

Each class also provides its attribution Jacobian ``J = dA/dx`` as a matrix-free operator
(``jacobian_operator``, see ``attrbound_lite.jacobians``), which is all the bounds need: a new attribution
plugs into ``attribution_bound`` by implementing ``attribute_with_logits`` and ``jacobian_operator``.
"""

from __future__ import annotations

import copy
import numbers

import torch
from torch import nn

from ._checks import (
    check_flag,
    check_logits,
    check_model,
    check_model_inputs,
    check_positive_int,
    input_gradient,
    resolve_target,
)
from .jacobians import HessianAtPoints, JacobianOperator

__all__ = ["Attribution", "Saliency", "InputXGradient", "IntegratedGradients", "get_explainer", "check_explainer_model",
           "ATTRIBUTIONS",
           "functional_gradients"]

_FUNCTIONAL = False


class functional_gradients:
    """Context manager: attributions take their input gradients with ``torch.func.grad``.

    The maps are the same; the difference is how they compose: inside ``torch.func.grad`` (and
    ``torch.compile``) a ``torch.func.grad`` can be differentiated again, while ``torch.autograd.grad``
    inside a compiled region cannot. The compiled attack step uses it; eager code keeps autograd, which is
    faster there. The target must be given (a (B,) tensor).
    """

    def __enter__(self):
        global _FUNCTIONAL
        self.saved, _FUNCTIONAL = _FUNCTIONAL, True
        return self

    def __exit__(self, *exc):
        global _FUNCTIONAL
        _FUNCTIONAL = self.saved
        return False


def _logit_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None,
                    create_graph: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``grad_x f_c(x)`` for every sample, with the logits and the resolved targets.

    If ``x`` already requires grad it is differentiated as is (so the result stays connected to the
    caller's graph); otherwise a fresh leaf is used. Under ``functional_gradients``, by ``torch.func.grad``.
    """
    if _FUNCTIONAL:
        if not isinstance(target, torch.Tensor):
            raise ValueError("functional_gradients needs the targets as a (B,) tensor.")
        target = target.to(device=x.device, dtype=torch.long)

        def selected(z):
            logits = check_logits(model(z), z.shape[0])
            return logits.gather(1, target[:, None]).sum(), logits

        grad, logits = torch.func.grad(selected, has_aux=True)(x)
        return grad, logits, target
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        logits = check_logits(model(x), x.shape[0])
        target = resolve_target(target, logits)
        selected = logits.gather(1, target[:, None]).sum()
        grad = input_gradient(selected, x, "the model's logits",
                              "perhaps part of the forward runs under torch.no_grad() or detaches; attributions "
                              "need the graph from the inputs to the logits.", create_graph=create_graph)
    return grad, logits, target


class Attribution:
    """Base class of the attribution methods, shaped like Captum's.

    Subclasses implement ``attribute_with_logits`` and, for the bounds, ``jacobian_operator``.

    Args:
        model: the classifier, mapping inputs (B, ...) to logits (B, classes).

    Attributes:
        name: the method's name in tables and configs.
        path_points: model evaluations per sample and map (1; IG: its number of steps), which sets the
            memory of a batched backward pass.
    """

    name: str = "attribution"
    path_points: int = 1

    def __init__(self, model: nn.Module):
        self.model = check_model(model)

    def attribute(self, inputs: torch.Tensor, target=None, create_graph: bool = False) -> torch.Tensor:
        """The attribution map ``A(x)``.

        Args:
            inputs: (B, ...) floating-point inputs.
            target: None (the predicted class), an int, or a (B,) integer tensor of classes.
            create_graph: keep the graph so that the map can be differentiated with respect to the inputs.

        Returns:
            (B, ...) the map, shaped like the inputs.
        """
        return self.attribute_with_logits(inputs, target, check_flag(create_graph, "create_graph"))[0]

    def attribute_with_logits(self, inputs: torch.Tensor, target=None, create_graph: bool = False
                              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The attribution (B, ...) and the logits ``f(inputs)`` (B, classes), for free when computed anyway.

        Args and the map as in ``attribute``.
        """
        raise NotImplementedError

    def jacobian_operator(self, inputs: torch.Tensor, target: torch.Tensor) -> JacobianOperator:
        """The Jacobians ``J_i = dA(x_i)/dx_i`` of the batch as a matrix-free operator.

        Args:
            inputs: (B, ...) the inputs.
            target: (B,) the classes whose logit is attributed (resolved, not None).

        Returns:
            A ``JacobianOperator`` with ``matvec``, ``rmatvec`` and ``symmetric``.
        """
        raise NotImplementedError(f"{type(self).__name__} provides no matrix-free Jacobian (jacobian_operator); "
                                  "use method='exact', or implement jacobian_operator.")

    def compile_key(self) -> tuple:
        """What the map depends on besides the model and the inputs (the cache key of a compiled attack step).

        Raises:
            ValueError: If an option is a per-sample tensor, which a shared compiled step cannot hold.
        """
        return (type(self),)

    def rebind(self, model: nn.Module) -> "Attribution":
        """The same explainer (same options) for another model, e.g. the softplus surrogate."""
        other = copy.copy(self)
        other.model = check_model(model)
        return other

    def for_batch(self, inputs: torch.Tensor, rows: torch.Tensor | None = None, repeats: int = 1) -> "Attribution":
        """The explainer for ``inputs[rows]`` repeated ``repeats`` times along the batch.

        Per-sample options such as IG baselines follow the rows; the same explainer where nothing is per sample.
        """
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"


class Saliency(Attribution):
    """``A(x) = grad_x f_c(x)``, the signed gradient of the target logit."""

    name = "saliency"

    def attribute_with_logits(self, inputs, target=None, create_graph=False):
        """The saliency map and the logits (arguments as ``Attribution.attribute``)."""
        check_model_inputs(self.model, inputs, box=False, second_order=create_graph)
        grad, logits, _ = _logit_gradient(self.model, inputs, target, create_graph)
        return grad, logits

    def jacobian_operator(self, inputs, target):
        """``J = H``, the input Hessian of the target logit: symmetric."""
        hessian = HessianAtPoints(self.model, inputs, target)
        return JacobianOperator(inputs, hessian, hessian.hvp, symmetric=True)


class InputXGradient(Attribution):
    """``A(x) = x * grad_x f_c(x)``."""

    name = "input_x_gradient"

    def attribute_with_logits(self, inputs, target=None, create_graph=False):
        """The input x gradient map and the logits (arguments as ``Attribution.attribute``)."""
        check_model_inputs(self.model, inputs, box=False, second_order=create_graph)
        grad, logits, _ = _logit_gradient(self.model, inputs, target, create_graph)
        if not create_graph:  # a map without the Hessian term must not look differentiable
            return inputs.detach() * grad, logits
        with torch.enable_grad():  # (under torch.no_grad the product would drop the graph asked for)
            return inputs * grad, logits

    def jacobian_operator(self, inputs, target):
        """``J = diag(g) + diag(x) H``: ``J v = g * v + x * H v`` and ``J^T u = g * u + H (x * u)``."""
        hessian = HessianAtPoints(self.model, inputs, target)
        g, x = hessian.grad.detach(), inputs.detach()
        return JacobianOperator(inputs, hessian, lambda v: g * v + x * hessian.hvp(v),
                                lambda u: g * u + hessian.hvp(x * u))


class IntegratedGradients(Attribution):
    """``A(x) = (x - b) * (1/m) sum_{k=1..m} grad f_c(b + k/m (x - b))`` with ``m = n_steps``.

    ``baseline``: None (zeros), a float, or a tensor broadcastable to the inputs.
    ``internal_batch_size``: at most this many path points per forward/backward pass (memory bound).
    The target defaults to the class predicted at ``x`` (not along the path). Completeness:
    ``sum A(x) -> f_c(x) - f_c(b)`` as ``m`` grows.
    """

    name = "integrated_gradients"

    def __init__(self, model: nn.Module, n_steps: int = 50, baseline=None, internal_batch_size: int | None = None):
        super().__init__(model)
        n_steps = check_positive_int(n_steps, "n_steps")
        if internal_batch_size is not None:
            internal_batch_size = check_positive_int(internal_batch_size, "internal_batch_size")
        if baseline is not None:
            if isinstance(baseline, bool) or not isinstance(baseline, (numbers.Real, torch.Tensor)):
                raise TypeError(f"baseline must be None (zeros), a number or a tensor broadcastable to the inputs, "
                                f"got {type(baseline).__name__} {baseline!r:.40}.")
            if isinstance(baseline, torch.Tensor) and not baseline.is_floating_point():
                raise TypeError(f"a baseline tensor must be floating point, got {baseline.dtype}.")
            if not torch.isfinite(torch.as_tensor(baseline)).all():
                raise ValueError("baseline contains NaN or inf values; give a finite baseline (None means zeros).")
        self.n_steps = n_steps
        self.baseline = baseline
        self.internal_batch_size = internal_batch_size

    @property
    def path_points(self) -> int:
        """Model evaluations per sample and map: the number of steps ``n_steps``."""
        return self.n_steps

    def resolve_baseline(self, inputs: torch.Tensor) -> torch.Tensor:
        """The baseline ``b`` broadcast to the inputs (zeros when ``baseline`` is None).

        Args:
            inputs: (B, ...) the inputs.

        Returns:
            (B, ...) the baseline, shaped like the inputs.

        Raises:
            ValueError: If the baseline does not broadcast to the inputs.
        """
        if self.baseline is None:
            return torch.zeros_like(inputs)
        baseline = torch.as_tensor(self.baseline, dtype=inputs.dtype, device=inputs.device)
        try:
            return baseline.expand_as(inputs)
        except RuntimeError:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to the inputs "
                             f"{tuple(inputs.shape)}.") from None

    def compile_key(self):
        """The steps, the internal batch size and a scalar baseline; a tensor baseline is refused."""
        if isinstance(self.baseline, torch.Tensor) and self.baseline.numel() > 1:
            raise ValueError("a compiled attack step cannot hold a tensor baseline of Integrated Gradients; use "
                             "compile=False, or a scalar baseline.")
        baseline = float(self.baseline) if self.baseline is not None else None
        return (type(self), self.n_steps, self.internal_batch_size, baseline)

    def for_batch(self, inputs, rows=None, repeats=1):
        """The explainer for ``inputs[rows]`` repeated ``repeats`` times along the batch.

        A per-sample baseline tensor follows the rows; ``self`` where the baseline is shared.

        Args:
            inputs: (B, ...) the inputs the baseline is resolved against.
            rows: the rows to keep (None: all).
            repeats: how many times the kept rows are repeated along the batch.

        Returns:
            An explainer whose baseline matches the new batch.
        """
        if not isinstance(self.baseline, torch.Tensor) or self.baseline.ndim < inputs.ndim:
            return self  # None, a scalar or a shared baseline: nothing per sample
        baseline = self.resolve_baseline(inputs)
        baseline = baseline if rows is None else baseline[rows]
        other = copy.copy(self)
        other.baseline = baseline.repeat(repeats, *([1] * (inputs.ndim - 1)))
        return other

    def path(self, inputs: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        """The m path points ``b + k/m (x - b)``, k = 1..m, stacked step-major: shape (m * B, ...)."""
        alphas = torch.arange(1, self.n_steps + 1, dtype=inputs.dtype, device=inputs.device) / self.n_steps
        alphas = alphas.view(-1, *([1] * inputs.ndim))
        return (baseline + alphas * (inputs - baseline)[None]).reshape(-1, *inputs.shape[1:])

    def attribute_with_logits(self, inputs, target=None, create_graph=False):
        """The IG map (``n_steps`` path points) and the logits (arguments as ``Attribution.attribute``)."""
        check_model_inputs(self.model, inputs, box=False, second_order=create_graph)
        batch = inputs.shape[0]
        logits = check_logits(self.model(inputs), batch)
        target = resolve_target(target, logits)
        if not create_graph:  # a map without the second-order terms must not look differentiable
            inputs = inputs.detach()
        with torch.set_grad_enabled(create_graph or torch.is_grad_enabled()):  # the graph asked for, under no_grad too
            baseline = self.resolve_baseline(inputs)
            points = self.path(inputs, baseline)
            targets = target.repeat(self.n_steps)
            chunk = self.internal_batch_size or points.shape[0]
            grads = [_logit_gradient(self.model, points[i:i + chunk], targets[i:i + chunk], create_graph)[0]
                     for i in range(0, points.shape[0], chunk)]
            mean_grad = torch.cat(grads).view(self.n_steps, *inputs.shape).mean(0)
            return (inputs - baseline) * mean_grad, logits

    def jacobian_operator(self, inputs, target):
        """The Jacobian operator of Integrated Gradients (the products ``J v`` and ``J^T u``).

        With ``z_k = b + k/m (x - b)`` and ``gbar = (1/m) sum_k g(z_k)``, ``P w = (1/m) sum_k (k/m) H(z_k) w``:
        ``J v = gbar * v + (x - b) * P v`` and ``J^T u = gbar * u + P ((x - b) * u)``.
        """
        m, x = self.n_steps, inputs.detach()
        baseline = self.resolve_baseline(x)
        hessian = HessianAtPoints(self.model, self.path(x, baseline), target.repeat(m), self.internal_batch_size)
        scales = (torch.arange(1, m + 1, dtype=x.dtype, device=x.device) / m).repeat_interleave(
            x.shape[0]).view(-1, *([1] * (x.ndim - 1)))
        mean_grad = hessian.grad.detach().view(m, *x.shape).mean(0)
        delta = x - baseline

        def path_hvp(w):
            return hessian.hvp(scales * w.repeat(m, *([1] * (w.ndim - 1)))).view(m, *x.shape).mean(0)

        return JacobianOperator(inputs, hessian, lambda v: mean_grad * v + delta * path_hvp(v),
                                lambda u: mean_grad * u + path_hvp(delta * u))


ATTRIBUTIONS = {cls.name: cls for cls in (Saliency, InputXGradient, IntegratedGradients)}


ATTRIBUTION_OPTIONS = ("n_steps", "baseline", "internal_batch_size")  # the keyword options a name can take


def check_attribution_options(options: dict, where: str) -> dict:
    """Refuse keyword options that no named attribution takes (a misspelt or misplaced argument).

    Functions that forward ``**attribution_options`` to ``get_explainer`` call this first, so that ``eps=`` given
    to ``spectral_norm`` or ``method=`` given to ``region_bound`` is named, not reported as a clash inside.
    """
    unknown = sorted(set(options) - set(ATTRIBUTION_OPTIONS))
    if unknown:
        raise TypeError(f"{where} got unexpected keyword arguments {unknown}; besides its own parameters it takes "
                        f"only the attribution options {ATTRIBUTION_OPTIONS} (integrated gradients).")
    return options


def check_explainer_model(attribution, model: nn.Module, what: str = "bounded") -> None:
    """Refuse an ``Attribution`` instance built on another model object than ``model`` (a name passes).

    A bound or certificate reads the explainer's settings and takes the Jacobian of ``model``: an explainer of another
    model would silently give ``model``'s answer under another model's name.
    """
    if isinstance(attribution, Attribution) and attribution.model is not model:
        raise ValueError(f"the explainer {type(attribution).__name__} was built on another model object than the one "
                         f"{what} (a {type(model).__name__}); the result would silently be that model's: build it on "
                         f"that model ({type(attribution).__name__}(model)) or pass its name ('saliency', "
                         "'input_x_gradient', 'integrated_gradients').")


def get_explainer(attribution, model: nn.Module, **options) -> Attribution:
    """An explainer from a name and options, or an ``Attribution`` instance rebound to ``model``.

    The names: ``"saliency"``, ``"input_x_gradient"``, ``"integrated_gradients"``.
    """
    if isinstance(attribution, Attribution):
        if options:
            raise ValueError(f"options {sorted(options)} are only accepted with an attribution name, "
                             "not with an explainer instance; set them on the instance.")
        return attribution.rebind(model)
    if isinstance(attribution, nn.Module):  # get_explainer(model, "saliency"): named, not the model's repr printed
        raise TypeError(f"get_explainer(attribution, model) takes the attribution first, got a model "
                        f"({type(attribution).__name__}) there; swap the arguments: "
                        "get_explainer(\"saliency\", model).")
    if isinstance(attribution, type) and issubclass(attribution, Attribution):
        name = getattr(attribution, "name", None)
        named = f" or the name {name!r}" if name in ATTRIBUTIONS else ""
        raise TypeError(f"attribution is the class {attribution.__name__}, not an explainer: pass an instance, "
                        f"{attribution.__name__}(model){named}.")
    if not isinstance(attribution, str) or attribution not in ATTRIBUTIONS:  # (a list is not a name)
        raise ValueError(f"unknown attribution {attribution!r}; choose one of {tuple(ATTRIBUTIONS)}.")
    cls = ATTRIBUTIONS[attribution]
    if cls is not IntegratedGradients and options:
        raise ValueError(f"{attribution} takes no options, got {sorted(options)}.")
    check_attribution_options(options, attribution)
    return cls(model, **options)
