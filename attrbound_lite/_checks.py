"""The input contract of the public API: clear errors instead of silent wrong numbers or raw library errors.

Every public entry point (bounds, region bound, attacks, attributions, metrics adapters, zoo, CLI) checks its
arguments here, once, at the edge:

- ``check_model``: a ``torch.nn.Module`` (a plain callable is refused before anything calls ``.eval()`` on it);
- ``check_inputs``: a floating-point tensor (uint8 images and numpy arrays refused with the fix), batch first, not
  empty, finite, and in [0, 1] where the method assumes the box (``box=True``);
- ``check_model_inputs``: the above plus the model: the inputs' dtype and device are the model's, and their shape is
  one the model takes (its ``input_shape`` where it declares one, else one sample run under ``torch.no_grad``,
  a failure re-raised as one error naming the given shape);
- ``check_eps`` / ``check_radii``: a positive finite radius (Python or numpy scalar, 0-d tensor) or a (B,) tensor of
  them, one per input;
- ``check_positive_int``: batch sizes, sample counts, steps.

Every error is a ``ValueError`` or ``TypeError`` raised here, naming the argument, what was given, what is allowed and
the fix.
"""

from __future__ import annotations

import math
import numbers
import weakref

import numpy as np
import torch
from torch import nn

NORMS = ("l2", "linf")

# Inside an attack's step loop the inputs were checked once at entry: the per-call value checks (finite
# inputs, targets in range) would only cost a host synchronisation per step on a GPU. ``trusted_inputs``
# switches them off for the duration of a ``with`` block.
_TRUSTED = False


class trusted_inputs:
    """Context manager: skip the value checks (NaN/inf, target range) of already checked tensors.

    Shape and dtype checks stay; only those that read tensor values (a host synchronisation on a GPU) are
    skipped. Used by the attack loops, which check their inputs once before the first step.
    """

    def __enter__(self):
        global _TRUSTED
        self.saved, _TRUSTED = _TRUSTED, True
        return self

    def __exit__(self, *exc):
        global _TRUSTED
        _TRUSTED = self.saved
        return False


def check_model(model, what: str = "model", *, second_order: bool = False) -> nn.Module:
    """Return ``model`` if it is a ``torch.nn.Module``; raise a TypeError naming the fix otherwise.

    Args:
        model: the classifier.
        what: its name in the messages.
        second_order: the caller differentiates a gradient (bounds, attribution attacks and losses): a
            ``torch.compile``'d module, whose graph has no double backward, is refused. First-order uses (PGD,
            attributions, evaluation) take it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what} must be a torch.nn.Module (logits (B, classes) for inputs (B, ...)), got "
                        f"{type(model).__name__}; wrap a function in a Module whose forward calls it.")
    if second_order and hasattr(model, "_orig_mod") and type(model).__name__ == "OptimizedModule":
        raise TypeError(f"{what} is a torch.compile'd module, whose graph cannot be differentiated twice (bounds, "
                        f"attribution attacks and their training need a gradient of a gradient); pass the original "
                        f"module, {what}._orig_mod (the attacks compile their own step with compile=True).")
    return model


def check_inputs(inputs: torch.Tensor, name: str = "inputs", box: bool = False) -> torch.Tensor:
    """Refuse non-tensors, integer dtypes, inputs without a batch dimension and NaN/inf values.

    With ``box=True`` the values must also lie in [0, 1] (the torchattacks convention: normalisation
    belongs inside the model).

    Args:
        inputs: the batch (B, ...).
        name: the argument's name in the error message.
        box: also require values in [0, 1].

    Returns:
        ``inputs``, unchanged.

    Raises:
        TypeError: not a tensor (numpy arrays included), or not floating point (uint8 images included).
        ValueError: no batch dimension, an empty batch, NaN/inf values, or values outside [0, 1] with ``box``.
    """
    if not isinstance(inputs, torch.Tensor):
        hint = f" (convert with torch.as_tensor({name}))" if hasattr(inputs, "__array__") else ""
        raise TypeError(f"{name} must be a torch.Tensor, got {type(inputs).__name__}{hint}.")
    if inputs.dtype == torch.uint8:
        raise TypeError(f"{name} is a uint8 tensor (0-255 pixel values); the package works on floating-point images "
                        f"in [0, 1]: pass {name}.float() / 255.")
    if not inputs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32 or float64), got {inputs.dtype}; "
                        f"convert with {name}.float() and scale images to [0, 1].")
    if inputs.ndim < 2:
        raise ValueError(f"{name} must be batch-first with at least 2 dimensions (batch, features...), "
                         f"got shape {tuple(inputs.shape)}; add a batch dimension with {name}[None].")
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(inputs.shape)}).")
    if inputs.is_meta:
        raise ValueError(f"{name} are on the 'meta' device (shapes without values); nothing can be computed on them: "
                         f"pass real tensors ({name}.to('cpu') after filling them).")
    if not _TRUSTED and not torch.isfinite(inputs).all():
        raise ValueError(f"{name} contains NaN or inf values; clean the data before computing attributions.")
    if box and not _TRUSTED and (inputs.min() < 0 or inputs.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] (got values in [{inputs.min().item():.3g}, "
                         f"{inputs.max().item():.3g}]); put normalisation inside the model "
                         "(attrbound_lite.models.Normalize) and pass raw [0, 1] images.")
    return inputs


# model -> (its parameter shapes, the input shapes it was seen to take with them)
_MODEL_SHAPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _parameter_shapes(model: nn.Module) -> tuple:
    """The names and shapes of the model's parameters: what changes when a layer is replaced in place."""
    return tuple((name, tuple(p.shape)) for name, p in model.named_parameters())


