"""The book's models: a training recipe is trained once, cached under a content key, and loaded afterwards.

    recipe = Recipe("mnist", "advaat", eps=0.1, epochs=2, n_train=4096)
    model, meta = get_model(recipe, "_build/models")      # trains (resumable) or loads the cached checkpoint

A ``Recipe`` names everything that determines the weights: data set, training subset and seed, the
architecture (the project's CNN for the data set, by default smooth: softplus, average pooling) and every
``TrainConfig`` field. Its ``key`` (``<dataset>-<method>[-eps<eps>]-<12 hex digits>``, a sha256 of the recipe
and of the source of the modules that determine the weights) names the folder ``root/<key>/`` holding
``model.safetensors`` and its sidecar (``checkpoints``; the recipe and the per-epoch history are in its
metadata). Training goes through ``train_recipe`` (``training.train(checkpoint_dir=...)``), so an interrupted run
resumes at its last finished epoch. Chapters 4 to 7 of the book share one root
(``attrbound_lite.book.profiles.book_store``), so a model is trained once and reused by later chapters and later
builds into the same folder, until its recipe or the training code changes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import ConfigDict, Field, model_validator
from torch import nn

from .checkpoints import checkpoint_paths, load_checkpoint, save_checkpoint
from .config import (
    Config,
    ConfigError,
    NonNegativeInt,
    OptionalPositiveFloat,
    OptionalPositiveInt,
    PositiveFloat,
    PositiveInt,
    choice,
)
from .data import DATASETS
from .runtime import derive_seed, resolve_device
from .training import METHODS, TRAINING_PROTOCOLS, TrainConfig, train

__all__ = ["Recipe", "get_model", "train_recipe", "model_folder", "training_history"]


_RESERVED = ("method", "epochs", "batch_size", "lr", "eps", "seed")  # Recipe fields that are TrainConfig fields too


class Recipe(Config):
    """A training run: everything that determines the weights but the initial seed.

    Args:
        dataset: the training set (``data.DATASETS``).
        method: the training method (``training.METHODS``).
        eps: the training radius; ``None`` takes RAR's of the data set (``TRAINING_PROTOCOLS``); ignored by
            natural training.
        epochs: passes over the training data.
        n_train: ``None``: the whole training split, else a subset of that size drawn with ``seed``.
        batch_size: samples per optimiser step.
        lr: learning rate.
        seed: the subset's seed and ``TrainConfig.seed``.
        model: keyword arguments of the data set's architecture (``models.model_for_dataset``).
        options: other ``TrainConfig`` fields (``steps``, ``alpha``, ``lam``, ``ig_steps``, ``dissimilarity``, ...).
    """

    model_config = ConfigDict(frozen=True)

    dataset: choice(*DATASETS)
    method: choice(*METHODS) = "natural"
    eps: OptionalPositiveFloat = None
    epochs: PositiveInt = 1
    n_train: OptionalPositiveInt = None
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 2e-3
    seed: NonNegativeInt = 0
    model: dict = Field(default_factory=lambda: dict(width=0.25, activation="softplus", beta=10.0, pool="avg"))
    options: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_training(self) -> Recipe:
        unknown = set(self.options) - set(TrainConfig.model_fields)
        reserved = set(self.options) & set(_RESERVED)
        if unknown or reserved:
            raise ConfigError(f"{sorted(unknown | reserved)} are not TrainConfig fields (or are recipe fields: give "
                              "those directly); see attrbound_lite.training.TrainConfig", loc=("options",))
        try:
            self.train_config()  # validates the options with TrainConfig's own messages
        except ConfigError as err:
            raise ConfigError([(("options", *loc) if loc and loc[0] in self.options else loc, problem)
                               for loc, problem in err.problems]) from None
        return self

    @property
    def train_eps(self) -> float | None:
        """The training radius: ``eps``, or RAR's of the data set; ``None`` for natural training."""
        if self.method == "natural":
            return None
        return TRAINING_PROTOCOLS[self.dataset]["eps"] if self.eps is None else float(self.eps)

    def train_config(self) -> TrainConfig:
        """The recipe's ``TrainConfig`` (with ``eps = train_eps``).

        Returns:
            ``TrainConfig(method, epochs, batch_size, lr, eps=train_eps, seed, **options)``.
        """
        return TrainConfig(method=self.method, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           eps=self.train_eps, seed=self.seed, **self.options)

    @property
    def key(self) -> str:
        """``<dataset>-<method>[-eps<eps>]-<hash>``, the name of the recipe's folder.

        The hash covers the recipe and the source of the modules that determine the weights (``_CODE_FILES``),
        so a change of the training code retrains.
        """
        content = json.dumps({"recipe": self.to_dict(), "code": _code_digest()}, sort_keys=True)
        digest = hashlib.sha256(content.encode()).hexdigest()[:12]
        radius = "" if self.train_eps is None else f"-eps{self.train_eps:.4g}"
        return f"{self.dataset}-{self.method}{radius}-{digest}"


