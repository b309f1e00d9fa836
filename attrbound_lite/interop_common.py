"""What ``interop``'s Captum and Quantus adapters share: the inputs' checks and the sampled metrics' result.

``_as_inputs`` and ``_to_target`` read a batch as Captum or Quantus users pass it (tensors or numpy arrays, targets
as an int, a list or a tensor) and check it once against the model; ``_require`` imports an optional library of the
``compare`` extra or names the extra. ``SampledScores`` is what ``captum_sensitivity_max`` and
``quantus_sensitivity`` return: the sampled scores per input and the bound in their units
(``bound_in_same_units``). See ``interop`` for what each metric computes and which bounds compare with it.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._checks import (
    check_model,
    check_model_inputs,
    check_seed,
    model_dtype_device,
)
from .bounds import BoundResult, attribution_bound
from .runtime import resolve_device

__all__ = ["SampledScores", "SENSITIVITY_KINDS", "INSTALL_HINT"]


INSTALL_HINT = 'pip install "attrbound-lite[compare]"'
SENSITIVITY_KINDS = ("max", "avg", "lipschitz")


def _require(module: str, what: str):
    """Import ``module`` or raise an ImportError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what} needs {module.split('.')[0]}, which is not installed; install the compare "
                          f"extra: {INSTALL_HINT}.") from err


def _model_of(model) -> nn.Module:
    """The torch module itself: ``model`` or the module inside a Quantus ``ModelInterface``."""
    if not isinstance(model, nn.Module) and callable(getattr(model, "get_model", None)):
        model = model.get_model()
    return check_model(model)


def _check_bound_options(bound_options: dict, where: str, own: str) -> dict:
    """Refuse keyword options that ``attribution_bound`` does not take or that the adapter sets itself.

    Args:
        bound_options: the extra keywords given to the adapter.
        where: the adapter's name, for the message.
        own: what the adapter sets itself (named in the message).

    Returns:
        ``bound_options``.
    """
    settable = set(inspect.signature(attribution_bound).parameters) - {
        "model", "inputs", "eps", "norm", "attribution", "target", "attribution_options"}
    wrong = sorted(set(bound_options) - settable)
    if wrong:
        raise TypeError(f"{where} got keyword arguments it cannot pass on: {wrong}; {own}. The bound's own options "
                        f"are {sorted(settable)}.")
    return bound_options


def _as_inputs(data, model: nn.Module, name: str, device=None, box: bool = True) -> torch.Tensor:
    """The inputs of a Quantus-shaped call (numpy or torch) as a tensor the model takes, checked.

    A floating-point numpy array (Quantus's currency, float32 whatever the model) becomes a tensor of the model's
    dtype on ``device`` (default: the model's); a tensor is taken as it is (moved to ``device`` when given), so its
    dtype must be the model's. Then ``check_model_inputs``.

    Args:
        data: (B, ...) the inputs, a numpy array or a tensor.
        model: the classifier.
        name: the argument's name in the error messages.
        device: where to compute (default: the model's device).
        box: require values in [0, 1].

    Returns:
        The (B, ...) tensor, detached.

    Raises:
        TypeError: an integer array (0-255 pixel values: the fix is ``/ 255``) or one that is not numeric, and what
            ``check_model_inputs`` refuses.
        ValueError: what ``check_model_inputs`` refuses.
    """
    device = None if device is None else resolve_device(device)
    if isinstance(data, torch.Tensor):
        x = data.detach() if device is None else data.detach().to(device)
    else:
        array = np.asarray(data)
        if array.dtype.kind in "iu":
            raise TypeError(f"{name} is a numpy {array.dtype} array (0-255 pixel values?); the package works on "
                            f"floating-point images in [0, 1]: pass {name}.astype(np.float32) / 255.")
        if array.dtype.kind != "f":
            raise TypeError(f"{name} must be a floating-point numpy array or torch tensor, got "
                            f"{type(data).__name__} of dtype {array.dtype}.")
        dtype, model_device = model_dtype_device(model)
        x = torch.as_tensor(array).to(device=device if device is not None else (model_device or "cpu"),
                                      dtype=dtype or torch.get_default_dtype())
    return check_model_inputs(model, x, name, box=box)