def model_dtype_device(model: nn.Module) -> tuple[torch.dtype | None, torch.device | None]:
    """The dtype and device of the model's first floating-point parameter or buffer (``(None, None)`` if none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return None, None


def check_model_inputs(model: nn.Module, inputs: torch.Tensor, name: str = "inputs", box: bool = True, *,
                       second_order: bool = False) -> torch.Tensor:
    """The whole input contract of a method that runs ``model`` on ``inputs``.

    ``check_model`` and ``check_inputs`` (with ``box``), then the inputs against the model: the same floating-point
    dtype and device as the model's parameters, and a shape the model takes: its ``input_shape`` (C, H, W) where it
    declares one (``MnistCNN``, ``CifarCNN``: a 1-channel image would otherwise be broadcast against a 3-channel
    normalisation), else one sample run under ``torch.no_grad``, whose failure is re-raised as one error naming the
    given shape. The logits must be (1, classes). A shape seen to work is remembered per model.

    Args:
        model: the classifier.
        inputs: the batch (B, ...).
        name: the argument's name in the error messages.
        box: require values in [0, 1].
        second_order: see ``check_model``.

    Returns:
        ``inputs``, unchanged.

    Raises:
        TypeError: a model that is not a Module, inputs that are not a floating-point tensor, or of another dtype
            than the model's.
        ValueError: a shape the model does not take, another device than the model's, values ``check_inputs``
            refuses, inference tensors (made under ``torch.inference_mode``), or a call inside
            ``torch.inference_mode()``.
    """
    check_model(model, second_order=second_order)
    check_inputs(inputs, name, box)
    if torch.is_inference_mode_enabled():
        raise ValueError("called inside torch.inference_mode(): attributions, bounds and attacks differentiate the "
                           "model, which inference mode forbids; call outside it (torch.no_grad is fine).")
    if inputs.is_inference():
        raise ValueError(f"{name} were created under torch.inference_mode() and cannot enter autograd; pass "
                         f"{name}.clone() made outside inference mode, or create them under torch.no_grad().")
    dtype, device = model_dtype_device(model)
    if dtype is not None and inputs.dtype != dtype:
        raise TypeError(f"{name} are {inputs.dtype} but the model's parameters are {dtype}; convert one to the other "
                        f"({name}.to({dtype}) or model.to({inputs.dtype})).")
    if device is not None and inputs.device != device:
        raise ValueError(f"{name} are on {inputs.device} but the model is on {device}; move them with "
                         f"{name}.to({str(device)!r}).")
    shape = tuple(inputs.shape[1:])
    expected = getattr(model, "input_shape", None)
    if expected is not None and shape != tuple(expected):
        expected = tuple(expected)
        missing = (f" (a single image without its batch dimension? add it with {name}[None])"
                   if tuple(inputs.shape) == expected else
                   f" (images without their channel dimension? add it with {name}[:, None])"
                   if shape == expected[1:] else
                   f" (channels last? move them first with {name}.permute(0, 3, 1, 2), or for a numpy array "
                   f"{name}.transpose(0, 3, 1, 2); Quantus-shaped calls take channel_first=False)"
                   if len(expected) == 3 and shape == (*expected[1:], expected[0]) else "")
        raise ValueError(f"the model takes {name} of shape (B, {', '.join(map(str, expected))}), got "
                         f"{tuple(inputs.shape)}{missing}.")
    parameters = _parameter_shapes(model)
    known = _MODEL_SHAPES.get(model)
    if known is None or known[0] != parameters:  # a layer replaced in place: what it took before says nothing
        known = _MODEL_SHAPES[model] = (parameters, set())
    seen = known[1]
    if expected is None and shape not in seen and not _TRUSTED:  # (no extra forward pass inside a step loop)
        try:
            with torch.no_grad(), eval_mode(model), full_precision():
                logits = model(inputs[:1])
        except (RuntimeError, ValueError, IndexError, TypeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"the model cannot take {name} of shape {tuple(inputs.shape)}: on one sample it raised "
                             f"{type(err).__name__}: {first[:200]}; check the channels, image size and batch dimension "
                             "against what the model was built for (the cause is chained below).") from err
        check_logits(logits, 1)
        seen.add(shape)
    return inputs


def input_gradient(output: torch.Tensor, x: torch.Tensor, what: str, fix: str, **options) -> torch.Tensor:
    """``torch.autograd.grad(output, x)``, where an output that does not reach ``x`` is a ValueError.

    Args:
        output: the scalar to differentiate.
        x: the input (requires grad).
        what: what ``output`` is, for the message ("the model's logits").
        fix: the sentence that names the likely cause and the fix.
        **options: ``create_graph`` and the like, passed on.
    """
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"{what} must be a tensor, got {type(output).__name__}.")
    grad = torch.autograd.grad(output, x, allow_unused=True, **options)[0] if output.requires_grad else None
    if grad is None:
        raise ValueError(f"{what} do not depend on the inputs through autograd; {fix}")
    return grad


_MODEL_CLASSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (parameter shapes, logits)


def model_classes(model: nn.Module, inputs: torch.Tensor) -> int:
    """The number of classes (logits) of ``model``, from one sample of ``inputs``.

    Remembered per model with the shapes of its parameters, so that a head replaced in place (5 classes instead of
    3) is measured again.
    """
    shapes = _parameter_shapes(model)
    known = _MODEL_CLASSES.get(model)
    if known is None or known[0] != shapes:
        with torch.no_grad(), eval_mode(model), full_precision():
            known = _MODEL_CLASSES[model] = (shapes, check_logits(model(inputs[:1]), 1).shape[1])
    return known[1]


def check_positive_int(value, what: str) -> int:
    """Return ``value`` as an int if it is a positive integer (Python or numpy, not a bool); raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


