"""``interop``'s Captum adapters: the bound of a Captum attribution object, and Captum's ``sensitivity_max`` beside it.

``captum_bound`` reads a Captum ``Saliency``, ``InputXGradient`` or ``IntegratedGradients`` object and bounds the map
its ``.attribute`` computes with the same keywords (Captum's defaults), refusing what the package cannot express;
``captum_sensitivity_max`` runs Captum's ``sensitivity_max`` on the package's attribution, noise radius matched to
eps (``interop`` describes both). Captum (the ``compare`` extra) is imported inside these functions only.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ._checks import (
    check_choice,
    check_model_inputs,
    check_norm,
    check_positive_int,
    check_radii,
    eval_mode,
    resolve_target,
)
from .attributions import IntegratedGradients
from .bounds import BoundResult, attribution_bound
from .interop_common import (
    SampledScores,
    _box_radius,
    _check_bound_options,
    _each_radius,
    _model_of,
    _require,
    _SeededRNG,
    _to_target,
)

__all__ = ["captum_bound", "captum_sensitivity_max"]


# Captum's IntegratedGradients.attribute defaults, which the keywords of captum_bound mirror.
_CAPTUM_IG_DEFAULTS = {"n_steps": 50, "method": "gausslegendre"}


def captum_bound(explainer, inputs: torch.Tensor, target, eps: float | torch.Tensor, norm: str = "l2", *,
                 abs: bool | None = None, n_steps: int | None = None, method: str | None = None, baselines=None,
                 internal_batch_size: int | None = None, **bound_options) -> BoundResult:
    """The worst-case bounds of a Captum attribution object, via ``bounds.attribution_bound``.

    The keywords are those of ``explainer.attribute`` with Captum's defaults (None: Captum's default), so that
    the bound is about the map ``explainer.attribute(inputs, target=target, **same keywords)``:

    - ``captum.attr.Saliency``: ``abs=False`` is the package's ``"saliency"`` (signed gradient). ``abs=True``
      (Captum's default) returns the same bound, which also holds for ``|grad|``: ``| |a| - |b| | <= |a - b|``
      elementwise and ``|| |a| || = ||a||``, so the Euclidean and cosine bounds carry over (not tight); the result
      is named ``"abs_saliency"`` and its ``linf_lower`` (a lower estimate for the signed map only) is NaN.
    - ``captum.attr.InputXGradient``: ``"input_x_gradient"``, ``A(x) = x * grad f_c(x)``.
    - ``captum.attr.IntegratedGradients``: ``"integrated_gradients"``, only with ``method="riemann_right"``
      (``A(x) = (x - b) * (1/m) sum_{k=1..m} grad f_c(b + k/m (x - b))``, m = ``n_steps``, b = ``baselines``,
      zeros when None) and ``multiply_by_inputs=True``. Captum's default method ``"gausslegendre"`` (and the
      other Riemann rules) put the path points elsewhere and are refused.

    Args:
        explainer: A Captum ``Saliency``, ``InputXGradient`` or ``IntegratedGradients`` built on a
            ``torch.nn.Module`` (``explainer.forward_func``) returning logits (B, classes).
        inputs: (B, ...) one input tensor in [0, 1], of the model's dtype, device and input shape (Captum's tuples of
            inputs are refused).
        target: The classes explained: an int, a (B,) tensor or a list of ints as in Captum, or None for the
            predicted class (where Captum would refuse a multi-class output).
        eps: Radius of the ball, > 0 (Python or numpy scalar), or a (B,) tensor of radii, one per input (the same
            values as one call per radius).
        norm: ``"l2"`` (default) or ``"linf"``.
        abs: ``Saliency`` only: Captum's ``abs`` (None: Captum's default, True).
        n_steps: ``IntegratedGradients`` only: the number of steps m (None: Captum's default, 50).
        method: ``IntegratedGradients`` only: must be ``"riemann_right"`` (None: Captum's default
            ``"gausslegendre"``, refused).
        baselines: ``IntegratedGradients`` only: None (zeros), a float or a tensor broadcastable to the inputs.
        internal_batch_size: ``IntegratedGradients`` only: path points per forward pass (memory).
        **bound_options: Passed to ``attribution_bound`` (``tol``, ``max_iter``, ``surrogate_beta``, ``seed``,
            ``max_dense_n``, ``sign_iters``); its eigensolver (``attribution_bound``'s ``method``) is ``solver=``
            here, since ``method`` is Captum's IG rule.

    Returns:
        The ``BoundResult`` of ``attribution_bound`` (per-sample tensors of shape (B,)).

    Raises:
        TypeError: If the explainer is not one of the three Captum classes, its ``forward_func`` is not an
            ``nn.Module``, the inputs are a tuple, not a floating-point tensor (uint8 images: divide by 255) or of
            another dtype than the model's, or a keyword does not belong to the explainer.
        ValueError: If a setting cannot be expressed by the package (IG ``method`` other than
            ``"riemann_right"``, ``multiply_by_inputs=False``, ``additional_forward_args``, a tuple target), the
            inputs are not a batch the model takes with values in [0, 1], or ``eps`` is not a positive radius or
            (B,) tensor of them.
    """
    attr = _require("captum.attr", "captum_bound")
    kind = type(explainer)
    supported = {attr.Saliency: "saliency", attr.InputXGradient: "input_x_gradient",
                 attr.IntegratedGradients: "integrated_gradients"}
    if kind not in supported:
        raise TypeError(f"captum_bound supports captum.attr.Saliency, InputXGradient and IntegratedGradients "
                        f"(exactly those classes), got {kind.__module__}.{kind.__name__}.")
    model = explainer.forward_func
    if not isinstance(model, nn.Module):
        raise TypeError(f"the explainer's forward_func must be a torch.nn.Module, got {type(model).__name__}: "
                        f"build it on the module itself, e.g. {kind.__name__}(model), not on model.forward or a "
                        "lambda (the bound differentiates the module twice).")
    if isinstance(inputs, (tuple, list)):
        raise TypeError("captum_bound takes one input tensor (B, ...); Captum's tuples of inputs are not supported.")
    check_model_inputs(model, inputs, "inputs", box=True)
    eps = check_radii(eps, "eps", batch=inputs.shape[0])
    if bound_options.pop("additional_forward_args", None) is not None:
        raise ValueError("additional_forward_args is not supported: the bound calls the model on the inputs alone; "
                         "wrap the extra arguments into the module.")
    if "solver" in bound_options:
        bound_options["method"] = bound_options.pop("solver")
    _check_bound_options(bound_options, "captum_bound", "the attribution comes from the explainer, its options in "
                         "Captum's names (n_steps, baselines, internal_batch_size), the target as the third argument")
    name = supported[kind]
    options: dict[str, Any] = {}
    ig_keywords = {"n_steps": n_steps, "method": method, "baselines": baselines,
                   "internal_batch_size": internal_batch_size}
    if name != "integrated_gradients":
        given = sorted(k for k, v in ig_keywords.items() if v is not None)
        if given:
            hint = (" (the eigensolver of the bound is chosen with solver=, e.g. solver='exact')"
                    if method is not None else "")
            raise TypeError(f"{given} are keywords of IntegratedGradients.attribute, not of {kind.__name__}{hint}.")
    if name != "saliency" and abs is not None:
        raise TypeError(f"abs is a keyword of Saliency.attribute, not of {kind.__name__}.")
    if abs is not None and not isinstance(abs, (bool, np.bool_)):
        raise TypeError(f"abs must be True, False or None (Captum's default, True), got {abs!r}.")
    if name == "integrated_gradients":
        rule = _CAPTUM_IG_DEFAULTS["method"] if method is None else method
        if rule != "riemann_right":
            default = " (Captum's default)" if method is None else ""
            raise ValueError(f"IntegratedGradients method {rule!r}{default} cannot be expressed: the package's IG is "
                             "the right Riemann sum (path points b + k/m (x - b), k = 1..m); pass "
                             "method='riemann_right' here and to explainer.attribute.")
        if not explainer.multiplies_by_inputs:
            raise ValueError("IntegratedGradients(multiply_by_inputs=False) (the path-averaged gradient without the "
                             "(x - b) factor) cannot be expressed; use multiply_by_inputs=True (Captum's default).")
        options["n_steps"] = _CAPTUM_IG_DEFAULTS["n_steps"] if n_steps is None else n_steps
        options["baseline"] = baselines
        if internal_batch_size is not None:
            options["internal_batch_size"] = internal_batch_size
    if isinstance(target, tuple) or (isinstance(target, list) and any(isinstance(t, tuple) for t in target)):
        raise ValueError("tuple targets (indices into multi-dimensional outputs) are not supported: the model "
                         "must return logits (B, classes) and target one class per sample.")
    if isinstance(target, list):
        target = _to_target(target, inputs.shape[0], inputs.device, "target")
    result = attribution_bound(model, inputs, eps, norm, attribution=name, target=target, **options, **bound_options)
    if name == "saliency" and (abs is None or abs):
        lower = None if result.linf_lower is None else torch.full_like(result.linf_lower, float("nan"))
        result = dataclasses.replace(result, attribution="abs_saliency", linf_lower=lower)
    return result


def _captum_explainer(attr, model: nn.Module, attribution: str, options: dict, x: torch.Tensor) -> tuple[Any, dict]:
    """The Captum object and ``attribute`` keywords that compute the package's attribution ``attribution`` on ``x``.

    An IG baseline is checked as the package's IG checks it (a finite number or a tensor that broadcasts to ``x``)
    and handed to Captum in a shape it takes: (1, ...) when shared, (B, ...) when per sample.
    """
    check_choice(attribution, ("saliency", "input_x_gradient", "integrated_gradients"), "attribution")
    if attribution == "saliency":
        if options:
            raise ValueError(f"saliency takes no options, got {sorted(options)}.")
        return attr.Saliency(model), {"abs": False}
    if attribution == "input_x_gradient":
        if options:
            raise ValueError(f"input_x_gradient takes no options, got {sorted(options)}.")
        return attr.InputXGradient(model), {}
    unknown = set(options) - {"n_steps", "baseline", "internal_batch_size"}
    if unknown:
        raise ValueError(f"unknown integrated_gradients options {sorted(unknown)}.")
    kwargs = {"n_steps": check_positive_int(options.get("n_steps", 50), "n_steps"), "method": "riemann_right"}
    baseline = options.get("baseline")
    if baseline is not None:
        ig = IntegratedGradients(model, 1, baseline)  # refuses NaN, strings, numpy arrays, wrong shapes, with the fix
        per_sample = isinstance(baseline, torch.Tensor) and baseline.ndim == x.ndim and baseline.shape[0] == x.shape[0]
        kwargs["baselines"] = ig.resolve_baseline(x if per_sample else x[:1]).contiguous()
    if options.get("internal_batch_size") is not None:
        kwargs["internal_batch_size"] = check_positive_int(options["internal_batch_size"], "internal_batch_size")
    return attr.IntegratedGradients(model), kwargs


def captum_sensitivity_max(model: nn.Module, inputs: torch.Tensor, target, eps: float, norm: str = "linf",
                           attribution: str = "saliency", *, n_perturb_samples: int = 10, seed: int = 0,
                           **attribution_options) -> SampledScores:
    """Captum's ``sensitivity_max`` of the package's attribution, its noise matched to the ball of radius eps.

    ``s_i = max_{k <= K} ||A(x_i + d_k) - A(x_i)||_2 / ||A(x_i)||_2`` (Captum replaces a zero norm by 1), with
    ``d_k`` from Captum's ``default_perturb_func``: uniform in ``[-r, r]^n``, ``r = eps`` for ``"linf"`` and
    ``r = eps / sqrt(n)`` (the largest cube inside the ball) for ``"l2"``; ``K = n_perturb_samples`` (Captum's
    default 10). The noise is not clipped to [0, 1]. The map is computed by the Captum object equal to the
    package's attribution (``Saliency`` with ``abs=False``, ``InputXGradient``, ``IntegratedGradients`` with
    ``method="riemann_right"``). Compare with ``bound_in_same_units``: ``euclidean / attribution_norm``.

    Args:
        model: A ``torch.nn.Module`` returning logits (B, classes); evaluated in eval mode.
        inputs: (B, ...) inputs in [0, 1], a tensor of the model's dtype, device and input shape.
        target: The classes: an int, a (B,) tensor, or None (the predicted class).
        eps: Radius of the ball, > 0, or a (B,) tensor of radii, one per input (one call per distinct radius: sample
            ``i`` scores as in a call with ``eps[i]`` for every input).
        norm: ``"linf"`` (default) or ``"l2"``.
        attribution: ``"saliency"`` (default), ``"input_x_gradient"`` or ``"integrated_gradients"``.
        n_perturb_samples: Samples per input, K >= 1. Default 10, Captum's.
        seed: Seed of the global torch generator for the call (restored afterwards).
        **attribution_options: IG: ``n_steps`` (default 50), ``baseline``, ``internal_batch_size``.

    Returns:
        A ``SampledScores`` with ``scores`` of shape (B,).

    Raises:
        TypeError: A model that is not a Module, inputs that are not a floating-point tensor (numpy arrays and uint8
            images included) or of another dtype than the model's.
        ValueError: Inputs the model does not take, an empty batch, NaN/inf or values outside [0, 1], targets out of
            range, a radius, sample count or option that is not valid.
    """
    attr = _require("captum.attr", "captum_sensitivity_max")
    captum_metrics = _require("captum.metrics", "captum_sensitivity_max")
    norm, model = check_norm(norm), _model_of(model)
    n_perturb_samples = check_positive_int(n_perturb_samples, "n_perturb_samples")
    x = check_model_inputs(model, inputs, "inputs", box=True).detach()
    eps = check_radii(eps, "eps", batch=x.shape[0])
    if isinstance(eps, torch.Tensor):
        return _each_radius(lambda r: captum_sensitivity_max(model, x, target, r, norm, attribution,
                                                             n_perturb_samples=n_perturb_samples, seed=seed,
                                                             **attribution_options), eps)
    if x.dtype in (torch.float16, torch.bfloat16):
        raise TypeError(f"captum_sensitivity_max runs in float32 or float64: Captum draws its noise in float32, which "
                        f"a {x.dtype} model does not take; evaluate model.float() on inputs.float().")
    radius = _box_radius(eps, norm, x[0].numel())
    explainer, kwargs = _captum_explainer(attr, model, attribution, attribution_options, x)
    with eval_mode(model), _SeededRNG(seed):
        with torch.no_grad():
            target = resolve_target(_to_target(target, x.shape[0], x.device, "target"), model(x))
        with warnings.catch_warnings():  # Captum sets requires_grad on its own perturbed copies, and says so
            warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
            scores = captum_metrics.sensitivity_max(explainer.attribute, x, perturb_radius=radius,
                                                    n_perturb_samples=n_perturb_samples, target=target, **kwargs)
    return SampledScores(
        metric="captum.metrics.sensitivity_max",
        scores=scores.detach().cpu().double().numpy().reshape(-1),
        normalisation="max_k ||A(x + d_k) - A(x)||_2 / ||A(x)||_2",
        noise={"perturb_func": "default_perturb_func (uniform in [-r, r]^n)", "perturb_radius": radius,
               "n_perturb_samples": n_perturb_samples},
        comparable="euclidean / attribution_norm", eps=float(eps), norm=norm,
        attribution=attribution if isinstance(attribution, str) else getattr(attribution, "name", None),
        target=target.detach().cpu().numpy().astype(np.int64).reshape(-1))
