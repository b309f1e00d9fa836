"""The bounds for Captum and Quantus users, and those libraries' sampled robustness metrics beside them.

The public face of three modules: ``interop_captum`` (``captum_bound``, ``captum_sensitivity_max``),
``interop_quantus`` (``WorstCaseBound``, ``explain``, ``quantus_sensitivity``) and ``interop_common`` (the inputs'
checks they share, ``SampledScores``); import the names from here.

Three entry points (the ``compare`` extra: ``pip install "attrbound-lite[compare]"``; captum and quantus are
imported inside the functions that need them, never by ``import attrbound_lite``):

- ``captum_bound(explainer, x, target, eps)``: the ``BoundResult`` of a Captum ``Saliency``,
  ``InputXGradient`` or ``IntegratedGradients`` object, for the map that ``explainer.attribute(x, target=...,
  **same keywords)`` computes. What the package cannot express is refused with the supported choice named.
- ``WorstCaseBound(eps, norm)``: a metric with Quantus's calling convention, ``metric(model=..., x_batch=...,
  y_batch=...)`` (numpy in, one score per sample out), usable inside ``quantus.evaluate``. Its score is the
  first-order worst case ``r`` of ``attrbound_lite.bounds`` (by default relative, ``r / ||A(x)||_2``, the
  normalisation of Quantus's ``MaxSensitivity``), or, with ``attack=True``, the deviation that
  ``AttributionPGD`` reaches.
- ``captum_sensitivity_max`` and ``quantus_sensitivity``: Captum's ``sensitivity_max`` and Quantus's
  ``MaxSensitivity``, ``AvgSensitivity`` and ``LocalLipschitzEstimate`` with their defaults, the noise radius
  matched to ``eps``, on the package's own attribution (so that the map is the one the bound is about). They
  return a ``SampledScores``, whose ``bound_in_same_units(result)`` gives the bound in the metric's units.

What the sampled metrics compute (``A`` the attribution, ``d`` the noise, ``K`` samples per input):

- Captum ``sensitivity_max``:  ``max_k ||A(x + d_k) - A(x)||_2 / ||A(x)||_2`` (a zero norm is replaced by 1),
  ``d_k`` uniform in ``[-r, r]^n`` (``perturb_radius = r``, default 0.02; ``n_perturb_samples = 10``);
- Quantus ``MaxSensitivity`` / ``AvgSensitivity``: the max / mean over ``nr_samples = 200`` of the same ratio,
  ``d_k`` uniform in ``[-r, r]^n`` (``lower_bound = r``, default 0.2; ``upper_bound=None``), no attribution
  normalisation (``normalise=False``, ``abs=False``), NaN-ignoring aggregation;
- Quantus ``LocalLipschitzEstimate``: ``max_k ||A(x + d_k) - A(x)||_2 / (||d_k||_2 + 1e-10)``, ``d_k`` Gaussian
  with standard deviation ``perturb_std`` (default 0.1), ``nr_samples = 200``, and by default each map divided
  by its own largest absolute value first (``normalise=True``, ``normalise_by_max``).

"Matched to eps" here means: for ``norm="linf"`` the uniform noise fills the ball itself (``r = eps``); for
``norm="l2"`` it fills the largest cube inside the ball (``r = eps / sqrt(n)``), so every sample lies in the ball.
It is not clipped to [0, 1] and need not keep the predicted class, so a sampled value is at most the worst case over
the ball without the box and the label constraint, not over the set the attacks search. The Gaussian of
``LocalLipschitzEstimate`` cannot be confined: its standard deviation is ``eps / sqrt(3)`` for ``"linf"`` (that of
the uniform noise on ``[-eps, eps]``) and ``eps / sqrt(n)`` for ``"l2"`` (then ``||d||_2`` concentrates at eps).

Comparable bounds (``SampledScores.comparable``), first order (the bound can be exceeded by a curved model, never
by one whose attribution is affine in the input, such as the saliency of ``models.QuadraticClassifier``):
the sensitivities sit below ``euclidean / attribution_norm`` of the same eps and norm, and the Lipschitz estimate
without attribution normalisation below ``sigma_max``; with Quantus's ``normalise=True`` nothing is comparable.
Taking absolute values (``abs=True``, Captum's ``Saliency`` default) keeps the bounds valid, since
``| |a| - |b| | <= |a - b|`` elementwise and ``|| |a| ||_2 = ||a||_2``.
"""

from __future__ import annotations

from .interop_captum import captum_bound, captum_sensitivity_max
from .interop_common import INSTALL_HINT, SENSITIVITY_KINDS, SampledScores
from .interop_quantus import WorstCaseBound, explain, quantus_sensitivity

__all__ = ["captum_bound", "WorstCaseBound", "explain", "SampledScores", "captum_sensitivity_max",
           "quantus_sensitivity", "SENSITIVITY_KINDS", "INSTALL_HINT"]