def check_tol(tol, what: str = "tol") -> float:
    """Return ``tol`` as a float if it is a positive finite number (Python or numpy, not a bool); raise ValueError."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < tol < math.inf:
        raise ValueError(f"{what} must be a positive finite number, got {tol!r}.")
    return float(tol)


MAX_SOLVER_TOL = 0.01  # the eigensolvers' relative tolerance: above it sigma_max can fall well short while "converged"


def check_solver_tol(tol, what: str = "tol") -> float:
    """``tol`` of Lanczos or the power iteration (relative change of the estimate): positive and at most 0.01.

    The estimate approaches sigma_max from below; a loose tolerance stops it early and flags it converged (at 0.5 a
    bound 7 to 17 % too small, at 2 four times too small), so the bounds refuse what would make them wrong.
    """
    tol = check_tol(tol, what)
    if tol > MAX_SOLVER_TOL:
        raise ValueError(f"{what} = {tol:g} is the eigensolver's relative stopping tolerance and must be at most "
                         f"{MAX_SOLVER_TOL:g}: the estimate of sigma_max grows towards it from below, so a loose "
                         f"tolerance stops early and reports a bound that is too small (default 1e-4).")
    return tol


def check_seed(seed, what: str = "seed") -> int:
    """Return ``seed`` as an int if it is an integer >= 0 (Python or numpy, not a bool); raise a TypeError otherwise.

    torch's generators take integers in [0, 2**64); a float, string or negative seed would otherwise fail inside
    ``torch.manual_seed`` with a message about longs.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2 ** 63:
        raise TypeError(f"{what} must be an integer >= 0 (Python or numpy), got {seed!r} "
                        f"({type(seed).__name__}).")
    return int(seed)


