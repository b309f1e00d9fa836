"""RAR's per-data-set settings (Chen et al. 2019; REFERENCE sections 6 and 8), in one table.

Keyed by data-set family: ``"cifar10-subset"`` shares CIFAR-10's settings (``DATASET_INFO[name]["family"]``,
the one place that alias is stated). l-infinity radii and step sizes are on the [0, 1] scale.

- ``architecture``: the registered model (``models.MODELS``) and its input normalisation ``mean``, ``std``;
- ``train``: the inner maximisation of adversarial training: ``eps``, ``steps``, step size ``alpha``;
- ``evaluation``: ``eps``; PGD ``pgd_steps`` x ``pgd_alpha``; IFIA top-k attack with ``ifia_k`` pixels,
  ``ifia_steps`` x ``ifia_alpha``, ``restarts``; the top-k intersection over ``eval_k`` pixels.
"""

from __future__ import annotations

from .data import DATASET_INFO, DATASETS
from .models import CIFAR10_MEAN, CIFAR10_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD

__all__ = ["RAR", "rar_protocol", "family"]

RAR = {
    "mnist": dict(
        architecture=dict(model="mnist_cnn", mean=MNIST_MEAN, std=MNIST_STD),
        train=dict(eps=0.3, steps=40, alpha=0.01),
        evaluation=dict(eps=0.3, pgd_steps=40, pgd_alpha=0.01, ifia_k=200, eval_k=100, ifia_steps=100,
                        ifia_alpha=0.01, restarts=3)),
    "fashion-mnist": dict(
        architecture=dict(model="mnist_cnn", mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD),
        train=dict(eps=0.1, steps=20, alpha=0.01),
        evaluation=dict(eps=0.1, pgd_steps=20, pgd_alpha=0.01, ifia_k=100, eval_k=100, ifia_steps=100,
                        ifia_alpha=0.01, restarts=3)),
    "cifar10": dict(
        architecture=dict(model="cifar_cnn", mean=CIFAR10_MEAN, std=CIFAR10_STD),
        train=dict(eps=8 / 255, steps=7, alpha=2 / 255),
        evaluation=dict(eps=8 / 255, pgd_steps=10, pgd_alpha=2 / 255, ifia_k=100, eval_k=100, ifia_steps=50,
                        ifia_alpha=1 / 255, restarts=3)),
}


def family(dataset: str) -> str:
    """The family whose settings ``dataset`` shares (``"cifar10-subset"`` -> ``"cifar10"``).

    Args:
        dataset: one of ``data.DATASETS``.

    Returns:
        A key of ``RAR``.
    """
    if not isinstance(dataset, str) or dataset not in DATASET_INFO:
        raise ValueError(f"unknown data set {dataset!r}; choose one of {DATASETS}.")
    return DATASET_INFO[dataset]["family"]


def rar_protocol(dataset: str, part: str) -> dict:
    """A copy of RAR's settings for ``dataset``.

    Args:
        dataset: one of ``data.DATASETS``.
        part: ``"architecture"``, ``"train"`` or ``"evaluation"``.

    Returns:
        A new dict (callers may change it).

    Raises:
        ValueError: an unknown data set or part.
    """
    settings = RAR[family(dataset)]
    if not isinstance(part, str) or part not in settings:
        raise ValueError(f"unknown part {part!r} of RAR's protocol; choose one of {tuple(settings)}.")
    return dict(settings[part])