# The source files that determine a recipe's weights (hashed into Recipe.key).
_CODE_FILES = ("zoo.py", "training.py", "config.py", "runtime.py", "protocols.py", "models.py", "threat_models.py",
               "attributions.py", "data.py", "_checks.py")


@functools.cache
def _code_digest() -> str:
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in _CODE_FILES)).hexdigest()


def model_folder(recipe: Recipe, root: str | os.PathLike) -> Path:
    """``root/<recipe.key>``: where the recipe's checkpoint, history and training state live."""
    return Path(root) / recipe.key


def train_recipe(recipe: Recipe, folder: str | os.PathLike, *, init_seed: int,
                 device: str | torch.device | None = None, progress: bool = True,
                 data_root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
                 download: bool = True,
                 metadata: Mapping | Callable[[nn.Module, Any, pd.DataFrame], Mapping] | None = None,
                 ) -> tuple[nn.Module, dict]:
    """Load the recipe's training data, build its model, train it and save the checkpoint in ``folder``.

    The one way the package trains a model from a description (``attrbound train``, the sweep's recipe models,
    ``get_model``). The initial weights are drawn after ``torch.manual_seed(init_seed)`` inside
    ``torch.random.fork_rng`` (the caller's random state is left as it was); training resumes from
    ``folder/train_state.safetensors`` after an interruption (``training.train(checkpoint_dir=folder)``).

    Args:
        recipe: what to train.
        folder: receives ``model.safetensors``, its sidecar ``model.json``, ``history.csv`` and the training state.
        init_seed: the seed of the initial weights (each caller keeps its own scheme).
        device: where to train (``runtime.resolve_device``: default CUDA when available).
        progress: progress bars.
        data_root: the data cache (``data.load_dataset``'s ``root``).
        mirror: an offline data mirror.
        download: whether the network may be used.
        metadata: more sidecar metadata, a mapping or ``metadata(model, data, history)`` called after training
            (e.g. to evaluate the model); merged over ``{"training": TrainConfig.to_dict(), "data": {name, split,
            size, fingerprint}}``.

    Returns:
        ``(model, sidecar)`` of the saved checkpoint (``checkpoints.load_checkpoint``): the model in eval mode on
        ``device``.
    """
    from .data import load_dataset
    from .models import model_for_dataset

    device, folder = resolve_device(device), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = load_dataset(recipe.dataset, "train", root=data_root, download=download, mirror=mirror,
                        subset=recipe.n_train, seed=recipe.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = model_for_dataset(recipe.dataset, **recipe.model)
    history = train(model, data, recipe.train_config(), device=device, progress=progress, checkpoint_dir=folder)
    history.to_csv(folder / "history.csv", index=False)
    meta = {"training": history.attrs["config"],
            "data": {"name": data.name, "split": data.split, "size": len(data), "fingerprint": data.fingerprint}}
    meta.update((metadata(model, data, history) if callable(metadata) else metadata) or {})
    weights = save_checkpoint(model, folder / "model.safetensors", meta)
    return load_checkpoint(weights, device=device)


def get_model(recipe: Recipe, root: str | os.PathLike, *, device: str | torch.device | None = None,
              progress: bool = True, data_root: str | os.PathLike | None = None,
              mirror: str | os.PathLike | None = None) -> tuple[nn.Module, dict]:
    """The model of ``recipe``: loaded from ``root/<key>/`` if trained before, else trained now and saved there.

    An interrupted training resumes. The initial weights follow the recipe alone (not the code digest of the
    key): ``derive_seed(seed, "init", json.dumps(recipe.to_dict(), sort_keys=True))``.

    Args:
        recipe: what to train.
        root: the zoo's folder (one sub-folder per recipe key).
        device: where to train and load (``runtime.resolve_device``: default CUDA when available).
        progress: progress bars while training.
        data_root: the data cache.
        mirror: an offline data mirror.

    Returns:
        ``(model, sidecar)``: the model in eval mode on ``device``; ``sidecar["metadata"]`` holds the recipe, the
        training config, the per-epoch history (``training_history``) and the data set's fingerprint.

    Raises:
        ValueError: the folder holds a model of another recipe.
    """
    device = resolve_device(device)
    folder = model_folder(recipe, root)
    weights, _ = checkpoint_paths(folder)
    if weights.is_file():
        model, meta = load_checkpoint(weights, device=device)
        if meta["metadata"].get("recipe") != recipe.to_dict():
            raise ValueError(f"{folder} holds a model of another recipe ({meta['metadata'].get('recipe')}); "
                             "delete the folder to retrain it.")
        return model, meta
    init_seed = derive_seed(recipe.seed, "init", json.dumps(recipe.to_dict(), sort_keys=True))
    return train_recipe(recipe, folder, init_seed=init_seed, device=device, progress=progress, data_root=data_root,
                        mirror=mirror, metadata=lambda model, data, history: {
                            "recipe": recipe.to_dict(), "history": history.to_dict(orient="list")})


def training_history(meta: dict) -> pd.DataFrame:
    """The per-epoch training history recorded in a zoo checkpoint's sidecar."""
    return pd.DataFrame(meta["metadata"]["history"])