def check_labels(labels, classes: int | None = None, batch: int | None = None, name: str = "labels") -> torch.Tensor:
    """Return class labels as given if they are a 1-d integer tensor with values in [0, classes).

    Args:
        labels: the labels (B,); an integer tensor (bool and floating-point tensors are refused, so that a
            truncated 2.7 or a mask never becomes a class).
        classes: the number of classes, when known.
        batch: the number of inputs the labels must match, when given.
        name: the argument's name in the error message.

    Returns:
        ``labels``, unchanged.

    Raises:
        TypeError: not a tensor, or not an integer tensor.
        ValueError: not 1-d, another length than ``batch``, or a class outside [0, classes).
    """
    if not isinstance(labels, torch.Tensor):
        hint = f" (convert with torch.as_tensor({name}))" if hasattr(labels, "__array__") else ""
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(labels).__name__}{hint}.")
    if labels.is_meta:
        raise ValueError(f"{name} is a tensor on the 'meta' device (no values); pass the class indices on the inputs' "
                         "device.")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{name} must be an integer tensor of class indices (torch.long), got {labels.dtype}; "
                        f"convert integral values with {name}.long().")
    if labels.ndim != 1 or (batch is not None and labels.shape[0] != batch):
        want = f"({batch},)" if batch is not None else "(B,)"
        raise ValueError(f"{name} must have shape {want} (one class per input), got {tuple(labels.shape)}.")
    if classes is not None and not _TRUSTED and labels.numel() and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{name} must lie in [0, {classes - 1}] (the model has {classes} classes), got values in "
                         f"[{labels.min().item()}, {labels.max().item()}].")
    return labels


def check_names(values, choices: tuple[str, ...], what: str) -> tuple[str, ...]:
    """Return a non-empty list or tuple of names from ``choices`` as a tuple; a single string is refused.

    A string where a list is expected would otherwise be iterated letter by letter ("l2" -> "l", "2").
    """
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list of names, got the string {values!r}; write [{values!r}].")
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(f"{what} must be a list of names from {choices}, got {type(values).__name__}.") from None
    if not values:
        raise ValueError(f"{what} is empty; choose at least one of {choices}.")
    for value in values:
        check_choice(value, choices, what[:-1] if what.endswith("s") else what)
    return values


def check_eps(eps: float) -> float:
    """Return ``eps`` as a float; refuse anything but a positive finite number.

    Python and numpy scalars and 0-d tensors are accepted.
    """
    if isinstance(eps, torch.Tensor) and eps.ndim == 0:
        eps = eps.item()
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive finite number, got {eps!r}.")
    return float(eps)


def check_radii(eps, what: str = "eps", batch: int | None = None) -> float | torch.Tensor:
    """A radius (float) or per-sample radii (a 1-d floating-point tensor), every value positive and finite.

    Args:
        eps: a positive finite number (Python or numpy), a 0-d tensor (returned as a float) or a (B,) tensor of radii.
        what: the argument's name in the error message.
        batch: when given, the number of inputs a (B,) tensor must match.

    Returns:
        A float, or the (B,) tensor (detached) as given.

    Raises:
        ValueError: a non-positive, NaN or infinite radius, or a tensor that is not 1-d or not floating point.
    """
    if isinstance(eps, torch.Tensor) and eps.is_meta:
        raise ValueError(f"{what} is a tensor on the 'meta' device (shape {tuple(eps.shape)}, no values); pass a "
                         "number, or a tensor with values on the inputs' device.")
    if not isinstance(eps, torch.Tensor) or eps.ndim == 0:
        try:
            return check_eps(eps)
        except ValueError:
            raise ValueError(f"{what} must be a positive finite number or a (B,) tensor of them, got {eps!r}.") \
                from None
    if eps.ndim != 1 or eps.numel() == 0 or not eps.is_floating_point():
        raise ValueError(f"per-sample {what} must be a non-empty 1-d floating-point tensor (one radius per input), "
                         f"got {eps.dtype} of shape {tuple(eps.shape)}.")
    if batch is not None and eps.numel() != batch:
        raise ValueError(f"per-sample {what} has {eps.numel()} entries but the batch has {batch} inputs; give one "
                         "radius per input.")
    if not (torch.isfinite(eps) & (eps > 0)).all():
        raise ValueError(f"every per-sample {what} must be positive and finite, got values in "
                         f"[{eps.min().item():.3g}, {eps.max().item():.3g}] (NaN or inf included).")
    return eps.detach()


