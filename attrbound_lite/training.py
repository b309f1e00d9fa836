"""Training: natural, PGD adversarial training, IG-NORM and FAR's AAT / AdvAAT on one shared loop.

Every method is a loss on a batch ``(x, y)`` of images in [0, 1]; the inner maximisations are projected
ascent in the threat model's ball (``steps`` steps of size ``alpha`` from a random start; sign steps for
l-infinity, normalised-gradient steps for l2), run with the model in eval mode:

- ``natural``: ``CE(f(x), y)``.
- ``pgd_at`` (Madry et al.): ``CE(f(x'), y)``, ``x'`` = PGD on the cross-entropy.
- ``ig_norm`` (Chen et al.): ``CE(f(x), y) + lam * ||IG of the loss from x to x'||_1``. The inner
  maximiser is PGD on the cross-entropy (a reproduction choice: by completeness the IG norm is at least
  ``CE(x') - CE(x)``, so raising the loss raises a lower bound of the maximised norm).
  ``IG_i = (x' - x)_i (1/m) sum_{k=1..m} d CE(x + k/m (x' - x)) / dx_i``.
- ``aat`` (FAR, reconstructed): ``CE(f(x), y) + lam * d(A(x), A(x*))``, ``x*`` maximising ``d(A(x), A(.))``.
- ``advaat`` (FAR, reconstructed): ``CE(f(x'), y) + lam * d(A(x), A(x'))``, ``x'`` maximising
  ``CE(f(.), y) + lam * d(A(x), A(.))``.

``d`` is ``"pearson"`` (``1 - Pearson correlation`` of the flattened maps, the default), ``"cosine"``
(``1 - cos``) or ``"l2"`` (``||A - A'||_2``); ``A`` is the attribution of the true class (``saliency``
by default) on the model, or on its softplus surrogate (``surrogate_beta``) for ReLU models, whose
attribution has no input gradient. The surrogate shares the model's weights, so the attribution term
trains them. AAT and AdvAAT are reconstructed from FAR's abstract and the methods it builds on (the project
could not consult the paper's body): they may differ from the authors' in detail.

Randomness is derived from ``(seed, epoch, batch)``: a run is deterministic on CPU and a resumed run
(``checkpoint_dir``) reproduces the uninterrupted one.

Large batches (a GPU): ``scaled_for_batch(cfg, 2048)`` is ``cfg`` at batch 2048 with the learning rate scaled by
the linear rule of Goyal et al. (2017), ``lr * batch / base_batch``, and a linear learning-rate warm-up
(``lr_warmup_epochs``, from the unscaled rate) before the constant scaled rate; see its docstring. The inner
maximisations are batched (every sample of a batch advances together; IG-NORM's path points are one batch of
``ig_steps * B``) and read no tensor value on the host (no per-step synchronisation with the device). A training
step reads the device once for its losses (the non-finite check), plus, for AAT and AdvAAT, the value checks of the
batch's attribution on entry (finite images, classes in range); on a non-CPU device the training data is moved
there once per call.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import time
from collections.abc import Collection
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, PrivateAttr, model_validator
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._checks import (
    NORMS,
    check_choice,
    check_flag,
    check_inputs,
    check_labels,
    check_model,
    check_model_inputs,
    check_positive_int,
    model_classes,
)
from ._io import atomic_path
from .attributions import ATTRIBUTIONS
from .config import (
    Config,
    ConfigError,
    NonNegativeFloat,
    NonNegativeInt,
    OptionalPositiveFloat,
    PositiveFloat,
    PositiveInt,
    choice,
)
from .data import DATASETS, as_tensors
from .protocols import rar_protocol
from .runtime import derive_seed, resolve_device
from .training_methods import _METHODS, DISSIMILARITIES, dissimilarity, loss_integrated_gradients

__all__ = ["train", "TrainConfig", "METHODS", "TRAINING_PROTOCOLS", "DISSIMILARITIES", "dissimilarity",
           "loss_integrated_gradients", "scaled_for_batch", "learning_rate_at", "LR_SCALING_RULES", "OPTION_USERS",
           "ignored_options"]

METHODS = ("natural", "pgd_at", "ig_norm", "aat", "advaat")
# RAR's inner maximisation for training per data set (defined in attrbound_lite.protocols).
TRAINING_PROTOCOLS = {name: rar_protocol(name, "train") for name in DATASETS}
FIRST_BATCHES = 20  # the optimiser steps whose losses a run records (attrs["batch_losses"]), to replay it
LR_SCALING_RULES = ("linear", "sqrt")
_ROBUST = ("pgd_at", "ig_norm", "aat", "advaat")
OPTION_USERS = {"eps": _ROBUST, "norm": _ROBUST, "steps": _ROBUST, "alpha": _ROBUST, "warmup_epochs": _ROBUST,
                "lam": ("ig_norm", "aat", "advaat"), "ig_steps": ("ig_norm", "aat", "advaat"),
                "dissimilarity": ("aat", "advaat"), "attribution": ("aat", "advaat"),
                "surrogate_beta": ("aat", "advaat")}
"""The ``TrainConfig`` fields that only some methods read (``Natural``, ``PGDAT``, ``IGNorm``, ``AAT``, ``AdvAAT``
below), with those methods. An option given for a method that ignores it is refused rather than dropped
(``ignored_options``: ``train`` and ``attrbound train``)."""


def ignored_options(method: str, given, attribution: str = "saliency", *, cli: bool = False) -> list[str]:
    """The options among ``given`` that ``method`` does not read, one sentence each (the fix included).

    The one rule of ``train`` and of ``attrbound train``: ``OPTION_USERS``, and ``ig_steps``, which AAT and AdvAAT read
    only for ``attribution="integrated_gradients"``.

    Args:
        method: the training method.
        given: the names (``TrainConfig`` fields) of the options that were given.
        attribution: the attribution of AAT / AdvAAT.
        cli: spell the options as command-line flags (``--ig-steps``) rather than as keyword arguments.

    Returns:
        One problem per ignored option (empty when the method reads every one).

    Raises:
        ValueError: an unknown ``method`` or ``attribution``, or a name in ``given`` that is not a ``TrainConfig``
            field.
        TypeError: ``given`` is a string or not a collection of names.
    """
    check_choice(method, METHODS, "training method")
    check_choice(attribution, tuple(ATTRIBUTIONS), "attribution")
    if isinstance(given, str) or not isinstance(given, Collection):
        what = f"the string {given!r}; write {{{given!r}}}" if isinstance(given, str) else type(given).__name__
        raise TypeError(f"given must be a set of option names (TrainConfig fields), got {what}.")
    if not all(isinstance(name, str) for name in given):
        raise TypeError(f"given must hold option names (strings), got {list(given)[:8]!r}.")
    unknown = sorted(map(repr, set(given) - set(TrainConfig.model_fields)))
    if unknown:
        raise ValueError(f"given holds {', '.join(unknown)}, not a TrainConfig field; the fields are "
                         f"{', '.join(TrainConfig.model_fields)}.")
    problems = []
    for name, users in OPTION_USERS.items():
        if name not in given:
            continue
        option = "--" + name.replace("_", "-") if cli else name
        if method not in users:
            choices = ", ".join(users[:-1]) + (" or " if len(users) > 1 else "") + users[-1]
            problems.append(f"{option} is ignored by {method} training; drop it or choose "
                            f"{'--method' if cli else 'method'} {choices}.")
        elif name == "ig_steps" and method in ("aat", "advaat") and attribution != "integrated_gradients":
            if cli:
                problems.append(f"--ig-steps is ignored by {method} training with --attribution {attribution}; "
                                "drop it or add --attribution integrated_gradients.")
            else:
                problems.append(f"ig_steps is ignored by {method} training with attribution={attribution!r}; drop it "
                                "or pass attribution='integrated_gradients'.")
    return problems


class TrainConfig(Config):
    """Everything that determines a training run (recorded in checkpoints as ``to_dict()``).

    Args:
        method: ``"natural"``, ``"pgd_at"``, ``"ig_norm"``, ``"aat"`` or ``"advaat"`` (see the module docstring).
        epochs: passes over the training data.
        batch_size: samples per optimiser step.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        weight_decay: the optimiser's weight decay (>= 0).
        eps: radius of the inner maximisation; required by every method but ``natural``.
        norm: ``"linf"`` or ``"l2"``, the inner maximisation's ball.
        steps: steps of the inner maximisation.
        alpha: its step size; default ``alpha = 2.5 * eps / steps`` (Madry et al.).
        lam: weight of the regulariser (>= 0).
        dissimilarity: ``d`` of AAT / AdvAAT: ``"pearson"``, ``"cosine"`` or ``"l2"``.
        attribution: the attribution ``A`` of AAT / AdvAAT (a name of ``attributions.ATTRIBUTIONS``).
        ig_steps: IG points: IG-NORM's path integral, and IG attributions.
        surrogate_beta: softplus surrogate for ReLU models (their attribution has no input gradient).
        warmup_epochs: radius warm-up: the inner maximisation's radius (and step size) grows linearly, batch by
            batch, from ``eps / batches`` to ``eps`` over the first ``warmup_epochs`` epochs (0: the full radius
            from the start; training at MNIST's 0.3 from the start can stall at chance accuracy).
        augment: ``"none"`` or ``"crop_flip"`` (standard CIFAR augmentation: a random 32x32 crop of the image
            zero-padded by 4 pixels and a random horizontal flip, per sample, drawn from the batch's generator).
        seed: base of the shuffling and noise seeds, ``derive_seed(seed, epoch[, batch])``.
        lr_warmup_epochs: learning-rate warm-up (``learning_rate_at``): the rate grows linearly, optimiser step by step,
            from ``lr_warmup_from`` to ``lr`` over the first ``lr_warmup_epochs`` epochs, then stays at ``lr`` (0, the
            default: ``lr`` from the first step). ``scaled_for_batch`` sets it for large batches.
        lr_warmup_from: where that warm-up starts (Goyal et al.: the learning rate before scaling); ``None``: from 0,
            i.e. ``lr * step / warm-up steps``. Only with ``lr_warmup_epochs > 0``; at most ``lr``.

    The two learning-rate warm-up fields are left out of ``to_dict()`` at their defaults, so that the configs
    (and the hashes of checkpoints and sweeps) written before they existed stay as they were.

    Raises:
        ConfigError: (a ``ValueError``) naming the field, e.g. ``epochs: must be a positive integer, got 0``.
    """

    # Set by ``zoo.Recipe.train_config``: the recipe checked its options when it was made (the committed recipes keep
    # RAR's options, read by some methods only), so ``train`` does not refuse them again.
    _from_recipe: bool = PrivateAttr(default=False)
    method: choice(*METHODS) = "natural"
    epochs: PositiveInt = 1
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 1e-3
    optimizer: choice("adam", "sgd") = "adam"
    weight_decay: NonNegativeFloat = 0.0
    eps: OptionalPositiveFloat = None
    norm: choice(*NORMS) = "linf"
    steps: PositiveInt = 10
    alpha: OptionalPositiveFloat = None
    lam: NonNegativeFloat = 1.0
    dissimilarity: choice(*DISSIMILARITIES) = "pearson"
    attribution: choice(*ATTRIBUTIONS) = "saliency"
    ig_steps: PositiveInt = 10
    surrogate_beta: OptionalPositiveFloat = None
    warmup_epochs: NonNegativeFloat = 0.0
    augment: choice("none", "crop_flip") = "none"
    seed: NonNegativeInt = 0
    # Added later: left out of model_dump at their defaults (old configs, checkpoint and sweep hashes unchanged).
    lr_warmup_epochs: NonNegativeFloat = Field(0.0, exclude_if=lambda v: v == 0)
    lr_warmup_from: OptionalPositiveFloat = Field(None, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _eps_and_alpha(self) -> TrainConfig:
        for name in ("warmup_epochs", "lr_warmup_epochs"):  # a warm-up longer than the run never reaches its end
            if getattr(self, name) > self.epochs:
                raise ConfigError(f"a warm-up of {getattr(self, name):g} epochs is longer than the run ({self.epochs} "
                                  f"epoch{'s' if self.epochs != 1 else ''}): the run would never train at the full "
                                  f"{'radius' if name == 'warmup_epochs' else 'learning rate'}; shorten the warm-up "
                                  "or train more epochs", loc=(name,))
        if self.lr_warmup_from is not None:
            if self.lr_warmup_epochs == 0:
                raise ConfigError("only with a learning-rate warm-up (lr_warmup_epochs > 0)", loc=("lr_warmup_from",))
            if self.lr_warmup_from > self.lr:
                raise ConfigError(f"must be at most lr ({self.lr:g}), got {self.lr_warmup_from:g}",
                                  loc=("lr_warmup_from",))
        if self.method != "natural":
            if self.eps is None:
                raise ConfigError(f"method {self.method!r} needs eps, the radius of its inner maximisation (e.g. 0.3 "
                                  "for MNIST, 0.1 for Fashion-MNIST, 8/255 for CIFAR-10 in l-infinity)")
            # the derived default, again after eps or steps change; alpha stays out of model_fields_set (not given)
            if self.alpha is None or "alpha" not in self.model_fields_set:
                object.__setattr__(self, "alpha", 2.5 * self.eps / self.steps)
                self.__pydantic_fields_set__.discard("alpha")
        return self


def scaled_for_batch(cfg: TrainConfig, batch_size: int, base_batch: int | None = None, *, rule: str = "linear",
                     warmup_epochs: float | None = None) -> TrainConfig:
    """``cfg`` at another batch size, with the learning rate scaled and warmed up: training at a large batch.

    With ``k = batch_size / base_batch`` the schedule is:

    - learning rate ``lr' = lr * k`` (``rule="linear"``, the linear scaling rule of Goyal et al. 2017, "Accurate,
      Large Minibatch SGD") or ``lr * sqrt(k)`` (``rule="sqrt"``, the square-root rule often preferred for Adam,
      the package's default optimiser: Malladi et al. 2022);
    - for ``k > 1``, a linear warm-up (Goyal et al.'s gradual warm-up): optimiser step ``s`` (counted from 0 over the
      whole run) uses ``lr + (lr' - lr) * min(1, (s + 1) / W)``, ``W = warmup_epochs * (steps per epoch)``, i.e.
      from (just above) the unscaled rate to ``lr'`` in ``W`` steps, then ``lr'`` constant to the end (the package
      has no decay). ``warmup_epochs`` defaults to one epoch but at most half the run, ``min(1, epochs / 2)``
      (Goyal et al. warm up for 5 of 90 epochs; the runs here last 1 to 8 epochs);
    - for ``k <= 1``: ``lr'`` from the first step, no warm-up.

    Everything else (epochs, the inner maximisation, the radius warm-up ``warmup_epochs`` of ``cfg``, which counts
    epochs, not steps) is kept. The result's ``lr``, ``lr_warmup_epochs`` and ``lr_warmup_from`` state the schedule.

    Args:
        cfg: the configuration tuned at ``base_batch``.
        batch_size: the new batch size.
        base_batch: the batch size ``cfg.lr`` was tuned for (default ``cfg.batch_size``).
        rule: ``"linear"`` or ``"sqrt"``.
        warmup_epochs: the learning-rate warm-up in epochs, a number >= 0 (``None``: ``min(1, cfg.epochs / 2)``;
            0: none; a bool is refused).

    Returns:
        A new config of ``cfg``'s type (``cfg`` at ``batch_size == base_batch`` up to the warm-up fields).

    Raises:
        TypeError: ``cfg`` is not a ``TrainConfig``, or ``warmup_epochs`` not a number (a bool or a string).
        ValueError: a batch size that is not a positive integer, an unknown ``rule``, or a negative or infinite
            ``warmup_epochs``.

    Example:
        ``scaled_for_batch(TrainConfig(lr=1e-3, epochs=4), 1024)``: batch 1024, lr 8e-3, warm-up over the first epoch
        from 1e-3.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig (TrainConfig(**settings) for a dict), got {type(cfg).__name__}.")
    batch_size = check_positive_int(batch_size, "batch_size")
    base = cfg.batch_size if base_batch is None else check_positive_int(base_batch, "base_batch (or None)")
    if rule not in LR_SCALING_RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {LR_SCALING_RULES}.")
    k = batch_size / base
    lr = cfg.lr * (k if rule == "linear" else math.sqrt(k))
    if warmup_epochs is not None and (isinstance(warmup_epochs, bool)
                                      or not isinstance(warmup_epochs, numbers.Real)):
        raise TypeError(f"warmup_epochs must be a number of epochs >= 0 or None, got {warmup_epochs!r} "
                        f"({type(warmup_epochs).__name__}); pass e.g. warmup_epochs=1.0 (0: no warm-up).")
    warmup = min(1.0, cfg.epochs / 2) if warmup_epochs is None else float(warmup_epochs)
    if not math.isfinite(warmup) or warmup < 0:
        raise ValueError(f"warmup_epochs must be a non-negative number or None, got {warmup_epochs!r}.")
    fields = {name: getattr(cfg, name) for name in cfg.model_fields_set}  # given fields; derived ones re-derived
    fields.pop("lr_warmup_epochs", None)
    fields.pop("lr_warmup_from", None)
    fields.update(batch_size=batch_size, lr=lr)
    if k > 1 and warmup > 0:
        fields.update(lr_warmup_epochs=warmup, lr_warmup_from=cfg.lr)
    scaled = type(cfg)(**fields)
    scaled._from_recipe = cfg._from_recipe  # a recipe's options stay accepted at any batch size
    return scaled


def learning_rate_at(cfg: TrainConfig, step: int, batches: int) -> float:
    """The learning rate of optimiser step ``step`` (from 0, over the whole run) with ``batches`` steps per epoch.

    ``lr`` without a warm-up; with one, ``a + (lr - a) * min(1, (step + 1) / (lr_warmup_epochs * batches))``,
    ``a = lr_warmup_from`` (or 0), and exactly ``lr`` once the warm-up is over.

    Raises:
        TypeError: ``cfg`` is not a ``TrainConfig``.
        ValueError: ``step`` is not an integer >= 0 or ``batches`` not a positive integer (Python or numpy, not bool).
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig (TrainConfig(**settings) for a dict), got {type(cfg).__name__}.")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step (the optimiser step, counted from 0 over the whole run) must be an integer >= 0, got "
                         f"{step!r}.")
    check_positive_int(batches, "batches (optimiser steps per epoch)")
    if cfg.lr_warmup_epochs == 0:
        return cfg.lr
    t = (step + 1) / (cfg.lr_warmup_epochs * batches)
    if t >= 1:
        return cfg.lr
    start = cfg.lr_warmup_from or 0.0
    return start + (cfg.lr - start) * t


def augment_crop_flip(x: Tensor, gen: torch.Generator, pad: int = 4) -> Tensor:
    """Standard CIFAR augmentation of a batch (B, C, H, W): a random crop of the zero-padded image, a random flip.

    Offsets in ``[0, 2 pad]`` and flips (probability 1/2) per sample, drawn from ``gen``; batched (one gather).
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = (torch.randint(0, 2 * pad + 1, (2, b), generator=gen, device=gen.device).to(x.device))
    flip = torch.rand(b, generator=gen, device=gen.device).to(x.device) < 0.5
    cols = torch.arange(w, device=x.device).expand(b, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]
    rows = torch.arange(h, device=x.device)[None, :] + dy[:, None]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _fingerprint(model: nn.Module, cfg: TrainConfig, x: Tensor, y: Tensor, run_tag: str | None) -> str:
    """What a resumed run must share with the interrupted one: config, architecture, data and ``run_tag``.

    The config is compared except the number of epochs, so that a finished run can be extended. The architecture is
    the model's ``config`` (the package's models) or its printed form (layers and their settings, a softplus beta),
    with the name, shape and dtype of every parameter and buffer.
    """
    digest = hashlib.sha256(json.dumps({**cfg.to_dict(), "epochs": None}, sort_keys=True, default=str).encode())
    digest.update(repr(getattr(model, "config", None) or str(model)).encode())
    digest.update(repr([(name, tuple(t.shape), str(t.dtype))
                        for name, t in (*model.named_parameters(), *model.named_buffers())]).encode())
    digest.update(repr(run_tag).encode())
    for t in (x, y):
        digest.update(repr((tuple(t.shape), t.dtype)).encode())
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype
    return digest.hexdigest()


class _TrainState:
    """Epoch-end state in ``checkpoint_dir/train_state.safetensors``.

    Model and optimizer tensors, with the epoch, history and optimizer settings as JSON in the file's header (one file,
    one atomic write).
    """

    def __init__(self, folder: str | Path, fingerprint: str):
        self.fingerprint = fingerprint
        self.path = Path(folder) / "train_state.safetensors"

    def save(self, model, opt, epoch: int, history: list[dict], batch_losses: list[float]) -> None:
        tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        opt_state = opt.state_dict()
        scalars = {}
        for idx, state in opt_state["state"].items():
            for key, value in state.items():
                if isinstance(value, Tensor):
                    tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous().clone()
                else:
                    scalars[f"{idx}.{key}"] = value
        header = {"fingerprint": self.fingerprint, "epoch": epoch, "history": history, "batch_losses": batch_losses,
                  "param_groups": opt_state["param_groups"], "scalars": scalars}
        with atomic_path(self.path) as tmp:
            save_file(tensors, str(tmp), metadata={"attrbound_train_state": json.dumps(header)})

    def load(self, model, opt) -> tuple[int, list[dict], list[float]]:
        """The number of finished epochs, their history and the first batch losses (0, [], [] if nothing to resume)."""
        if not self.path.is_file():
            return 0, [], []
        try:
            with safe_open(str(self.path), framework="pt") as fh:
                header = json.loads((fh.metadata() or {}).get("attrbound_train_state", "{}"))
                tensors = {key: fh.get_tensor(key) for key in fh.keys()}
        except Exception as err:  # safetensors' SafetensorError (a truncated or foreign file), bad JSON
            raise ValueError(f"{self.path} is not a readable training state ({type(err).__name__}: {err}); an "
                             "interrupted copy? Delete it to train from the start.") from None
        if not isinstance(header, dict) or header.get("fingerprint") != self.fingerprint:
            raise ValueError(f"{self.path} holds the state of a different training run (other config, architecture, "
                             "data or run_tag, e.g. another initial-weight seed; or a state saved by an attrbound_lite "
                             "before 2026-12, whose fingerprint was computed otherwise); use another checkpoint_dir "
                             "or delete that file to train from the start.")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                idx, name = key[6:].split(".", 1)
                state.setdefault(int(idx), {})[name] = value
        for key, value in header["scalars"].items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        opt.load_state_dict({"state": state, "param_groups": header["param_groups"]})
        return header["epoch"], header["history"], header.get("batch_losses", [])


def train(model: nn.Module, train_data, method: str | TrainConfig | None = None, epochs: int | None = None,
          batch_size: int | None = None, lr: float | None = None, eps: float | None = None, *,
          device: str | torch.device | None = None, progress: bool = True, checkpoint_dir: str | Path | None = None,
          stop_after: int | None = None, run_tag: str | None = None, **options) -> pd.DataFrame:
    """Train ``model`` in place on ``train_data`` and return the history, one row per epoch.

    Two call styles, the same run: ``train(model, data, TrainConfig(method="pgd_at", eps=0.3, epochs=2))``,
    or the config's fields as arguments, ``train(model, data, "pgd_at", 2, eps=0.3)``. Each step minimises the
    method's loss on a batch (see the module docstring); batch ``b`` of epoch ``e`` draws its noise from
    ``derive_seed(seed, e, b)`` and the epoch's order from ``derive_seed(seed, e)``.

    Args:
        model: the network; moved to ``device`` and trained in place.
        train_data: an ``ImageDataset``, a ``TensorDataset`` or a pair ``(images (N, C, H, W) in [0, 1], labels (N,))``.
        method: a ``TrainConfig`` (then no other training option may be given; it is taken as it is, every field
            recorded), or the training method (default ``TrainConfig``'s, ``"natural"``).
        epochs: with a method name: ``TrainConfig.epochs`` (``None``: its default); likewise ``batch_size``,
            ``lr`` and ``eps``.
        batch_size: see ``epochs``.
        lr: see ``epochs``.
        eps: see ``epochs``.
        device: where to train, a name ``runtime.resolve_device`` takes (``"cpu"``, ``"cuda:1"``, ``"auto"``) or a
            ``torch.device`` (default: the model's device).
        progress: show progress bars and a line per epoch.
        checkpoint_dir: save the state atomically after every epoch in this folder and resume an interrupted run
            from it. A run is recognised by its config, architecture, data and ``run_tag``, not by the model's
            initial weights (a restarted script may draw others): the saved state replaces them.
        stop_after: stop after this many optimiser steps, a positive integer (``None``: train every epoch); with the
            losses in ``attrs["batch_losses"]`` this replays the start of a run (``zoo.verify_zoo``).
        run_tag: what else tells this run from another one in the same ``checkpoint_dir`` (``zoo.train_recipe``
            passes the seed of the initial weights); a state saved under another tag is refused, not resumed.
        **options: with a method name: the other ``TrainConfig`` fields (``norm, steps, alpha, lam, dissimilarity,
            attribution, ig_steps, surrogate_beta, optimizer, weight_decay, warmup_epochs, augment, seed,
            lr_warmup_epochs, lr_warmup_from``). An option that the method ignores (``eps`` for natural training,
            ``lam`` for PGD-AT, ...: ``OPTION_USERS``) is refused.

    The data is checked once, before the first step: images a floating-point tensor (N, C, H, W) in [0, 1] of the
    model's dtype and a shape the model takes (``_checks.check_model_inputs`` on a few of them), labels an integer
    tensor (N,) of the model's classes.

    On a device other than the CPU the training data is moved there once (one copy per call; MNIST's 60,000 images
    take 188 MB) and each epoch's order once per epoch, so that a step copies nothing from the host; the inner
    maximisation reads no tensor value on the host, and a step reads its losses once. The learning rate follows
    ``learning_rate_at`` (constant ``lr`` unless the config has a learning-rate warm-up, e.g. from
    ``scaled_for_batch``).

    Returns:
        A DataFrame with the columns ``epoch, loss, cross_entropy, regulariser, accuracy, seconds`` (``accuracy``:
        on the batches the loss sees, adversarial ones for ``pgd_at`` and ``advaat``); ``attrs["config"]`` is
        ``TrainConfig.to_dict()`` and ``attrs["batch_losses"]`` the training losses of the run's first
        ``FIRST_BATCHES`` optimiser steps (kept across a resume).

    Raises:
        TypeError: a model that is not a ``torch.nn.Module``; a ``TrainConfig`` together with other training options;
            data that is not tensors (numpy arrays: convert them with ``torch.as_tensor``); images that are not
            floating point (uint8 included) or not of the model's dtype; labels that are not integers.
        ValueError: (``ConfigError`` for the training options) an invalid option or one that the method ignores; an
            unknown device; empty data; images outside [0, 1], with NaN/inf or of a shape the model does not take;
            labels outside the model's classes; ``stop_after`` not a positive integer; a ``checkpoint_dir`` that is
            a file; a checkpoint of another run (other config, architecture, data or ``run_tag``).
        FloatingPointError: a non-finite training loss.
    """
    progress = check_flag(progress, "progress")
    given = {k: v for k, v in dict(epochs=epochs, batch_size=batch_size, lr=lr, eps=eps).items() if v is not None}
    if isinstance(method, TrainConfig):
        if given or options:
            raise TypeError(f"train() got a TrainConfig and the training options {sorted({**given, **options})}; "
                            "put them into the TrainConfig.")
        cfg = method
        changed = {name for name in cfg.model_fields_set - {"method"}  # a default value changes nothing
                   if getattr(cfg, name) != TrainConfig.model_fields[name].default}
        ignored = [] if cfg._from_recipe else ignored_options(cfg.method, changed, cfg.attribution)
        if ignored:
            raise ConfigError(" ".join(ignored))
    else:
        cfg = TrainConfig(**({} if method is None else {"method": method}), **given, **options)
        ignored = ignored_options(cfg.method, {*given, *(k for k, v in options.items() if v is not None)},
                                  cfg.attribution)
        if ignored:
            raise ConfigError(" ".join(ignored))
    check_model(model, second_order=cfg.method not in ("natural", "pgd_at"))  # attribution losses: double backward
    if stop_after is not None:
        check_positive_int(stop_after, "stop_after (optimiser steps; None: every epoch)")
    if run_tag is not None and not isinstance(run_tag, str):
        raise TypeError(f"run_tag must be a str or None, got {type(run_tag).__name__}.")
    if checkpoint_dir is not None:
        if not isinstance(checkpoint_dir, (str, os.PathLike)):
            raise TypeError(f"checkpoint_dir must be a folder (a str or a Path) or None, got "
                            f"{type(checkpoint_dir).__name__}.")
        if Path(checkpoint_dir).exists() and not Path(checkpoint_dir).is_dir():
            raise ValueError(f"checkpoint_dir {str(checkpoint_dir)!r} is an existing file, not a folder; pass a folder "
                             "(created if missing) for the training state.")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no trainable parameters (none, or all with requires_grad=False); nothing to "
                         "train.")
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    x_all, y_all = as_tensors(train_data)
    check_inputs(x_all, "images", box=True)
    model.to(device)
    sample = x_all[:8].to(device)  # once, before the first step: dtype, shape and classes against the model
    check_model_inputs(model, sample, "images")
    check_labels(y_all, model_classes(model, sample), name="labels")
    on_host = device.type == "cpu"
    loss_fn = _METHODS[cfg.method](model, cfg)
    opt = _optimizer(model, cfg)
    start, history, first = 0, [], []
    state = None
    if checkpoint_dir is not None:
        state = _TrainState(checkpoint_dir, _fingerprint(model, cfg, x_all, y_all, run_tag))
        start, history, first = state.load(model, opt)
        if start > cfg.epochs:
            raise ValueError(f"{checkpoint_dir} holds a run trained for {start} epochs, more than the {cfg.epochs} "
                             "asked for; ask for at least that many epochs or use another checkpoint_dir.")
    n = x_all.shape[0]
    batches = (n + cfg.batch_size - 1) // cfg.batch_size
    if not on_host:  # gathers on the device: no host-to-device copy (a synchronisation) per batch
        x_all, y_all = x_all.to(device), y_all.to(device)
    was_training = model.training
    model.train()
    try:
        for epoch in range(start, cfg.epochs):
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(cfg.seed, epoch)))
            if not on_host:
                order = order.to(device)
            sums = torch.zeros(4, dtype=torch.float64)
            bar = tqdm(range(batches), desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                       leave=False)
            for b in bar:
                step = epoch * batches + b
                if stop_after is not None and step >= stop_after:
                    break
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                x, y = x_all[idx].to(device), y_all[idx].to(device)
                gen = torch.Generator(device=device).manual_seed(derive_seed(cfg.seed, epoch, b))
                if cfg.augment == "crop_flip":
                    x = augment_crop_flip(x, gen)
                if cfg.warmup_epochs > 0:
                    loss_fn.set_radius_scale(min(1.0, (step + 1) / (cfg.warmup_epochs * batches)))
                if cfg.lr_warmup_epochs > 0:
                    for group in opt.param_groups:
                        group["lr"] = learning_rate_at(cfg, step, batches)
                total, ce, reg, logits = loss_fn.loss(x, y, gen)
                # The step's one host synchronisation: its losses and correct predictions in one read.
                stats = torch.stack([total.detach(), ce.detach(), reg.detach(),
                                     (logits.argmax(1) == y).sum().to(total.dtype)]).tolist()
                if not math.isfinite(stats[0]):
                    fix = ("train in float32 (model.float()): the optimiser's steps lose their precision in "
                           f"{total.dtype}" if total.dtype in (torch.float16, torch.bfloat16) else "lower lr or lam")
                    raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}, batch {b + 1} "
                                             f"(cross-entropy {stats[1]:.4g}, regulariser {stats[2]:.4g}); {fix}.")
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                k = len(idx)
                if step < FIRST_BATCHES and step >= len(first):
                    first.append(stats[0])
                sums += torch.tensor([stats[0] * k, stats[1] * k, stats[2] * k, stats[3]], dtype=torch.float64)
                seen = min((b + 1) * cfg.batch_size, n)
                bar.set_postfix(loss=f"{sums[0].item() / seen:.3f}", acc=f"{sums[3].item() / seen:.3f}")
            bar.close()
            if stop_after is not None and (epoch + 1) * batches > stop_after:
                break
            row = dict(epoch=epoch + 1, loss=sums[0].item() / n, cross_entropy=sums[1].item() / n,
                       regulariser=sums[2].item() / n, accuracy=sums[3].item() / n,
                       seconds=time.perf_counter() - t0)
            history.append(row)
            if progress:
                tqdm.write(f"{cfg.method} epoch {row['epoch']}: loss {row['loss']:.4f}, accuracy "
                           f"{row['accuracy']:.4f}, {row['seconds']:.1f} s")
            if state is not None:
                state.save(model, opt, epoch + 1, history, first)
    finally:
        model.train(was_training)
    frame = pd.DataFrame(history, columns=["epoch", "loss", "cross_entropy", "regulariser", "accuracy", "seconds"])
    frame.attrs["config"] = cfg.to_dict()
    frame.attrs["batch_losses"] = list(first)
    return frame