def _to_target(targets, batch: int, device, name: str = "targets") -> torch.Tensor | None:
    """Class indices (B,) (or None) from an int, a sequence, a numpy array or a tensor.

    One integer (Python or numpy, or a 0-d array or tensor) is the class of every sample; anything else must be 1-d
    with one integer per sample. Floating-point values are refused (as ``check_labels`` refuses them), so that a
    3.0 or a 2.7 never silently becomes a class, and so are arrays of another length or shape than (batch,).

    Args:
        targets: the classes, or None.
        batch: the number of inputs.
        device: where the returned tensor lives.
        name: the argument's name in the error messages.

    Returns:
        (batch,) int64 tensor on ``device``, or None.
    """
    if targets is None:
        return None
    if not isinstance(targets, torch.Tensor):
        array = np.asarray(targets)
        if array.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be integer class indices (an int, a sequence, a numpy array or a tensor), "
                            f"got {type(targets).__name__} of dtype {array.dtype}.")
        targets = torch.as_tensor(array)
    t = targets
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must be integer class indices, got a {t.dtype} tensor.")
    if t.is_floating_point():
        raise TypeError(f"{name} must be integer class indices, got floating-point values ({t.dtype}, shape "
                        f"{tuple(t.shape)}); convert integral values with int(), .astype(int) (numpy) or .long() "
                        "(torch).")
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
        raise ValueError(f"{name} must give one class per sample: one int for all, or shape ({batch},), got shape "
                         f"{tuple(t.shape)}.")
    t = t.to(device=device, dtype=torch.long)
    return t.expand(batch) if t.ndim == 0 else t


@dataclass
class SampledScores:
    """One sampled robustness score per sample, with what it measures.

    Attributes:
        metric: The library function or class, e.g. ``"quantus.MaxSensitivity"``.
        scores: (B,) float64 numpy array, one score per sample (NaN where the library gave none).
        normalisation: The formula of the score, in words.
        noise: The noise settings used (the radius parameters, the number of samples).
        comparable: The ``BoundResult`` quantity in the same units, ``"euclidean / attribution_norm"`` or
            ``"sigma_max"``, or None when the library's normalisation leaves none comparable.
        eps: The radius the noise was matched to (a float, or a (B,) array of per-sample radii); None if unknown.
        norm: The ball's norm, ``"l2"`` or ``"linf"``; None if unknown.
        attribution: The attribution's name; None if unknown.
        target: (B,) int64 numpy array, the classes whose attribution was scored (the predicted ones where the call
            gave None); None if unknown.
    """

    metric: str
    scores: np.ndarray
    normalisation: str
    noise: dict
    comparable: str | None
    eps: float | np.ndarray | None = None
    norm: str | None = None
    attribution: str | None = None
    target: np.ndarray | None = None

    def bound_in_same_units(self, result: BoundResult) -> np.ndarray:
        """The bound of ``result`` in this metric's units, one value per sample.

        First order: a sampled score above it shows curvature, except where the attribution is affine in the
        input (then it cannot be above it).

        Args:
            result: The ``BoundResult`` of the same inputs, targets, attribution, eps and norm.

        Returns:
            (B,) float64 numpy array: ``euclidean / attribution_norm`` or ``sigma_max``.

        Raises:
            ValueError: If nothing is comparable (``comparable`` is None), the batch sizes differ, or the bound is of
                another attribution, of other target classes or (for a score relative to the map's norm) another
                radius or norm.
        """
        if not isinstance(result, BoundResult):
            raise TypeError(f"result must be the BoundResult of attribution_bound or captum_bound on the same inputs, "
                            f"got {type(result).__name__} (WorstCaseBound's own scores are already bounds).")
        if self.comparable is None:
            raise ValueError(f"{self.metric} ({self.normalisation}) has no comparable bound: its attribution "
                             "normalisation (normalise=True) changes the map; call it with normalise=False.")
        if self.attribution is not None and result.attribution != self.attribution:
            raise ValueError(f"the bound is of {result.attribution}, the scores of {self.attribution}: bound the same "
                             "attribution.")
        if self.comparable == "sigma_max":  # sigma_max does not depend on the radius
            value = result.sigma_max
        else:
            value = result.euclidean / result.attribution_norm
        value = value.detach().cpu().double().numpy()
        if value.shape != self.scores.shape:
            raise ValueError(f"the bound has {value.shape[0]} samples, the scores {self.scores.shape[0]}.")
        if self.target is not None:
            theirs = result.target.detach().cpu().numpy().reshape(-1)
            if theirs.shape != self.target.shape or (theirs != self.target).any():
                raise ValueError(f"the bound explains the classes {_classes_text(theirs)}, the scores "
                                 f"{_classes_text(self.target)}: bound the same classes, "
                                 f"target=torch.as_tensor(scores.target) (target=None bounds the predicted class).")
        if self.comparable != "sigma_max":
            if self.norm is not None and result.norm != self.norm:
                raise ValueError(f"the bound is for the {result.norm} ball, the scores sampled the {self.norm} ball: "
                                 f"bound with norm={self.norm!r}.")
            mine = np.broadcast_to(np.asarray(self.eps, dtype=np.float64), value.shape) if self.eps is not None \
                else None
            radius = result.eps.detach().cpu().double() if isinstance(result.eps, torch.Tensor) else result.eps
            theirs = np.broadcast_to(np.asarray(radius, dtype=np.float64), value.shape)
            if mine is not None and not np.allclose(mine, theirs, rtol=1e-9, atol=0):
                raise ValueError(f"the bound is for radius {_radius_text(theirs)}, the scores sampled radius "
                                 f"{_radius_text(mine)}: bound with the scores' eps.")
        return value


