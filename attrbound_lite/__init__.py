"""attrbound_lite: worst-case attribution-deviation bounds, attacks and metrics for PyTorch classifiers.

The executable companion to Wang & Kong, "A Practical Upper Bound for the Worst-Case Attribution
Deviations" (CVPR 2023) and Ivankay et al., "FAR: A General Framework for Attributional Robustness"
(BMVC 2021). Quick start::

    from attrbound_lite.models import MnistCNN
    from attrbound_lite.bounds import attribution_bound
    model = MnistCNN(activation="softplus", beta=10.0, pool="avg").eval()
    x = torch.rand(8, 1, 28, 28)
    result = attribution_bound(model, x, eps=0.1, norm="l2", attribution="saliency")
    result.euclidean, result.cosine
"""

__version__ = "0.1.0"

from . import (  # noqa: E402  # noqa: E402
    attacks,
    attributions,
    bounds,
    checkpoints,
    data,
    evaluation,
    experiments,
    metrics,
    models,
    threat_models,
    training,
)
from .attacks import IFIA, PGD, AttackResult, AttributionPGD  # noqa: E402
from .attributions import InputXGradient, IntegratedGradients, Saliency  # noqa: E402
from .bounds import BoundResult, attribution_bound, spectral_norm  # noqa: E402
from .models import is_piecewise_linear, smooth_relu  # noqa: E402
from .threat_models import L2Ball, LinfBall  # noqa: E402

__all__ = [
    "__version__", "attacks", "attributions", "bounds", "metrics", "models", "threat_models",
    "checkpoints", "data", "evaluation", "experiments", "training",
    "Saliency", "InputXGradient", "IntegratedGradients", "attribution_bound", "spectral_norm", "BoundResult",
    "PGD", "AttributionPGD", "IFIA", "AttackResult", "LinfBall", "L2Ball", "smooth_relu", "is_piecewise_linear",
]
