"""``interop``'s Quantus adapters: the ``WorstCaseBound`` metric, ``explain``, and Quantus's sensitivities beside them.

``WorstCaseBound`` is a metric with Quantus's calling convention (the first-order bound, or the deviation attribution
PGD reaches, per sample); ``explain`` is the package's attribution as a Quantus explanation function;
``quantus_sensitivity`` runs Quantus's ``MaxSensitivity``, ``AvgSensitivity`` and ``LocalLipschitzEstimate`` with
their defaults, noise radius matched to eps (``interop`` describes them). Quantus (the ``compare`` extra) is imported
inside these functions only.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from ._checks import (
    as_numpy,
    check_choice,
    check_flag,
    check_norm,
    check_positive_int,
    check_radii,
    check_seed,
    eval_mode,
    resolve_target,
)
from .attacks import AttackResult, AttributionPGD
from .attributions import Attribution, get_explainer
from .bounds import BoundResult, attribution_bound
from .interop_common import (
    SENSITIVITY_KINDS,
    SampledScores,
    _as_inputs,
    _box_radius,
    _check_bound_options,
    _each_radius,
    _model_of,
    _require,
    _SeededRNG,
    _to_target,
)

__all__ = ["WorstCaseBound", "explain", "quantus_sensitivity"]


# Method names of quantus.evaluate / quantus.explain (Captum backend) -> the package's attribution.
_QUANTUS_METHODS = {"Gradient": "saliency", "Saliency": "saliency", "InputXGradient": "input_x_gradient",
                    "saliency": "saliency", "input_x_gradient": "input_x_gradient",
                    "integrated_gradients": "integrated_gradients"}
# The same names when the package's ``explain`` computes the map: then "IntegratedGradients" is the package's IG.
_EXPLAIN_METHODS = {**_QUANTUS_METHODS, "IntegratedGradients": "integrated_gradients"}
# The keywords of ``explain`` that are not options of the attribution (Quantus adds "method" and "device").
_EXPLAIN_KEYWORDS = ("attribution", "method", "device")


def _explain_attribution(attribution: str | None, method: str | None) -> str:
    """The attribution ``explain`` computes: ``attribution``, else the one the ``xai_methods`` key names.

    Both may be given (``quantus.evaluate`` adds its key as ``method`` to ``explain_func_kwargs``) when they do not
    disagree: a key that names another attribution than ``attribution`` is refused, since one would win silently.
    """
    if method is not None and not isinstance(method, str):
        raise TypeError(f"method (the xai_methods key quantus.evaluate passes) must be a string or None, got "
                        f"{type(method).__name__} {method!r:.60}.")
    if attribution is not None:
        if not isinstance(attribution, (str, Attribution)):
            raise TypeError(f"attribution must be 'saliency', 'input_x_gradient', 'integrated_gradients', an "
                            f"Attribution instance or None, got {type(attribution).__name__} {attribution!r:.60}.")
        named = _EXPLAIN_METHODS.get(method) if method is not None else None
        own = attribution.name if isinstance(attribution, Attribution) else attribution
        if named is not None and named != own:
            raise ValueError(f"attribution={attribution!r} and method={method!r} (which names {named!r}) disagree: "
                             "one would win silently. Pass one of them: drop attribution from explain_func_kwargs, "
                             "or use an xai_methods key that names the same attribution or none (e.g. 'IG').")
        return attribution
    if method is None:
        return "saliency"
    if not isinstance(method, str) or method not in _EXPLAIN_METHODS:
        raise ValueError(f"cannot tell which attribution the xai_methods key {method!r} names; pass "
                         "explain_func_kwargs={'attribution': 'saliency'} (or 'input_x_gradient', "
                         f"'integrated_gradients') to quantus.evaluate (keys understood: {sorted(_EXPLAIN_METHODS)}).")
    return _EXPLAIN_METHODS[method]


def explain(model, inputs, targets, attribution: str | None = None, *, device=None, method: str | None = None,
            **options) -> np.ndarray:
    """The package's attribution as a Quantus explanation function: ``explain_func(model, inputs, targets)``.

    Usable as ``explain_func`` of any Quantus metric (``explain_func_kwargs={"attribution": ...}``) or as a value
    of ``xai_methods`` in ``quantus.evaluate``, e.g. ``xai_methods={"IntegratedGradients": explain}`` (the key names
    the attribution) or ``{"IG": explain}`` with ``explain_func_kwargs={"attribution": "integrated_gradients",
    "n_steps": 20}``; ``WorstCaseBound(attribution=None)`` then bounds the same map. Unlike ``quantus.explain`` with
    Captum it neither takes absolute values nor sums over channels: the map is the one ``attribution_bound``
    bounds. The model runs in eval mode (its flags restored afterwards). The inputs need not lie in [0, 1]
    (Quantus explains noisy copies, not clipped).

    Args:
        model: A ``torch.nn.Module`` (or a Quantus model wrapping one) returning logits (B, classes).
        inputs: (B, ...) inputs in the layout the model takes: a floating-point numpy array (cast to the model's
            dtype) or a tensor of the model's dtype.
        targets: (B,) integer class indices (or one int for all); floating-point values are refused.
        attribution: ``"saliency"``, ``"input_x_gradient"`` or ``"integrated_gradients"``; None (default): the
            one ``method`` names (``"Gradient"``, ``"Saliency"``, ``"InputXGradient"``, ``"IntegratedGradients"`` or
            the package's names), saliency without a method.
        device: Where to compute (default: the model's device).
        method: The method name ``quantus.evaluate`` adds (its ``xai_methods`` key); read when ``attribution`` is
            None.
        **options: Options of the attribution (IG: ``n_steps``, ``baseline``, ``internal_batch_size``).

    Returns:
        (B, ...) the attributions as a numpy array shaped like the inputs.

    Raises:
        TypeError: A model that is not a Module, integer inputs (0-255 images: divide by 255), or a tensor of
            another dtype than the model's.
        ValueError: Inputs the model does not take, targets of another length than the batch, no attribution given
            and a ``method`` that names none, or an ``attribution`` and a ``method`` that name different maps.
    """
    model = _model_of(model)
    attribution = _explain_attribution(attribution, method)
    x = _as_inputs(inputs, model, "inputs", device, box=False)
    target = _to_target(targets, x.shape[0], x.device, "targets")
    explainer = get_explainer(attribution, model, **options)
    with eval_mode(model):
        return as_numpy(explainer.attribute(x, target=target))


def _check_a_batch(a_batch, *layouts: tuple[int, ...]) -> None:
    """Refuse precomputed attributions that are not one map per input of the batch.

    Quantus passes ``a_batch`` shaped like ``x_batch``, or with an axis of 1 where a Captum map was summed over the
    channels; ``layouts`` are the inputs' shapes as given and as the model takes them.
    """
    shape = tuple(np.shape(a_batch))

    def fits(x_shape: tuple[int, ...]) -> bool:
        if len(shape) == len(x_shape) - 1 and len(x_shape) == 4:  # channel-summed (B, H, W): Quantus adds the axis
            return shape[:1] == x_shape[:1] and (shape[1:] == x_shape[2:] or shape[1:] == x_shape[1:3])
        return (len(shape) == len(x_shape) and shape[:1] == x_shape[:1]
                and all(a in (x, 1) for a, x in zip(shape[1:], x_shape[1:], strict=True)))

    if not any(fits(layout) for layout in layouts):
        raise ValueError(f"a_batch (the precomputed attributions) has shape {shape}, which is not one map per input "
                         f"of x_batch {layouts[0]} (the same shape, or 1 along an axis the map was summed over); pass "
                         "the attributions of this x_batch, or a_batch=None (the bound recomputes the map anyway).")


def _options_for_part(options: dict, part: slice, batch: int) -> dict:
    """Attribution options for the samples ``part`` of a batch of ``batch``: a per-sample IG baseline is sliced."""
    baseline = options.get("baseline")
    if isinstance(baseline, torch.Tensor) and baseline.ndim > 1 and baseline.shape[0] == batch and batch > 1:
        return {**options, "baseline": baseline[part]}
    return options


class WorstCaseBound:
    """A metric with Quantus's calling convention whose score is the package's worst case (or an attack's).

    ``metric(model=..., x_batch=..., y_batch=...)`` returns one score per sample (a list, as Quantus metrics do);
    an instance can be passed in ``quantus.evaluate(metrics={...})`` (a plain callable: no Quantus base class).
    For sample i with target ``y_i`` and ``r_i`` the first-order bound of ``attribution_bound`` (``eps sigma_max``
    for l2, ``eps min(sqrt(n) sigma_max, || |J| 1 ||_2)`` for l-infinity):

    - ``relative=True`` (default): ``r_i / ||A(x_i)||_2``, in the units of Quantus's ``MaxSensitivity`` and
      ``AvgSensitivity`` (with their defaults ``normalise=False``: attribution not max-normalised) and of Captum's
      ``sensitivity_max``;
    - ``relative=False``: ``r_i``, the bound on ``||A(x_i + d) - A(x_i)||_2``;
    - ``attack=True``: instead of the bound, the deviation ``||A(x') - A(x_i)||_2`` (divided by ``||A(x_i)||_2``
      when relative) that ``attacks.AttributionPGD`` reaches at its best label-keeping iterate ``x'`` (NaN where
      no iterate kept the label ``y_i``), of the package's (signed) map; the bound is computed too and kept in
      ``bound_results``.

    The attribution is the package's (``attributions``), computed here: ``a_batch`` is accepted for Quantus's
    sake, checked to hold one map per input, and not used. With ``attribution=None`` it is the one the explanation
    function computes: with the package's ``explain`` (``xai_methods={name: explain}``), the attribution and
    options it reads from ``explain_func_kwargs`` (IG included; a method key naming another map than its
    ``"attribution"`` is refused); with ``quantus.explain`` (``xai_methods={name: {...}}``), the method name
    that ``quantus.evaluate`` passes (``explain_func_kwargs["method"]``): ``"Gradient"`` (signed) and
    ``"Saliency"`` (``|grad|``, bounded by the signed bound) give saliency, ``"InputXGradient"`` input x gradient;
    ``"IntegratedGradients"`` is refused (``quantus.explain`` uses Captum's 10-step trapezoid rule, which the
    package cannot express: explain with ``xai_methods={"IntegratedGradients": explain}`` instead, or name
    ``attribution="integrated_gradients"``). Quantus's Captum explanations sum over the channel axis; for C > 1
    channels the summed map's deviation is at most ``sqrt(C)`` times the bound here.

    Inside ``quantus.evaluate`` an error of the metric is printed by Quantus, which then raises
    ``KeyError: 'call_kwargs_empty'`` (its results lack the entry); the printed message is the package's.

    Args:
        eps: Radius of the ball, > 0 (Python or numpy scalar), or a (B,) tensor of radii, one per sample of the
            ``x_batch`` it is then called with (the same values as one call per radius).
        norm: ``"linf"`` (default, the uniform box of the Quantus sensitivities) or ``"l2"``.
        attribution: ``"saliency"``, ``"input_x_gradient"``, ``"integrated_gradients"``, or None (default: read
            from the method name, above; a call outside ``quantus.evaluate`` must then name it).
        attribution_options: Options of the attribution (IG: ``n_steps``, ``baseline``).
        relative: Divide by ``||A(x)||_2``. Default True.
        attack: Score the ``AttributionPGD`` deviation instead of the bound. Default False.
        attack_steps: Steps of the attack, >= 1. Default 20.
        attack_alpha: Step size, or a (B,) tensor of them (default ``2.5 eps / attack_steps``).
        attack_restarts: Random restarts of the attack, >= 1. Default 1.
        seed: Seed of the bound's start vectors and of the attack.
        return_aggregate: Return ``[aggregate_func(scores)]`` instead of the scores, as Quantus metrics do.
        aggregate_func: The aggregation (default ``np.mean``).
        **bound_options: Passed to ``attribution_bound`` (``method``, ``tol``, ``max_iter``, ``surrogate_beta``,
            ...); ``surrogate_beta`` is also the attack's.

    Raises:
        ValueError: A radius, step size or count that is not positive, an unknown norm or attribution.
        TypeError: ``relative``, ``attack`` or ``return_aggregate`` not True or False (numpy bools included).

    Attributes:
        evaluation_scores: The scores of the last call.
        all_evaluation_scores: The scores of every call.
        bound_results: The ``BoundResult`` of each batch of the last call.
        attack_results: The ``AttackResult`` of each batch of the last call (``attack=True``).
    """

    name = "Worst-Case-Bound"
    score_direction = "lower"  # Quantus's ScoreDirection.LOWER: smaller is more robust

    def __init__(self, eps: float | torch.Tensor, norm: str = "linf", attribution: str | None = None, *,
                 attribution_options: dict | None = None, relative: bool = True, attack: bool = False,
                 attack_steps: int = 20, attack_alpha: float | torch.Tensor | None = None, attack_restarts: int = 1,
                 seed: int = 0, return_aggregate: bool = False, aggregate_func: Callable | None = None,
                 **bound_options):
        self.eps, self.norm = check_radii(eps, "eps"), check_norm(norm)
        relative, attack = check_flag(relative, "relative"), check_flag(attack, "attack")
        return_aggregate = check_flag(return_aggregate, "return_aggregate")
        if attribution_options is not None and not isinstance(attribution_options, dict):
            raise TypeError(f"attribution_options must be a dict (e.g. {{'n_steps': 16}}), got "
                            f"{type(attribution_options).__name__}.")
        if attribution is not None:
            get_explainer(attribution, nn.Identity(), **(attribution_options or {}))  # validate name and options now
        self.attribution, self.attribution_options = attribution, dict(attribution_options or {})
        self.relative, self.attack = relative, attack
        unused = [name for name, value, default in (("attack_steps", attack_steps, 20), ("attack_alpha", attack_alpha,
                                                    None), ("attack_restarts", attack_restarts, 1))
                  if not attack and value is not default and value != default]
        if unused:
            raise ValueError(f"{unused} set the attack, which runs only with attack=True; pass attack=True to score "
                             "the attack's deviation, or drop them to score the bound.")
        self.attack_steps = check_positive_int(attack_steps, "attack_steps")
        self.attack_restarts = check_positive_int(attack_restarts, "attack_restarts")
        self.seed = seed = check_seed(seed)
        alpha = 2.5 * self.eps / self.attack_steps if attack_alpha is None else attack_alpha
        self.attack_alpha = check_radii(alpha, "attack_alpha")
        if aggregate_func is not None and not callable(aggregate_func):
            raise TypeError(f"aggregate_func must be a function of the scores (np.mean, np.median), got "
                            f"{aggregate_func!r}.")
        _check_bound_options(bound_options, "WorstCaseBound", "the attribution's options go in attribution_options, "
                             "the targets are Quantus's y_batch")
        self.return_aggregate, self.aggregate_func = return_aggregate, aggregate_func or np.mean
        self.bound_options = {"seed": seed, **bound_options}
        self.evaluation_scores: list[float] = []
        self.all_evaluation_scores: list[float] = []
        self.bound_results: list[BoundResult] = []
        self.attack_results: list[AttackResult] = []

    def _attribution_for(self, explain_func: Callable | None, explain_func_kwargs: dict | None) -> tuple[str, dict]:
        """The attribution bounded and its options: the metric's own, else the explanation function's."""
        if self.attribution is not None:
            return self.attribution, self.attribution_options
        kwargs = dict(explain_func_kwargs or {})
        if explain_func is explain:  # the package's explain: the map it computes, options included
            name = _explain_attribution(kwargs.get("attribution"), kwargs.get("method"))
            options = {k: v for k, v in kwargs.items() if k not in _EXPLAIN_KEYWORDS}
            return name, {**options, **self.attribution_options}
        method = kwargs.get("method")
        if method is None:
            raise ValueError("no attribution to bound: pass attribution= ('saliency', 'input_x_gradient' or "
                             "'integrated_gradients') to WorstCaseBound, or call it from quantus.evaluate, whose "
                             "method names it reads.")
        if method == "IntegratedGradients":
            raise ValueError("cannot infer the attribution from 'IntegratedGradients': quantus.explain computes it "
                             "with Captum's 10-step 'riemann_trapezoid' rule, which the package cannot express; "
                             "pass attribution='integrated_gradients' (the package's right-Riemann IG) explicitly, "
                             "or explain with the package's IG: xai_methods={'IntegratedGradients': "
                             "attrbound_lite.interop.explain}.")
        if not isinstance(method, str) or method not in _QUANTUS_METHODS:
            raise ValueError(f"cannot infer the attribution from the method name {method!r}; pass attribution= one "
                             f"of 'saliency', 'input_x_gradient', 'integrated_gradients' (names understood: "
                             f"{sorted(_QUANTUS_METHODS)}).")
        return _QUANTUS_METHODS[method], self.attribution_options

    def __call__(self, model, x_batch, y_batch, a_batch=None, s_batch=None, channel_first: bool | None = None,
                 explain_func: Callable | None = None, explain_func_kwargs: dict | None = None,
                 model_predict_kwargs: dict | None = None, softmax: bool | None = False, device=None,
                 batch_size: int = 64, **kwargs) -> list[float]:
        """Score every sample of ``x_batch`` (Quantus's call signature).

        Args:
            model: A ``torch.nn.Module`` returning logits (B, classes) (or a Quantus model wrapping one).
            x_batch: (B, ...) inputs in [0, 1]: a floating-point numpy array (cast to the model's dtype) or a tensor
                of the model's dtype.
            y_batch: (B,) the classes explained (and, with ``attack=True``, kept by the attack), or None for the
                predicted classes.
            a_batch: None, or the precomputed attributions, one per input (shaped like ``x_batch``, an axis of 1
                where the map was summed over it): checked, then unused (the attribution is recomputed).
            s_batch: Accepted and unused.
            channel_first: False moves the last axis of ``x_batch`` to position 1 (Quantus's channel-last
                layout); True or None takes ``x_batch`` as the model takes it. Only a bool or None.
            explain_func: Read, with ``explain_func_kwargs``, when ``attribution=None``: the package's ``explain``
                names its attribution and options there.
            explain_func_kwargs: Read for ``"method"`` (and, with the package's ``explain``, ``"attribution"`` and
                the attribution's options) when ``attribution=None``.
            model_predict_kwargs: Must be empty (the bound calls ``model(x)``).
            softmax: Must be False or None: the bound is about the logits' attribution.
            device: Where to compute (default: the model's device).
            batch_size: Samples per bound computation, >= 1.
            **kwargs: Must be empty.

        Returns:
            One float per sample (or ``[aggregate]`` with ``return_aggregate``).

        Raises:
            TypeError: On unknown keyword arguments, a model that is not a Module, integer inputs (0-255 images:
                divide by 255) or a tensor of another dtype than the model's.
            ValueError: On ``softmax=True``, ``model_predict_kwargs``, an attribution that cannot be inferred, a
                batch size that is not positive, inputs the model does not take or outside [0, 1], per-sample
                radii, ``y_batch`` or ``a_batch`` that do not match the batch.
        """
        del s_batch
        if kwargs:
            raise TypeError(f"WorstCaseBound got unexpected keyword arguments {sorted(kwargs)}.")
        if softmax is not None and check_flag(softmax, "softmax"):
            raise ValueError("softmax=True is not supported: the bound is about the attribution of the logits.")
        if channel_first is not None:
            channel_first = check_flag(channel_first, "channel_first")
        if model_predict_kwargs:
            raise ValueError("model_predict_kwargs are not supported: the bound calls model(x) alone.")
        batch_size = check_positive_int(batch_size, "batch_size")
        module = _model_of(model)
        attribution, options = self._attribution_for(explain_func, explain_func_kwargs)
        if isinstance(attribution, Attribution):  # an explainer instance: its options, on the model Quantus passes
            attribution = attribution.rebind(module)
        given = tuple(x_batch.shape) if hasattr(x_batch, "shape") else None  # the layout as given, for a_batch
        if channel_first is False:
            x_batch = x_batch.movedim(-1, 1) if isinstance(x_batch, torch.Tensor) else np.moveaxis(
                np.asarray(x_batch), -1, 1)
        x_all = _as_inputs(x_batch, module, "x_batch", device, box=True)
        batch = x_all.shape[0]
        y_all = _to_target(y_batch, batch, x_all.device, "y_batch")
        if a_batch is not None:
            _check_a_batch(a_batch, *(layout for layout in (given, tuple(x_all.shape)) if layout is not None))
        del a_batch
        eps, alpha = (check_radii(v, what, batch=batch) for v, what in ((self.eps, "eps"),
                                                                        (self.attack_alpha, "attack_alpha")))
        self.bound_results, self.attack_results = [], []
        scores = []
        for start in range(0, batch, batch_size):
            part = slice(start, start + batch_size)
            x, y = x_all[part], None if y_all is None else y_all[part]
            eps_part, alpha_part = (v[part].to(x.device) if isinstance(v, torch.Tensor) else v for v in (eps, alpha))
            options_part = _options_for_part(options, part, batch)
            result = attribution_bound(module, x, eps_part, self.norm, attribution=attribution, target=y,
                                       **options_part, **self.bound_options)
            self.bound_results.append(result)
            value = result.euclidean
            if self.attack:
                atk = AttributionPGD(module, get_explainer(attribution, module, **options_part),
                                     eps=eps_part, alpha=alpha_part, steps=self.attack_steps, norm=self.norm,
                                     restarts=self.attack_restarts,
                                     surrogate_beta=self.bound_options.get("surrogate_beta"),
                                     seed=(self.seed + start) % 2**63)  # (seeds are 63-bit)
                outcome = atk(x, result.target)
                self.attack_results.append(outcome)
                value = outcome.deviation.euclidean
            if self.relative:
                value = value / result.attribution_norm
            scores.extend(float(v) for v in value.detach().cpu())
        self.evaluation_scores = [self.aggregate_func(scores)] if self.return_aggregate else scores
        self.all_evaluation_scores.extend(self.evaluation_scores)
        return self.evaluation_scores

    def __repr__(self) -> str:
        eps = f"<{self.eps.numel()} per sample>" if isinstance(self.eps, torch.Tensor) else self.eps
        return (f"WorstCaseBound(eps={eps}, norm={self.norm!r}, attribution={self.attribution!r}, "
                f"relative={self.relative}, attack={self.attack})")


def quantus_sensitivity(model: nn.Module, x, y, eps: float, norm: str = "linf", kind: str = "max",
                        attribution: str = "saliency", *, seed: int = 0, attribution_options: dict | None = None,
                        batch_size: int = 64, device=None, **metric_options) -> SampledScores:
    """Quantus's ``MaxSensitivity``, ``AvgSensitivity`` or ``LocalLipschitzEstimate`` of the package's attribution.

    The metric keeps its defaults (``nr_samples=200``, ``abs=False``; ``normalise=False`` for the sensitivities,
    ``normalise=True`` for the Lipschitz estimate) except the noise radius, matched to eps:

    - ``"max"`` / ``"avg"``: ``max_k`` / ``mean_k ||A(x + d_k) - A(x)||_2 / ||A(x)||_2``, ``d_k`` uniform in
      ``[-r, r]^n`` (``batch_uniform_noise``), ``lower_bound = r = eps`` for ``"linf"`` and ``eps / sqrt(n)`` (the
      largest cube inside the ball) for ``"l2"``. Comparable: ``euclidean / attribution_norm``.
    - ``"lipschitz"``: ``max_k ||A'(x + d_k) - A'(x)||_2 / ||d_k||_2`` with ``A' = A / max|A|`` by default,
      ``d_k ~ N(0, s^2 I)`` (``batch_gaussian_noise``), ``perturb_std = s = eps / sqrt(3)`` for ``"linf"`` (the
      standard deviation of uniform noise on ``[-eps, eps]``) and ``eps / sqrt(n)`` for ``"l2"``
      (``||d||_2 ~ eps``). Comparable, with ``normalise=False`` only: ``sigma_max``.

    The explanations come from ``explain`` (the package's attribution, signed, per channel), not from
    ``quantus.explain``; the noise is not clipped to [0, 1].

    Args:
        model: A ``torch.nn.Module`` returning logits (B, classes).
        x: (B, ...) inputs in [0, 1], in the layout the model takes (channel first): a floating-point numpy array
            (cast to the model's dtype) or a tensor of the model's dtype.
        y: (B,) the classes explained (numpy or torch), or None for the predicted class.
        eps: Radius of the ball, > 0, or a (B,) tensor of radii, one per input (one call per distinct radius: sample
            ``i`` scores as in a call with ``eps[i]`` for every input).
        norm: ``"linf"`` (default) or ``"l2"``.
        kind: ``"max"`` (MaxSensitivity, default), ``"avg"`` (AvgSensitivity) or ``"lipschitz"``
            (LocalLipschitzEstimate).
        attribution: ``"saliency"`` (default), ``"input_x_gradient"`` or ``"integrated_gradients"``.
        seed: Seed of the global numpy generator for the call (restored afterwards).
        attribution_options: Options of the attribution (IG: ``n_steps``, ``baseline``).
        batch_size: Quantus's batch size, >= 1.
        device: Where the explanations are computed (default: the model's device).
        **metric_options: Further constructor arguments of the Quantus metric (``nr_samples``, ``normalise``,
            ``abs``, ...); the radius (``lower_bound``, ``upper_bound``, ``perturb_std``) is set from eps.

    Returns:
        A ``SampledScores`` with ``scores`` of shape (B,).

    Raises:
        TypeError: If ``metric_options`` sets the radius or an argument of the metric's call (``a_batch``, ...), a
            flag of the metric (``normalise``, ``abs``, ...) is not True or False, the model is not a Module, the
            inputs are integers (0-255 images: divide by 255) or a tensor of another dtype than the model's, ``y``
            floating point.
        ValueError: Inputs the model does not take or outside [0, 1], targets out of range or of another length
            than the batch, a radius, batch size or ``nr_samples`` that is not positive.
    """
    quantus = _require("quantus", "quantus_sensitivity")
    norm, eps = check_norm(norm), check_radii(eps)
    if isinstance(eps, torch.Tensor):
        batch = _as_inputs(x, _model_of(model), "x", device, box=True).shape[0]
        check_radii(eps, "eps", batch=batch)
        return _each_radius(lambda r: quantus_sensitivity(
            model, x, y, r, norm, kind, attribution, seed=seed, attribution_options=attribution_options,
            batch_size=batch_size, device=device, **metric_options), eps)
    kind = check_choice(kind, SENSITIVITY_KINDS, "kind")
    module = _model_of(model)
    fixed = sorted({"lower_bound", "upper_bound", "perturb_std"} & set(metric_options))
    if fixed:
        raise TypeError(f"{fixed} are set from eps and norm (matched radius); do not pass them.")
    if attribution_options is not None and not isinstance(attribution_options, dict):
        raise TypeError(f"attribution_options must be a dict (e.g. {{'n_steps': 16}}), got "
                        f"{type(attribution_options).__name__}.")
    metric_class = {"max": quantus.MaxSensitivity, "avg": quantus.AvgSensitivity,
                    "lipschitz": quantus.LocalLipschitzEstimate}[kind]
    call_arguments = sorted(set(metric_options) & (set(inspect.signature(metric_class.__call__).parameters)
                                                   - {"self", "kwargs"}))
    if call_arguments:
        raise TypeError(f"{call_arguments} are arguments of the metric's call, which quantus_sensitivity makes itself: "
                        "x and y are its x_batch and y_batch, and every explanation (a_batch included) is computed "
                        "by the package's explain, so that the map is the one the bound is about; drop them.")
    parameters = inspect.signature(metric_class.__init__).parameters
    for name, value in metric_options.items():
        if name in parameters and isinstance(parameters[name].default, bool):
            check_flag(value, name)  # a "no" would be read as True by Quantus
    custom = sorted({"perturb_func", "perturb_func_kwargs", "similarity_func", "norm_numerator", "norm_denominator"}
                    & set(metric_options))
    if custom:
        raise TypeError(f"{custom} change what the metric measures, so its scores would no longer be comparable with "
                        "the bound (result.comparable) nor described by result.normalisation and result.noise; call "
                        f"quantus.{metric_class.__name__} directly for a metric of your own.")
    if metric_options.get("return_aggregate"):
        raise TypeError("return_aggregate=True is not supported: the scores are per sample (B,); aggregate them "
                        "yourself (np.mean(result.scores)).")
    accepted = set(parameters) - {"self", "kwargs"}
    unknown = sorted(set(metric_options) - accepted)
    if unknown:
        raise TypeError(f"unknown options {unknown} for quantus.{metric_class.__name__}; it takes "
                        f"{sorted(accepted - {'lower_bound', 'upper_bound', 'perturb_std'})}.")
    batch_size = check_positive_int(batch_size, "batch_size")
    if "nr_samples" in metric_options:
        check_positive_int(metric_options["nr_samples"], "nr_samples")
    x_t = _as_inputs(x, module, "x", device, box=True)
    if x_t.dtype in (torch.float16, torch.bfloat16):
        raise TypeError(f"quantus_sensitivity runs in float32 or float64: Quantus perturbs float32 numpy copies of the "
                        f"inputs, which a {x_t.dtype} model does not take; evaluate model.float() on inputs.float().")
    with eval_mode(module), torch.no_grad():
        y_t = resolve_target(_to_target(y, x_t.shape[0], x_t.device, "y"), module(x_t))
    x_np, y_np = x_t.cpu().numpy(), y_t.cpu().numpy()
    n, batch = int(np.prod(x_np.shape[1:])), x_np.shape[0]
    options = {"disable_warnings": True, "display_progressbar": False, **metric_options}
    if kind == "lipschitz":
        std = eps / math.sqrt(3) if norm == "linf" else eps / math.sqrt(n)
        metric = quantus.LocalLipschitzEstimate(perturb_std=std, **options)
        noise = {"perturb_func": "batch_gaussian_noise", "perturb_std": std}
        formula = "max_k ||A'(x + d_k) - A'(x)||_2 / ||d_k||_2"
        comparable = "sigma_max"
    else:
        radius = _box_radius(eps, norm, n)
        cls = quantus.MaxSensitivity if kind == "max" else quantus.AvgSensitivity
        metric = cls(lower_bound=radius, **options)
        noise = {"perturb_func": "batch_uniform_noise (uniform in [-r, r]^n)", "lower_bound": radius}
        formula = f"{'max' if kind == 'max' else 'mean'}_k ||A'(x + d_k) - A'(x)||_2 / ||A'(x)||_2"
    noise["nr_samples"] = metric.nr_samples
    if metric.normalise:
        formula += ", A' = normalise_func(A) (max-normalised by default)"
        comparable = None
    else:
        formula = formula.replace("A'", "A")
        comparable = "sigma_max" if kind == "lipschitz" else "euclidean / attribution_norm"
    if metric.abs:
        formula += ", absolute values of the maps"
    # Quantus calls explain on batches of batch_size; a per-sample IG baseline must follow them, so those are sent
    # one batch at a time (the noise stream continues across the calls as within one)
    options_all = {"attribution": attribution, **(attribution_options or {})}
    per_sample = _options_for_part(options_all, slice(0, 1), batch) is not options_all
    parts = [slice(s, s + batch_size) for s in range(0, batch, batch_size)] if per_sample else [slice(None)]
    with _SeededRNG(seed):
        scores = np.concatenate([
            np.asarray(metric(model=module, x_batch=x_np[p], y_batch=y_np[p], a_batch=None, channel_first=True,
                              explain_func=explain, explain_func_kwargs=_options_for_part(options_all, p, batch),
                              device=device, batch_size=batch_size), dtype=np.float64).reshape(-1)
            for p in parts])
    if scores.shape != (batch,):
        raise RuntimeError(f"{type(metric).__name__} returned {scores.size} scores for {batch} samples.")
    return SampledScores(metric=f"quantus.{type(metric).__name__}", scores=scores, normalisation=formula,
                         noise=noise, comparable=comparable, eps=float(eps), norm=norm,
                         attribution=attribution if isinstance(attribution, str) else getattr(attribution, "name",
                                                                                                None),
                         target=y_np.astype(np.int64).reshape(-1))
