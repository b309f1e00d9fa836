"""Small image classifiers with normalisation inside, and the softplus surrogate of ReLU networks.

Inputs are images in [0, 1] of shape (B, C, H, W); models return logits of shape (B, classes).

A network built from ReLUs and max-pooling is piecewise linear: its input Hessian is zero almost
everywhere, so the saliency Jacobian vanishes and a first-order bound would read 0 although attacks still
move the attribution by crossing linear regions. The remedy (Ghorbani et al. 2019, Dombrowski et al.
2019) is the surrogate ``smooth_relu(model, beta)``: the same weights with every ReLU replaced by
``softplus_beta(z) = log(1 + exp(beta z)) / beta``, which tends to ReLU as beta grows.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from ._checks import check_model, check_positive_int

__all__ = [
    "Normalize", "smooth_relu", "smooth_surrogate", "is_piecewise_linear", "nonsmooth_modules", "MnistCNN",
    "CifarCNN", "QuadraticClassifier",
    "MODELS", "build_model", "model_spec", "model_for_dataset",
    "MNIST_MEAN", "MNIST_STD", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "CIFAR10_MEAN", "CIFAR10_STD",
]

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

# Modules whose output is a piecewise-linear function of their input (zero curvature almost everywhere).
_MAX_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
             nn.AdaptiveMaxPool3d, nn.FractionalMaxPool2d, nn.FractionalMaxPool3d)
_PIECEWISE_LINEAR = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Hardtanh, nn.Hardsigmoid,
                     nn.Hardshrink, nn.Softshrink, nn.Threshold, *_MAX_POOL)
# Not piecewise linear, but with a jump of the gradient (x * relu6(x + 3) / 6 at -3 and 3): no first-order bound
# at x sees it, and no surrogate smooths it.
_KINKED = (nn.Hardswish,)
# Linear in the input (the layers a ReLU network's linear regions are made of): padding, resampling, shuffles,
# dropout (identity in eval mode), pooling by averages, convolutions, normalisation.
_AFFINE = (nn.Linear, nn.Bilinear, nn.Identity, nn.Flatten, nn.Unflatten, nn.modules.dropout._DropoutNd,
           nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
           nn.AdaptiveAvgPool3d, nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm,
           nn.modules.padding._ConstantPadNd, nn.modules.padding._ReflectionPadNd,
           nn.modules.padding._ReplicationPadNd, nn.modules.padding._CircularPadNd, nn.Upsample, nn.PixelShuffle,
           nn.PixelUnshuffle, nn.ChannelShuffle, nn.Sequential, nn.ModuleList, nn.ModuleDict)


class Normalize(nn.Module):
    """Per-channel normalisation, as the first layer of a model that takes [0, 1] images.

    ``y = (x - mean) / std`` per channel; ``mean`` and ``std`` are stored as buffers of shape (1, C, 1, 1).

    Args:
        mean: Per-channel means (length C).
        std: Per-channel standard deviations (length C), positive.
        channels: The number of channels C the model takes, when known (checked against the lengths).

    Raises:
        ValueError: lengths that differ (from each other or from ``channels``), a non-finite value or a std <= 0.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels: int | None = None):
        super().__init__()
        try:
            # checked on the CPU (also when built under torch.device("meta")), then placed on the default device
            mean_t, std_t = (torch.as_tensor(v, dtype=torch.get_default_dtype(), device="cpu").reshape(-1)
                             for v in (mean, std))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"mean and std must be sequences of numbers (one per channel), got {mean!r} and "
                            f"{std!r}.") from None
        if channels is not None:
            check_positive_int(channels, "channels")
        if mean_t.numel() == 0:
            raise ValueError("mean and std are empty; give one value per input channel (e.g. [0.1307], [0.3081]).")
        want = channels or mean_t.numel()
        if mean_t.numel() != want or std_t.numel() != want:
            raise ValueError(f"mean and std need one value per input channel ({want}), got {mean_t.numel()} and "
                             f"{std_t.numel()}.")
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all() and (std_t > 0).all()):
            raise ValueError(f"mean must be finite and std positive and finite, got mean={mean_t.tolist()}, "
                             f"std={std_t.tolist()} (a zero std divides by zero: NaN logits).")
        device = torch.empty(0).device
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1).to(device))
        self.register_buffer("std", std_t.view(1, -1, 1, 1).to(device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a batch of images.

        Args:
            x: Images of shape (B, C, H, W), in [0, 1].

        Returns:
            ``(x - mean) / std``, shape (B, C, H, W).

        Raises:
            ValueError: ``x`` is not (B, C, H, W) with the channels of ``mean``: broadcasting would otherwise normalise
                a 1-channel image with three channels' statistics.
        """
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"Normalize takes images (B, {self.mean.shape[1]}, H, W) (one mean per channel), got "
                             f"shape {tuple(x.shape)}.")
        return (x - self.mean) / self.std


def _check_images(model: nn.Module, args: tuple) -> None:
    """Forward pre-hook of the zoo's CNNs: a batch (B, C, H, W) of the declared ``input_shape`` and the model's dtype.

    Cheap (shapes and dtypes only, no host synchronisation): torch's own errors for these mistakes name convolution
    weights and matrix sizes ("mat1 and mat2 shapes cannot be multiplied"), and a (C, H, W) image without its batch
    dimension would be taken as an unbatched input and return logits of the wrong meaning.
    """
    x, name, want = args[0] if args else None, type(model).__name__, ", ".join(map(str, model.input_shape))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} takes a torch.Tensor of images (B, {want}), got {type(x).__name__}; convert with "
                        "torch.as_tensor(x, dtype=torch.float32).")
    if x.ndim != 4 or tuple(x.shape[1:]) != model.input_shape:
        fix = " (add the batch dimension: x[None])" if tuple(x.shape) == model.input_shape else ""
        raise ValueError(f"{name} takes images (B, {want}), got shape {tuple(x.shape)}{fix}.")
    weight = model[1].weight
    if not x.is_floating_point():  # 0-255 images: scaling, not a cast; never an integer model
        raise TypeError(f"{type(model).__name__} takes floating-point images in [0, 1], got {x.dtype} inputs; for "
                        f"0-255 images pass x.to({weight.dtype}) / 255.")
    if x.dtype != weight.dtype:
        raise TypeError(f"{type(model).__name__} holds {weight.dtype} weights but got {x.dtype} inputs; convert the "
                        f"inputs (x.to({weight.dtype})) or the model (model.to({x.dtype})).")


def _check_beta(beta) -> None:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 < beta < math.inf:
        raise ValueError(f"surrogate beta must be a positive finite number, got {beta!r} (typical values: 1 to 100).")


def _positive_finite(value, what: str, hint: str) -> float:
    """``value`` as a float if it is a positive finite number (Python or numpy, not a bool); else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ValueError(f"{what} must be a positive finite number ({hint}), got {value!r}.")
    return float(value)


def _floats(values) -> list[float]:
    """Per-channel values (a number, a sequence, a numpy array or a tensor) as a list of Python floats (JSON)."""
    return torch.as_tensor(values, dtype=torch.float64, device="cpu").reshape(-1).tolist()


def _check_architecture(width, beta, num_classes) -> None:
    """Refuse the constructor arguments of ``MnistCNN`` / ``CifarCNN`` that would build a broken network.

    A width of 0 or less built 1-channel layers (every width is rounded up to 1), a beta of 0 gave NaN logits.
    """
    _positive_finite(width, "width", "the factor on every layer's width; 0.25: the CPU-sized net, 1: RAR's")
    if round(32 * width) < 1:
        raise ValueError(f"width {width!r} is too small: the first layer (32 x width channels) would round to 0 "
                         "channels; use a width above 1/64 (0.25: the CPU-sized net, 1: RAR's).")
    _positive_finite(beta, "beta", "the softplus sharpness; typical values: 1 to 100")
    check_positive_int(num_classes, "num_classes")


def smooth_relu(model: nn.Module, beta: float) -> nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` module replaced by ``nn.Softplus(beta)``.

    The module tree is copied but parameters and buffers are shared with ``model`` (the same tensors), so
    the surrogate follows the model as it trains and gradients reach the model's parameters; the original
    model is not modified. ReLUs called functionally inside ``forward`` (``F.relu``) cannot be seen and
    are left alone: build models from modules. ``softplus_beta(z) = log(1 + exp(beta z)) / beta`` tends to
    ReLU as beta grows.

    Args:
        model: The model whose ``nn.ReLU`` modules are replaced.
        beta: Softplus sharpness, a positive number (typical values: 1 to 100).

    Returns:
        The surrogate module (sharing parameters and buffers with ``model``).

    Raises:
        ValueError: If ``beta`` is not a positive number, or ReLU-type modules other than ``nn.ReLU``
            (LeakyReLU, ReLU6, ...) would stay piecewise linear in the copy.
    """
    check_model(model)
    _check_beta(beta)
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    surrogate = copy.deepcopy(model, memo=shared)
    for module in surrogate.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                setattr(module, name, nn.Softplus(beta=float(beta)))
    return _no_piecewise_activations_left(surrogate)


def _kept_in_surrogate(module: nn.Module) -> bool:
    """Max-pooling and the saturation ``Hardtanh`` (not its subclass ReLU6): kinks a surrogate may keep.

    Like a max-pool switch, a saturation's kink is crossed by few inputs and shows up as a violation; the
    ReLU-type activations (a kink at every unit's zero) must be smoothed. ``Hardsigmoid`` stays refused: torch has
    no derivative of its backward, so no bound or attribution attack can differentiate it twice.
    """
    return isinstance(module, _MAX_POOL) or type(module) is nn.Hardtanh


def _no_piecewise_activations_left(surrogate: nn.Module) -> nn.Module:
    """Refuse a surrogate in which ReLU-type activations other than ``nn.ReLU`` stay piecewise linear."""
    left = [name or type(surrogate).__name__ for name, m in surrogate.named_modules()
            if isinstance(m, (*_PIECEWISE_LINEAR, *_KINKED)) and not _kept_in_surrogate(m)]
    if left:
        raise ValueError(f"smooth_relu replaces nn.ReLU modules only; modules {left} stay piecewise linear (or, for "
                         "Hardswish, kinked) in the surrogate. Build the model with nn.ReLU, or with smooth "
                         "activations (softplus, SiLU for Hardswish), to use a surrogate.")
    return surrogate


def is_piecewise_linear(model: nn.Module) -> bool:
    """Whether every nonlinearity of ``model`` (seen as a module) is piecewise linear.

    Piecewise linear means the ReLU family or max-pooling: such a model has zero input curvature almost
    everywhere. A model without any piecewise-linear module, or with at least one smooth nonlinearity
    (softplus, tanh, GELU, ...) or an unknown leaf module, counts as curved.

    Args:
        model: The model to inspect (its module tree; functional calls in ``forward`` are not seen).

    Returns:
        True if the model has piecewise-linear modules and no smooth or unknown leaf module.
    """
    check_model(model)
    has_pwl = False
    for module in model.modules():
        if isinstance(module, _PIECEWISE_LINEAR):
            has_pwl = True
        elif isinstance(module, (*_AFFINE, Normalize)) or module is model:
            continue
        elif not any(True for _ in module.children()):
            return False  # a smooth or unknown leaf: assume curvature
    return has_pwl


def nonsmooth_modules(model: nn.Module) -> list[str]:
    """Names of the modules that make the attribution non-smooth.

    These are ReLU-family activations (zero curvature, the gradient jumps between linear regions),
    max-pooling (the gradient jumps where the maximum switches) and Hardswish (its gradient jumps at -3 and 3). A
    first-order bound at x cannot see these jumps.

    Args:
        model: The model to inspect.

    Returns:
        The qualified module names (the class name for the root module), in ``named_modules`` order; empty
        if the model is smooth.
    """
    check_model(model)
    return [name or type(model).__name__ for name, m in model.named_modules()
            if isinstance(m, (*_PIECEWISE_LINEAR, *_KINKED))]


def smooth_surrogate(model: nn.Module, beta: float | None) -> nn.Module:
    """The model whose curvature the bounds and the attribution attacks use.

    ``beta=None``: the model itself, refused if it holds ReLU-type activations or max-pooling (the error
    explains why and names the fix). Otherwise ``smooth_relu(model, beta)`` (the model itself when it has
    no ``nn.ReLU``), refused if ReLU-type modules other than ``nn.ReLU`` (LeakyReLU, ReLU6, ...) would stay
    piecewise linear; max-pooling and the saturation ``Hardtanh`` may remain (their switches are not smoothed and
    show up as violations).

    Args:
        model: The model.
        beta: Softplus sharpness of the surrogate (a positive number), or ``None`` to use the model itself.

    Returns:
        The model itself or its softplus surrogate (sharing parameters with ``model``).

    Raises:
        ValueError: If ``beta`` is ``None`` and the model holds ReLU-type activations or max-pooling, if
            ``beta`` is not a positive number, or if piecewise-linear activations other than ``nn.ReLU`` remain.
    """
    nonsmooth = nonsmooth_modules(model)
    if beta is None:
        if nonsmooth:
            kind = "piecewise linear" if is_piecewise_linear(model) else "not smooth"
            raise ValueError(
                f"this model is {kind}: modules {nonsmooth} are ReLU-type activations, max-pooling or Hardswish. A "
                "ReLU network has zero input curvature almost everywhere, so its attribution Jacobian would give a "
                "bound of 0 (and attacks no direction) although attacks still move the attribution by crossing linear "
                "regions; max-pooling makes the attribution jump where the maximum switches, which no first-order "
                "bound at x can see. Fix: pass surrogate_beta (e.g. 10.0) to use the softplus surrogate "
                "attrbound_lite.models.smooth_relu(model, beta) (max-pool switches remain and show up as "
                "violations), or use a smooth model (softplus activations, average pooling).")
        return model
    _check_beta(beta)
    has_relu = any(isinstance(m, nn.ReLU) for m in model.modules())
    # Nothing to replace: the model is its own surrogate (no second model to evaluate).
    return smooth_relu(model, beta) if has_relu else _no_piecewise_activations_left(model)


def _pool(pool: str) -> nn.Module:
    if pool == "max":
        return nn.MaxPool2d(2)
    if pool == "avg":
        return nn.AvgPool2d(2)
    raise ValueError(f"unknown pool {pool!r}; choose 'max' (the RAR shape) or 'avg' (smooth).")


def _activation(activation: str, beta: float) -> nn.Module:
    if activation == "relu":
        return nn.ReLU()
    if activation == "softplus":
        return nn.Softplus(beta=float(beta))
    raise ValueError(f"unknown activation {activation!r}; choose 'relu' or 'softplus'.")


class _ZooSequential(nn.Sequential):
    """``nn.Sequential`` whose slices are plain ``nn.Sequential``s (the layers, without the architecture's arguments).

    ``nn.Sequential.__getitem__`` rebuilds a slice with the subclass's constructor, whose first argument here is the
    activation's name: ``model[:-1]`` (the penultimate features) would be refused as an unknown activation.
    """

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


class MnistCNN(_ZooSequential):
    """The MNIST CNN of Madry et al. and RAR, with normalisation inside.

    Layers: conv 5x5x32, max-pool, conv 5x5x64, max-pool, fc 1024, fc 10, for (B, 1, 28, 28) inputs in
    [0, 1]; the forward pass returns logits (B, num_classes). ``width`` scales every layer (0.25 gives
    8-16-256, a CPU-sized net of the same shape). ``pool="avg"`` with ``activation="softplus"`` gives a smooth
    model (max-pooling makes the attribution jump where the maximum switches). The constructor arguments are
    kept in ``.config``.

    Args:
        activation: ``"relu"`` (the RAR model) or ``"softplus"`` (smooth). Default ``"relu"``.
        beta: Softplus beta, used when ``activation="softplus"``. Default 10.0.
        width: Factor applied to every layer's width (each rounded, at least 1), above 1/64. Default 1.0.
        num_classes: Number of output logits. Default 10.
        pool: ``"max"`` (the RAR shape) or ``"avg"`` (smooth). Default ``"max"``.
        mean: Per-channel mean of the ``Normalize`` layer. Default MNIST's.
        std: Per-channel standard deviation of the ``Normalize`` layer. Default MNIST's.

    Raises:
        ValueError: If ``activation`` or ``pool`` is unknown, ``width`` or ``beta`` is not a positive finite number,
            or ``num_classes`` is not a positive integer.
    """

    def __init__(self, activation: str = "relu", beta: float = 10.0, width: float = 1.0, num_classes: int = 10,
                 pool: str = "max", mean: Sequence[float] = MNIST_MEAN, std: Sequence[float] = MNIST_STD):
        _check_architecture(width, beta, num_classes)
        c1, c2, fc = (max(1, round(w * width)) for w in (32, 64, 1024))
        super().__init__(
            Normalize(mean, std, channels=1),
            nn.Conv2d(1, c1, 5, padding=2), _activation(activation, beta), _pool(pool),
            nn.Conv2d(c1, c2, 5, padding=2), _activation(activation, beta), _pool(pool),
            nn.Flatten(), nn.Linear(c2 * 7 * 7, fc), _activation(activation, beta), nn.Linear(fc, num_classes),
        )
        self.config = dict(activation=activation, beta=float(beta), width=float(width), num_classes=int(num_classes),
                           pool=pool, mean=_floats(mean), std=_floats(std))
        self.register_forward_pre_hook(_check_images)

    input_shape = (1, 28, 28)  # (C, H, W) of the inputs: checked at the public entry points


class CifarCNN(_ZooSequential):
    """A small CIFAR-10 CNN, with normalisation inside.

    Two conv-conv-pool blocks (32, 64 channels times ``width``, 3x3 convolutions), fc 256, fc 10, for
    (B, 3, 32, 32) inputs in [0, 1]; the forward pass returns logits (B, num_classes). ``pool`` as in
    ``MnistCNN``. The constructor arguments are kept in ``.config``.

    Args:
        activation: ``"relu"`` (the RAR model) or ``"softplus"`` (smooth). Default ``"relu"``.
        beta: Softplus beta, used when ``activation="softplus"``. Default 10.0.
        width: Factor applied to every layer's width (each rounded, at least 1), above 1/64. Default 1.0.
        num_classes: Number of output logits. Default 10.
        pool: ``"max"`` (the RAR shape) or ``"avg"`` (smooth). Default ``"max"``.
        mean: Per-channel mean of the ``Normalize`` layer. Default CIFAR-10's.
        std: Per-channel standard deviation of the ``Normalize`` layer. Default CIFAR-10's.

    Raises:
        ValueError: If ``activation`` or ``pool`` is unknown, ``width`` or ``beta`` is not a positive finite number,
            or ``num_classes`` is not a positive integer.
    """

    def __init__(self, activation: str = "relu", beta: float = 10.0, width: float = 1.0, num_classes: int = 10,
                 pool: str = "max", mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD):
        _check_architecture(width, beta, num_classes)
        c1, c2, fc = (max(1, round(w * width)) for w in (32, 64, 256))
        act = lambda: _activation(activation, beta)  # noqa: E731
        super().__init__(
            Normalize(mean, std, channels=3),
            nn.Conv2d(3, c1, 3, padding=1), act(), nn.Conv2d(c1, c1, 3, padding=1), act(), _pool(pool),
            nn.Conv2d(c1, c2, 3, padding=1), act(), nn.Conv2d(c2, c2, 3, padding=1), act(), _pool(pool),
            nn.Flatten(), nn.Linear(c2 * 8 * 8, fc), act(), nn.Linear(fc, num_classes),
        )
        self.config = dict(activation=activation, beta=float(beta), width=float(width), num_classes=int(num_classes),
                           pool=pool, mean=_floats(mean), std=_floats(std))
        self.register_forward_pre_hook(_check_images)

    input_shape = (3, 32, 32)  # (C, H, W) of the inputs: checked at the public entry points


class QuadraticClassifier(nn.Module):
    """A quadratic classifier whose saliency Jacobian is known in closed form (an oracle for the bounds).

    ``f_c(x) = x^T Q_c x / 2 + b_c^T x`` on flattened inputs: the saliency Jacobian of class c is exactly
    ``(Q_c + Q_c^T) / 2`` (``Q_c`` when symmetric).

    Args:
        Q: Quadratic terms, shape (classes, n, n) (copied into a parameter).
        b: Linear terms, shape (classes, n) (copied into a parameter).

    Raises:
        TypeError: If ``Q`` or ``b`` is not a floating-point tensor.
        ValueError: If the shapes of ``Q`` and ``b`` do not match, or either holds NaN or inf.
    """

    def __init__(self, Q: torch.Tensor, b: torch.Tensor):
        super().__init__()
        for name, value in (("Q", Q), ("b", b)):
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                                f"{getattr(value, 'dtype', type(value).__name__)}; convert with "
                                f"torch.as_tensor({name}, dtype=torch.float32).")
        if Q.dtype != b.dtype:
            raise TypeError(f"Q and b must have the same dtype, got {Q.dtype} and {b.dtype}.")
        if Q.ndim != 3 or Q.shape[1] != Q.shape[2] or b.shape != Q.shape[:2]:
            raise ValueError(f"Q must be (classes, n, n) and b (classes, n); got {tuple(Q.shape)} and "
                             f"{tuple(b.shape)}.")
        if not bool(torch.isfinite(Q).all() & torch.isfinite(b).all()):
            raise ValueError("Q and b must be finite (NaN or inf found): the oracle's Jacobian would be NaN.")
        self.Q = nn.Parameter(Q.clone())
        self.b = nn.Parameter(b.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``f_c(x) = x^T Q_c x / 2 + b_c^T x`` for every class.

        Args:
            x: Inputs of shape (B, ...) with n values per sample.

        Returns:
            Logits of shape (B, classes); (0, classes) for an empty batch.

        Raises:
            TypeError: ``x`` is not a tensor of the oracle's dtype.
            ValueError: ``x`` has no batch dimension or not n values per sample.
        """
        n = self.Q.shape[1]
        if not isinstance(x, torch.Tensor) or x.dtype != self.Q.dtype:
            raise TypeError(f"QuadraticClassifier holds {self.Q.dtype} terms and takes a tensor of that dtype, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}; convert with x.to({self.Q.dtype}).")
        if x.ndim < 2 or math.prod(x.shape[1:]) != n:  # (not x[0]: an empty batch has no sample 0)
            raise ValueError(f"QuadraticClassifier takes inputs (B, ...) of {n} values per sample, got shape "
                             f"{tuple(x.shape)}.")
        z = x.flatten(1)
        return 0.5 * torch.einsum("bi,cij,bj->bc", z, self.Q, z) + z @ self.b.T


# The registry: a name and a config rebuild a model (checkpoints store both).
MODELS: dict[str, type[nn.Module]] = {"mnist_cnn": MnistCNN, "cifar_cnn": CifarCNN}

def build_model(name: str, **config) -> nn.Module:
    """Build a registered model from its name and config.

    Args:
        name: A key of ``MODELS`` (``"mnist_cnn"``, ``"cifar_cnn"``).
        **config: Constructor arguments (the dict a model keeps in ``.config``).

    Returns:
        The model, with fresh weights.

    Raises:
        ValueError: If ``name`` is not registered, ``config`` does not fit the constructor, or the constructor refuses
            a value (e.g. a ``width`` or ``beta`` that is not a positive finite number).
    """
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {sorted(MODELS)}.")
    try:
        return MODELS[name](**config)
    except TypeError as err:
        raise ValueError(f"bad config for model {name!r}: {err}. Accepted keys are the arguments of "
                         f"{MODELS[name].__name__}.") from None


def model_spec(model: nn.Module) -> dict:
    """The registry name and config that rebuild a model's architecture.

    Args:
        model: A model whose class is registered in ``MODELS`` (exact type), with a ``.config`` dict.

    Returns:
        ``{"name": ..., "config": {...}}`` such that ``build_model(name, **config)`` rebuilds ``model``'s
        architecture.

    Raises:
        ValueError: If the model's class is not registered (register it in ``MODELS``), or its modules are not those
            its ``.config`` builds (a layer replaced in place, a ``smooth_relu`` surrogate): the spec would rebuild
            another network.
    """
    for name, cls in MODELS.items():
        if type(model) is cls:
            with torch.random.fork_rng(devices=[]):
                rebuilt = cls(**model.config)
            if _layout(rebuilt) != _layout(model):
                raise ValueError(f"the modules of this {name} are not those its .config {model.config} builds (a "
                                 "layer replaced in place, or a smooth_relu surrogate, which shares the ReLU model's "
                                 "config); save the original model, or build the one you want from its arguments.")
            return {"name": name, "config": dict(model.config)}
    raise ValueError(f"{type(model).__name__} is not a registered model ({sorted(MODELS)}); add its class to "
                     "attrbound_lite.models.MODELS (with a .config dict of its constructor arguments) to save it.")


def _layout(model: nn.Module) -> list:
    """Each module's name, type and activation settings, and each tensor's name and shape: what a spec rebuilds."""
    modules = [(name, type(m).__name__, getattr(m, "beta", None), getattr(m, "threshold", None))
               for name, m in model.named_modules()]
    return [modules, [(k, tuple(v.shape)) for k, v in model.state_dict().items()]]


def model_for_dataset(dataset: str, **config) -> nn.Module:
    """The project's model for a data set, with the data set's normalisation inside.

    Args:
        dataset: ``"mnist"``, ``"fashion-mnist"`` (``MnistCNN``), ``"cifar10"`` or ``"cifar10-subset"``
            (``CifarCNN``), spelt as ``load_dataset`` reads them (any case, ``_`` for ``-``); the architecture per data
            set is in ``attrbound_lite.protocols.RAR``.
        **config: constructor arguments of the architecture (``width``, ``activation``, ``beta``, ``pool``).

    Returns:
        The model (fresh weights).

    Raises:
        ValueError: If the data set has no model, or the architecture refuses ``config`` (as ``build_model``).
    """
    from .data import DATASETS as RAR_DATASETS
    from .protocols import rar_protocol  # the per-data-set table (a layer above the models)

    try:
        spelt = dataset.lower().replace("_", "-") if isinstance(dataset, str) else dataset  # as load_dataset reads it
        arch = rar_protocol(spelt, "architecture")
    except ValueError:
        raise ValueError(f"no model for data set {dataset!r}; choose one of {sorted(RAR_DATASETS)}.") from None
    return build_model(arch["model"], **{"mean": arch["mean"], "std": arch["std"], **config})