def _classes_text(classes: np.ndarray) -> str:
    """Classes as a short list."""
    return "[" + ", ".join(str(int(c)) for c in classes[:6]) + (", ..." if classes.size > 6 else "") + "]"


def _radius_text(radii: np.ndarray) -> str:
    """One radius as a number, several as a short list."""
    unique = np.unique(radii)
    return f"{unique[0]:g}" if unique.size == 1 else "[" + ", ".join(f"{r:g}" for r in radii[:4]) + \
        (", ..." if radii.size > 4 else "") + "]"


class _SeededRNG:
    """Seed the global torch CPU and numpy generators (which Captum's and Quantus's noise use) and restore them."""

    def __init__(self, seed: int):
        self.seed = check_seed(seed)

    def __enter__(self):
        self.fork = torch.random.fork_rng(devices=[])
        self.fork.__enter__()
        torch.manual_seed(self.seed)
        # Quantus draws its noise from numpy's legacy global generator: that is the one to seed.
        self.numpy_state = np.random.get_state()  # noqa: NPY002
        np.random.seed(self.seed % 2 ** 32)  # noqa: NPY002
        return self

    def __exit__(self, *exc):
        np.random.set_state(self.numpy_state)  # noqa: NPY002
        self.fork.__exit__(*exc)
        return False


def _box_radius(eps: float, norm: str, n: int) -> float:
    """Half-side of the uniform noise cube matched to the ball: eps (l-inf) or eps / sqrt(n) (inside the l2 ball)."""
    return eps if norm == "linf" else eps / math.sqrt(n)


def _each_radius(run, eps: torch.Tensor) -> SampledScores:
    """The scores of per-sample radii: ``run(r)`` on the whole batch for every distinct radius ``r`` of ``eps``.

    Sample ``i`` is taken from the run at ``eps[i]``, so it equals sample ``i`` of a call with that radius for every
    sample (the same noise, which the libraries draw for the whole batch). The noise settings that depend on the
    radius become per-sample lists.
    """
    radii = eps.detach().cpu().double().numpy()
    runs = {r: run(r) for r in np.unique(radii).tolist()}
    first = next(iter(runs.values()))
    scores = np.array([runs[r].scores[i] for i, r in enumerate(radii.tolist())], dtype=np.float64)
    noise = {key: value if all(s.noise.get(key) == value for s in runs.values()) else
             [runs[r].noise[key] for r in radii.tolist()] for key, value in first.noise.items()}
    return dataclasses.replace(first, scores=scores, noise=noise, eps=radii)