def check_norm(norm: str) -> str:
    """Return ``norm`` if it is one of ``NORMS`` (``"l2"``, ``"linf"``); raise ValueError otherwise."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS} ('linf' is the l-infinity ball).")
    return norm


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """Return ``value`` if it is in ``choices``; otherwise raise a ValueError naming ``what`` and the choices."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {choices}.")
    return value


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` detached, on the CPU, as a numpy array; float16 and bfloat16 (which numpy lacks) as float32."""
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor).numpy()


def resolve_target(target, logits: torch.Tensor) -> torch.Tensor:
    """Per-sample class indices (B,) int64 on the logits' device.

    ``None`` -> predicted class, an int (Python or numpy) -> that class for every sample, a tensor of shape (B,)
    (or a 0-d tensor) -> as given. Raises on a wrong type, shape or dtype, or a class outside [0, classes).
    """
    batch, classes = logits.shape[0], logits.shape[1]
    if target is None:
        return logits.detach().argmax(1)
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        target = torch.full((batch,), int(target), dtype=torch.long, device=logits.device)
    elif isinstance(target, torch.Tensor):
        if target.is_meta:
            raise ValueError("target is a tensor on the 'meta' device (no values); pass the classes on the inputs' "
                             "device.")
        if target.ndim == 0:
            target = target.expand(batch)
        if target.shape != (batch,) or target.is_floating_point() or target.is_complex() \
                or target.dtype == torch.bool:
            raise ValueError(f"target must be None, an int or an integer tensor of shape ({batch},), "
                             f"got {target.dtype} of shape {tuple(target.shape)}.")
        target = target.to(device=logits.device, dtype=torch.long)
    else:
        raise TypeError(f"target must be None, an int (Python or numpy) or a tensor, got {type(target).__name__}.")
    if not _TRUSTED and ((target < 0).any() or (target >= classes).any()):
        raise ValueError(f"target classes must lie in [0, {classes - 1}], got {target.tolist()}.")
    return target


def check_logits(logits: torch.Tensor, batch: int) -> torch.Tensor:
    """Return ``logits`` if it is a tensor of shape (batch, classes); raise TypeError / ValueError otherwise."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model must return a logits tensor (batch, classes), got a {type(logits).__name__}; "
                        "wrap a model that returns a tuple or dict in a Module whose forward returns the logits.")
    if logits.ndim != 2 or logits.shape[0] != batch:
        raise ValueError(f"the model must return logits of shape (batch, classes) = ({batch}, C), "
                         f"got {tuple(logits.shape)}.")
    return logits


class eval_mode:
    """Context manager: put a model in eval mode and restore every submodule's train/eval flag afterwards.

    In eval mode batch-norm statistics are frozen and dropout is off; ``with`` yields the model. As
    torchattacks does.
    """

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode
        return False


class full_precision:
    """Context manager: no TF32 in CUDA convolutions and matrix products; the previous flags are restored.

    PyTorch lets cuDNN use TF32 for convolutions by default (a 10-bit mantissa). Bounds and attack
    measurements need float32: with TF32 on an H100, sigma_max moved by 0.7 % between runs and tiny
    deviations drowned in rounding. No effect on CPU.
    """

    def __enter__(self):
        self.saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        return self

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved
        return False


def json_leaves(value, where: str, owner: str):
    """Every value of a JSON-bound ``value`` that is neither a dict, a list nor a tuple, with its place.

    A mapping key that is not a string is refused: JSON writes the key ``1`` as ``"1"``, so ``{1: x}`` would come
    back (and hash) as ``{"1": x}``.

    Args:
        value: a dict, list, tuple or leaf.
        where: its place, for messages (``"metadata"``, ``"config"``).
        owner: what holds it, for messages (``"checkpoint"``, ``"a result's"``).

    Yields:
        ``(place, leaf)`` pairs, e.g. ``("config['a'][0]", 0.1)``.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{owner} {where} has the key {key!r} ({type(key).__name__}); JSON keys are strings "
                                f"and it would come back as {str(key)!r}: use string keys.")
            yield from json_leaves(item, f"{where}[{key!r}]", owner)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from json_leaves(item, f"{where}[{i}]", owner)
    else:
        yield where, value


def check_flag(value, what: str) -> bool:
    """Return ``value`` as a bool if it is True or False (Python or numpy); raise a TypeError otherwise.

    A string or number would otherwise be read by its truth value: ``"no"`` and ``"False"`` are true.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be True or False, got {value!r} ({type(value).__name__}); a string or number "
                        f"is not read as a flag: pass {what}=True or {what}=False.")
    return bool(value)
