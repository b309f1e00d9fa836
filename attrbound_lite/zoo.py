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
import numbers
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
import torch
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from torch import nn

from ._checks import check_flag, check_positive_int, check_seed, check_tol
from ._io import file_digest, json_default, make_dirs
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
from .training import METHODS, TRAINING_PROTOCOLS, TrainConfig, ignored_options, train

__all__ = ["Recipe", "stored_dtype", "get_model", "train_recipe", "initial_model", "recipe_seed", "model_folder",
           "training_history", "REFERENCE", "reference_name", "ZOO_ROOT", "zoo_root", "read_manifest",
           "load_reference", "build_zoo", "zoo_table", "verify_zoo", "replay_losses", "evaluate_reference",
           "stale_folders", "SEEDS", "ROBUST_METHODS", "ACCURACY_FLOORS", "accuracy_floor"]


_RESERVED = ("method", "epochs", "batch_size", "lr", "eps", "seed")  # Recipe fields that are TrainConfig fields too
_COMMITTED = "committed_reference_recipe"  # validation context of REFERENCE's recipes (options kept as committed)


class Recipe(Config):
    """A training run: everything that determines the weights but the initial seed.

    Args:
        dataset: the training set (``data.DATASETS``).
        method: the training method (``training.METHODS``).
        eps: the training radius; ``None`` takes RAR's of the data set (``TRAINING_PROTOCOLS``); refused with
            natural training. The key hashes the recipe as written: ``eps=None`` and RAR's radius written out, or
            a model option left at its default and the same written out, are two keys (the committed zoo's keys
            stay as they are); numbers are compared as numbers (``width=1`` is ``width=1.0``).
        epochs: passes over the training data.
        n_train: ``None``: the whole training split, else a subset of that size drawn with ``seed``.
        batch_size: samples per optimiser step.
        lr: learning rate.
        seed: the subset's seed and ``TrainConfig.seed``.
        model: keyword arguments of the data set's architecture (``models.model_for_dataset``); an unknown key
            (``widht``) is refused, naming the allowed ones.
        options: other ``TrainConfig`` fields (``steps``, ``alpha``, ``lam``, ``ig_steps``, ``dissimilarity``,
            ``warmup_epochs``, ``augment``, ...). An option the method ignores (``training.ignored_options``, the
            rule of ``training.train`` and ``attrbound train``: ``lam`` with ``pgd_at``, ``steps`` with natural
            training) is refused by name, unless it holds ``TrainConfig``'s default or, for ``steps`` and
            ``alpha``, RAR's value for the data set: what ``attrbound train`` and sweeps spell out for every
            method, so that their recipes keep their keys (as do ``REFERENCE``'s, which spell out ``ig_steps``).
        init: ``None`` (fresh weights) or the recipe whose trained weights this one starts from (fine-tuning);
            same data set and architecture.
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
    init: Recipe | None = None

    @field_validator("model", "options", mode="before")
    @classmethod
    def _plain_json(cls, value):
        """Numpy numbers (a parameter grid's) as the Python numbers they equal: the key hashes the recipe's JSON."""
        if not isinstance(value, dict):
            return value  # refused by the field's type
        try:
            return json.loads(json.dumps(value, default=json_default, allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ValueError(f"must hold JSON values (numbers, strings, booleans, lists): {err}") from None

    @model_validator(mode="after")
    def _valid_training(self, info: ValidationInfo) -> Recipe:
        if self.method == "natural" and self.eps is not None:  # would give the same run another key
            raise ConfigError("natural training has no radius; leave eps out (None)", loc=("eps",))
        unknown = set(self.options) - set(TrainConfig.model_fields)
        reserved = set(self.options) & set(_RESERVED)
        if unknown or reserved:
            raise ConfigError(f"{sorted(unknown | reserved)} are not TrainConfig fields (or are recipe fields: give "
                              "those directly); see attrbound_lite.training.TrainConfig", loc=("options",))
        from .data import DATASET_INFO

        size = DATASET_INFO[self.dataset]["sizes"]["train"]
        if self.n_train is not None and self.n_train > size:
            raise ConfigError(f"must be at most the {size:,} images of {self.dataset}'s training split, got "
                              f"{self.n_train:,} (None: the whole split)", loc=("n_train",))
        allowed = _architecture_keys(self.dataset)
        for key in self.model:
            if key not in allowed:
                raise ConfigError(f"unknown key; allowed keys here: {', '.join(allowed)} (the arguments of the "
                                  f"{self.dataset} architecture, models.model_for_dataset)", loc=("model", key))
        # The values the architecture and TrainConfig store, so that width=1 and width=1.0 are one recipe, one key.
        object.__setattr__(self, "model", _check_architecture(self.dataset, self.model))
        if self.init is not None and (self.init.dataset, self.init.model) != (self.dataset, self.model):
            raise ConfigError(f"starts from a model of another data set or architecture ({self.init.dataset}, "
                              f"{self.init.model}); init must share dataset and model", loc=("init",))
        try:
            config = self.train_config()  # validates the options with TrainConfig's own messages
        except ConfigError as err:
            raise ConfigError([(("options", *loc) if loc and loc[0] in self.options else loc, problem)
                               for loc, problem in err.problems]) from None
        object.__setattr__(self, "options", {key: _stored(value, getattr(config, key))
                                             for key, value in self.options.items()})
        if not (info.context or {}).get(_COMMITTED):  # REFERENCE's recipes keep their keys
            rar = TRAINING_PROTOCOLS[self.dataset]
            spelt = {key for key in self.options if getattr(config, key) != TrainConfig.model_fields[key].default
                     and not (key in ("steps", "alpha") and getattr(config, key) == rar[key])}
            ignored = ignored_options(self.method, spelt, config.attribution)
            if ignored:
                raise ConfigError(" ".join(ignored), loc=("options",))
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
        config = TrainConfig(method=self.method, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                             eps=self.train_eps, seed=self.seed, **self.options)
        config._from_recipe = True  # its options were checked when the recipe was made (train does not again)
        return config

    @property
    def key(self) -> str:
        """``<dataset>-<method>[-eps<eps>]-<hash>``, the name of the recipe's folder.

        The hash is a sha256 of the recipe alone (``to_dict()``, the ``init`` recipe included), not of the code: a
        refactoring keeps the trained weights, and ``verify_zoo`` replays the start of every run to catch a change
        of what the code computes.
        """
        content = json.dumps(self.to_dict(), sort_keys=True)
        digest = hashlib.sha256(content.encode()).hexdigest()[:12]
        radius = "" if self.train_eps is None else f"-eps{self.train_eps:.4g}"
        return f"{self.dataset}-{self.method}{radius}-{digest}"


def _architecture_keys(dataset: str) -> tuple[str, ...]:
    """The keyword arguments that the architecture of ``dataset`` takes (``models.model_for_dataset``)."""
    import inspect

    from .models import MODELS
    from .protocols import rar_protocol

    return tuple(inspect.signature(MODELS[rar_protocol(dataset, "architecture")["model"]]).parameters)


def _stored(given, stored):
    """``stored`` (the value a validated config holds) where it is the number ``given`` as a float (1 -> 1.0)."""
    if isinstance(given, int) and not isinstance(given, bool) and isinstance(stored, float) and stored == given:
        return stored
    return given


@functools.lru_cache(maxsize=256)
def _built_config(dataset: str, model_json: str) -> str:
    from .models import model_for_dataset

    with torch.random.fork_rng(devices=[]):
        return json.dumps(getattr(model_for_dataset(dataset, **json.loads(model_json)), "config", {}))


def _check_architecture(dataset: str, model: dict) -> dict:
    """Refuse ``model`` options that the architecture refuses (a width of 0, a negative beta), now, not at training.

    The architecture is built once per distinct options (memoised) on the CPU with the global random state restored.

    Returns:
        ``model`` with integers that the architecture stores as floats given as floats (``width=1`` -> ``1.0``).
    """
    try:
        built = json.loads(_built_config(dataset, json.dumps(model, sort_keys=True)))
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err), loc=("model",)) from None
    return {key: _stored(value, built.get(key)) for key, value in model.items()}


def _check_recipe(recipe, what: str) -> Recipe:
    """Return ``recipe`` if it is a ``Recipe``; otherwise a TypeError naming the fix (``load_reference`` for a name).

    Raises:
        TypeError: not a ``Recipe``; for a name of ``REFERENCE`` the message points to ``load_reference``.
    """
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str) and recipe in REFERENCE:
        raise TypeError(f"{what} takes a Recipe, got the str {recipe!r}; {recipe!r} is a committed reference model: "
                        f"load it with zoo.load_reference({recipe!r}) (or train its recipe with "
                        f"{what}(zoo.REFERENCE[{recipe!r}], ...)).")
    got = f"the str {recipe!r}" if isinstance(recipe, str) else type(recipe).__name__
    raise TypeError(f"{what} takes a Recipe, got {got}; describe the training run with zoo.Recipe(dataset=..., "
                    "method=..., ...), or load one of the committed reference models with zoo.load_reference(name): "
                    f"{', '.join(REFERENCE)}.")


def model_folder(recipe: Recipe, root: str | os.PathLike) -> Path:
    """``root/<recipe.key>``: where the recipe's checkpoint, history and training state live.

    Raises:
        TypeError: ``recipe`` is not a ``Recipe``, or ``root`` not a string or a path.
        ValueError: ``root`` is empty or an existing file.
    """
    _check_recipe(recipe, "model_folder")
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root (the zoo's folder) must be a string or a pathlib.Path, got {type(root).__name__} "
                        f"{root!r}.")
    if not str(root):
        raise ValueError("root (the zoo's folder) is an empty path; pass a folder (e.g. '_build/models'), '.' for "
                         "the current one.")
    _refuse_file_root(Path(root))
    return Path(root) / recipe.key


def _refuse_file_root(path: Path) -> Path:
    """``path``, refused with a ValueError if it is an existing file (a zoo's root is a folder)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"root (the zoo's folder) {str(path)!r} is an existing file, not a folder; pass the folder "
                         "that holds (or will hold) the models.")
    return path


def initial_model(recipe: Recipe, init_seed: int, init_weights: str | os.PathLike | None = None) -> nn.Module:
    """The recipe's model before training.

    Fresh weights drawn after ``torch.manual_seed(init_seed)`` (inside ``torch.random.fork_rng``), or the weights of
    ``recipe.init`` read from ``init_weights``.

    Args:
        recipe: what will be trained.
        init_seed: the seed of fresh weights, an integer >= 0 (Python or numpy).
        init_weights: the checkpoint of ``recipe.init``; required when the recipe has one, refused when it has none
            (the weights would be ignored: a fine-tuning run names its parent in ``Recipe(init=...)``).

    Returns:
        The model, on the CPU, in training mode.

    Raises:
        TypeError: ``recipe`` is not a ``Recipe``, ``init_seed`` not an integer >= 0, or ``init_weights`` not a path.
        ValueError: ``init_weights`` missing for a recipe with ``init``, given for one without, or a checkpoint of
            another architecture.
    """
    from .models import model_for_dataset

    _check_recipe(recipe, "initial_model")
    init_seed = check_seed(init_seed, "init_seed")
    _check_init_weights(recipe, init_weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = model_for_dataset(recipe.dataset, **recipe.model)
    if recipe.init is not None:
        parent, _ = load_checkpoint(init_weights, device="cpu")
        # tensors of the same shapes can hold another architecture (ReLU for softplus) or data set (normalisation)
        if type(parent) is not type(model) or getattr(parent, "config", None) != getattr(model, "config", None):
            raise ValueError(f"init_weights {str(init_weights)!r} holds a {type(parent).__name__} with config "
                             f"{getattr(parent, 'config', None)}, but recipe {recipe.key} builds a "
                             f"{type(model).__name__} with config {getattr(model, 'config', None)} ({recipe.dataset}); "
                             f"pass the checkpoint of {recipe.init.key}.")
        model.load_state_dict(parent.state_dict())  # same class and config: the same tensors (load_checkpoint)
    return model.train()


def _check_init_weights(recipe: Recipe, init_weights) -> None:
    """Refuse ``init_weights`` that is not a path, missing for a recipe with ``init``, or given for one without."""
    if init_weights is not None and not isinstance(init_weights, (str, os.PathLike)):
        raise TypeError(f"init_weights must be a checkpoint path (a string or a pathlib.Path) or None, got "
                        f"{type(init_weights).__name__} {init_weights!r}.")
    if recipe.init is None and init_weights is not None:
        raise ValueError(f"init_weights={str(init_weights)!r} given, but recipe {recipe.key} has no init: its weights "
                         "are drawn fresh from init_seed and the checkpoint would be ignored; drop init_weights, or "
                         "fine-tune by naming the parent recipe in Recipe(..., init=parent).")
    if recipe.init is not None and init_weights is None:
        raise ValueError(f"recipe {recipe.key} starts from {recipe.init.key}; pass that model's checkpoint as "
                         "init_weights.")


def train_recipe(recipe: Recipe, folder: str | os.PathLike, *, init_seed: int,
                 device: str | torch.device | None = None, progress: bool = True,
                 data_root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
                 download: bool = True,
                 metadata: Mapping | Callable[[nn.Module, Any, pd.DataFrame], Mapping] | None = None,
                 init_weights: str | os.PathLike | None = None) -> tuple[nn.Module, dict]:
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
        init_weights: the checkpoint of ``recipe.init`` (required when the recipe has one).

    Returns:
        ``(model, sidecar)`` of the saved checkpoint (``checkpoints.load_checkpoint``): the model in eval mode on
        ``device``.

    Raises:
        TypeError: ``recipe`` is not a ``Recipe``, or ``init_seed`` not an integer >= 0.
        ValueError: ``init_weights`` missing for a recipe with ``init``, or given for one without.
    """
    from .data import load_dataset

    _check_recipe(recipe, "train_recipe")
    init_seed = check_seed(init_seed, "init_seed")
    progress, download = check_flag(progress, "progress"), check_flag(download, "download")
    _check_init_weights(recipe, init_weights)  # before the data is loaded
    device, folder = resolve_device(device), Path(folder)
    make_dirs(folder)
    run_tag = f"init_seed={init_seed}"  # tells this run from another seed's (or start's) in the same folder
    if init_weights is not None:
        from .checkpoints import checkpoint_paths
        run_tag += f", init={file_digest(checkpoint_paths(init_weights)[0])}"  # a weights file or its folder
    data = load_dataset(recipe.dataset, "train", root=data_root, download=download, mirror=mirror,
                        subset=recipe.n_train, seed=recipe.seed)
    model = initial_model(recipe, init_seed, init_weights)
    history = train(model, data, recipe.train_config(), device=device, progress=progress, checkpoint_dir=folder,
                    run_tag=run_tag)
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
        TypeError: ``recipe`` is not a ``Recipe`` (a reference model's name: use ``load_reference``), or ``root``
            not a path.
        ValueError: the folder holds a model of another recipe.
    """
    _check_recipe(recipe, "get_model")
    progress = check_flag(progress, "progress")
    device = resolve_device(device)
    folder = model_folder(recipe, root)
    weights, _ = checkpoint_paths(folder)
    if weights.is_file():
        model, meta = load_checkpoint(weights, device=device)
        if meta["metadata"].get("recipe") != recipe.to_dict():
            raise ValueError(f"{folder} holds a model of another recipe ({meta['metadata'].get('recipe')}); "
                             "delete the folder to retrain it.")
        return model, meta
    init_weights = None
    if recipe.init is not None:  # train (or load) the model this one starts from, in the same root
        get_model(recipe.init, root, device=device, progress=progress, data_root=data_root, mirror=mirror)
        init_weights = checkpoint_paths(model_folder(recipe.init, root))[0]
    return train_recipe(recipe, folder, init_seed=recipe_seed(recipe), device=device, progress=progress,
                        data_root=data_root, mirror=mirror, init_weights=init_weights,
                        metadata=lambda model, data, history: {
                            "recipe": recipe.to_dict(), "history": history.to_dict(orient="list"),
                            "batch_losses": history.attrs["batch_losses"]})


def recipe_seed(recipe: Recipe) -> int:
    """The seed of a recipe's initial weights: ``derive_seed(seed, "init", <the recipe as sorted JSON>)``.

    Raises:
        TypeError: ``recipe`` is not a ``Recipe`` (a reference model's name: ``recipe_seed(REFERENCE[name])``).
    """
    _check_recipe(recipe, "recipe_seed")
    return derive_seed(recipe.seed, "init", json.dumps(recipe.to_dict(), sort_keys=True))


def training_history(meta: dict) -> pd.DataFrame:
    """The per-epoch training history recorded in a zoo checkpoint's sidecar (or a reference model's manifest).

    Args:
        meta: the sidecar of ``get_model`` (``meta["metadata"]["history"]``), or the manifest of ``load_reference``
            (``manifest["history"]``).

    Returns:
        One row per epoch (``epoch, loss, cross_entropy, regulariser, accuracy, seconds``).

    Raises:
        TypeError: ``meta`` is not a dict.
        ValueError: it records no training history (a checkpoint not written by ``get_model``).
    """
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be the sidecar dict of get_model (or the manifest of load_reference), got "
                        f"{type(meta).__name__}.")
    metadata = meta.get("metadata")
    history = metadata.get("history") if isinstance(metadata, Mapping) else meta.get("history")
    if not isinstance(history, Mapping):
        raise ValueError(f"meta records no training history (keys {sorted(meta)}); pass the sidecar returned by "
                         "zoo.get_model (meta['metadata']['history']) or a manifest of zoo.load_reference; "
                         "checkpoints saved otherwise keep theirs in the history.csv beside the weights.")
    return pd.DataFrame(history)


# ----------------------------------------------------------------------------------------- the reference zoo
# The committed models the book reads (chapter 4 states every choice): one folder per recipe key under
# ZOO_ROOT, with model.safetensors and manifest.json. Robust models start from the natural model of their data
# set (adversarial fine-tuning) with a radius warm-up; the chapter-7 studies use a 12,000-image MNIST subset.
_SMOOTH_CNN = dict(width=0.25, activation="softplus", beta=10.0, pool="avg")
ROBUST_METHODS = ("pgd_at", "ig_norm", "aat", "advaat")
STUDY_N_TRAIN = 12_000
STUDY_RADII = (0.1, 0.2, 0.3)
STUDY_IG_STEPS = (2, 8)
STUDY_IG_N_TRAIN = 6_000
SEEDS = (0, 1, 2)  # training seeds of the reference recipes (the recipe's own seed is 0)
# Clean accuracy (whole test split) a reference model must reach to count as trained; a run below it is a failed
# run, reported and left out of the book's comparisons (chapter 7). Set with the seed-0 models, before the reruns.
ACCURACY_FLOORS = {"natural": {"mnist": 0.985, "fashion-mnist": 0.88, "cifar10-subset": 0.45},
                   "robust": {"mnist": 0.97, "fashion-mnist": 0.80, "cifar10-subset": 0.35}}


STUDY_ACCURACY_FLOOR = 0.97  # chapter 7's study models (MNIST subsets), natural and robust


def stored_dtype(name: str) -> torch.dtype:
    """The precision reference model ``name`` is stored in: float16 for chapter 7's study models, else float32.

    The 64 MB the committed zoo and results may take hold the 45 reference runs and the 36 study runs only if the
    study runs are stored at half size. A model stored in float16 is trained in float32, rounded once, evaluated with
    the rounded weights (its manifest's accuracies are those of the stored model) and loaded back in float32
    (``load_reference``): every number the book shows is computed from the stored weights.
    """
    if not isinstance(name, str) or re.sub(r"-seed\d+$", "", name) not in REFERENCE:  # a recipe or its rerun
        raise ValueError(f"unknown reference model {name!r}; the names are those of zoo.REFERENCE (e.g. "
                         f"{next(iter(REFERENCE))!r}), with '-seed1' or '-seed2' for their reruns.")
    return torch.float16 if "-study-" in name else torch.float32


def accuracy_floor(recipe: Recipe) -> float:
    """The clean accuracy ``recipe``'s model must reach to count as trained.

    ``ACCURACY_FLOORS`` by method and data set; a model trained on a subset (chapter 7's studies):
    ``STUDY_ACCURACY_FLOOR``.
    """
    _check_recipe(recipe, "accuracy_floor")
    if recipe.n_train is not None:
        return STUDY_ACCURACY_FLOOR
    floors = ACCURACY_FLOORS["natural" if recipe.method == "natural" else "robust"]
    if recipe.dataset not in floors:
        raise ValueError(f"the zoo sets accuracy floors for {sorted(floors)}, not for {recipe.dataset!r} (no "
                         "reference model is trained on it); judge that model against a floor of your own.")
    return floors[recipe.dataset]


# Epochs of the robust MNIST / Fashion-MNIST reference models (others: 1). CE on adversarial points (PGD-AT,
# AdvAAT) costs clean accuracy: a second epoch. IG-NORM (lambda = 1) stood at 95.0 % (MNIST) and 79.2 %
# (Fashion-MNIST) clean accuracy after one epoch, AdvAAT on MNIST at 96.98 % after two: more epochs (a longer run
# extends the shorter one exactly: the learning rate is constant and the warm-up counts batches from the start).
_EPOCHS = {("mnist", "pgd_at"): 2, ("mnist", "advaat"): 3, ("mnist", "ig_norm"): 3,
           ("fashion-mnist", "pgd_at"): 2, ("fashion-mnist", "advaat"): 2, ("fashion-mnist", "ig_norm"): 2}


def _committed(**fields) -> Recipe:
    """A recipe of ``REFERENCE``, validated as committed: the robust ones spell out ``ig_steps`` for every method."""
    return Recipe.parse(fields, context={_COMMITTED: True})


def _natural(dataset: str) -> Recipe:
    if dataset == "cifar10-subset":
        return _committed(dataset=dataset, epochs=40, model=_SMOOTH_CNN, options=dict(augment="crop_flip"))
    return _committed(dataset=dataset, epochs=4 if dataset == "mnist" else 8, model=_SMOOTH_CNN)


def _robust(dataset: str, method: str, eps: float | None = None, n_train: int | None = None,
            **options) -> Recipe:
    """A robust recipe: fine-tuned from the natural model, 5 inner steps of 2.5 eps / 5, radius warm-up."""
    parent = _natural(dataset) if n_train is None else _natural(dataset).model_copy(update=dict(n_train=n_train))
    cifar = dataset == "cifar10-subset"
    base = dict(steps=5, warmup_epochs=2.0 if cifar else 0.5, ig_steps=5)
    if cifar:
        base["augment"] = "crop_flip"
    base.update(options)
    epochs = 8 if cifar else 1 if n_train is not None else _EPOCHS.get((dataset, method), 1)
    return _committed(dataset=dataset, method=method, eps=eps, epochs=epochs, n_train=n_train, lr=1e-3,
                      model=_SMOOTH_CNN, options=base, init=parent)


def _reference_recipes() -> dict[str, Recipe]:
    recipes: dict[str, Recipe] = {}
    for dataset in ("mnist", "fashion-mnist", "cifar10-subset"):
        recipes[f"{dataset}-natural"] = _natural(dataset)
        for method in ROBUST_METHODS:
            recipes[f"{dataset}-{method}"] = _robust(dataset, method)
    # seeds 1 and 2 of every reference recipe (seed 0 is the recipe above), each robust one fine-tuned from the
    # natural model of its own seed: chapter 7 compares training methods over seeds, not single runs
    for seed in SEEDS[1:]:
        for dataset in ("mnist", "fashion-mnist", "cifar10-subset"):
            natural = recipes[f"{dataset}-natural"].model_copy(update={"seed": seed})
            recipes[f"{dataset}-natural-seed{seed}"] = natural
            for method in ROBUST_METHODS:
                recipes[f"{dataset}-{method}-seed{seed}"] = recipes[f"{dataset}-{method}"].model_copy(
                    update={"seed": seed, "init": natural})
    # chapter 7: the training radius ...
    recipes["mnist-study-natural"] = _natural("mnist").model_copy(update=dict(n_train=STUDY_N_TRAIN))
    for eps in STUDY_RADII:
        for method in ROBUST_METHODS:
            recipes[f"mnist-study-{method}-eps{eps:g}"] = _robust("mnist", method, eps, STUDY_N_TRAIN)
    # ... and the IG steps used in training (IG-NORM's path integral; AAT with IG attributions), on the first
    # STUDY_IG_N_TRAIN images of the study's subset (AAT with IG costs m double backward passes per inner step)
    for m in STUDY_IG_STEPS:
        for method, options in (("ig_norm", {}), ("aat", {"attribution": "integrated_gradients"})):
            recipes[f"mnist-study-{method}-ig{m}"] = _robust("mnist", method, 0.3, STUDY_N_TRAIN, ig_steps=m,
                                                             **options).model_copy(
                                                                 update={"n_train": STUDY_IG_N_TRAIN})
    return recipes


REFERENCE: Mapping[str, Recipe] = MappingProxyType(_reference_recipes())


def reference_name(dataset: str, method: str, eps: float | None = None, ig_steps: int | None = None,
                   seed: int = 0) -> str:
    """The name in ``REFERENCE`` of a model.

    Args:
        dataset: the training set.
        method: the training method.
        eps: ``None``: the reference model (whole training split, RAR's radius); a radius of ``STUDY_RADII``:
            the training-radius study's model (MNIST, ``STUDY_N_TRAIN`` images).
        ig_steps: a value of ``STUDY_IG_STEPS``: the IG-steps study's model (MNIST, ``ig_norm`` or ``aat``).
        seed: a training seed of ``SEEDS`` (reference models only): 0 is the recipe itself, 1 and 2 its reruns.

    Returns:
        ``"<dataset>-<method>"``, ``"<dataset>-<method>-seed<seed>"``, ``"mnist-study-<method>-eps<eps>"`` or
        ``"mnist-study-<method>-ig<m>"``.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed not in SEEDS:
        raise ValueError(f"seed must be one of the zoo's training seeds {SEEDS}, got {seed!r}.")
    if seed and (eps is not None or ig_steps is not None):
        raise ValueError(f"only the reference models have seeds {SEEDS[1:]}; the study models (eps or ig_steps "
                         "given) have seed 0.")
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, numbers.Real) or eps not in STUDY_RADII):
        raise ValueError(f"eps names a model of the training-radius study, one of {STUDY_RADII}, got {eps!r} (None: "
                         "the reference model at RAR's radius).")
    if seed:
        name = f"{dataset}-{method}-seed{int(seed)}"
    elif ig_steps is not None:
        name = f"{dataset}-study-{method}-ig{ig_steps}"
    elif eps is not None:
        name = f"{dataset}-study-{method}" if method == "natural" else f"{dataset}-study-{method}-eps{eps:g}"
    else:
        name = f"{dataset}-{method}"
    if name not in REFERENCE:
        raise ValueError(f"the reference zoo has no model {name!r} ({dataset}, {method}, eps={eps}, "
                         f"ig_steps={ig_steps}); it holds {sorted(REFERENCE)}.")
    if ig_steps is not None and eps is not None and REFERENCE[name].eps != eps:
        raise ValueError(f"the IG-steps study's model {name!r} is trained at radius {REFERENCE[name].eps:g}, not "
                         f"{eps!r}; leave eps out (or give {REFERENCE[name].eps:g}).")
    return name
ZOO_ROOT = Path(__file__).resolve().parents[1] / "zoo"  # the committed weights (ATTRBOUND_ZOO overrides)
ZOO_ENV = "ATTRBOUND_ZOO"
# The evaluation recorded in a manifest: clean accuracy on the whole test split; clean and PGD accuracy (RAR's
# PGD steps and step size, the step size scaled to the training radius) on its first EVAL_N images.
EVAL_N = 1000
BUILD_COMMAND = "attrbound zoo build --only {name}"


def zoo_root(root: str | os.PathLike | None = None) -> Path:
    """The reference zoo's folder: ``root``, else ``$ATTRBOUND_ZOO``, else ``<project>/zoo``.

    Raises:
        TypeError: ``root`` is not a string, a path or None.
        ValueError: the folder is an existing file, or ``root`` an empty string.
    """
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root (the zoo's folder) must be a string, a pathlib.Path or None, got "
                        f"{type(root).__name__} {root!r}.")
    if isinstance(root, str) and not root.strip():
        raise ValueError("root (the zoo's folder) is an empty string (an unset shell variable?); pass the folder, "
                         "or None for the committed zoo.")
    return _refuse_file_root(Path(root if root is not None else os.environ.get(ZOO_ENV) or ZOO_ROOT))


def _existing_root(root: str | os.PathLike | None, name: str | None = None) -> Path:
    """``zoo_root(root)``, refused if it is not a folder (a misspelt root is not an empty zoo).

    Raises:
        FileNotFoundError: the folder does not exist (the message names it, where it came from, and the command that
            builds a zoo there: reference model ``name``, when given).
    """
    path = zoo_root(root)
    if not path.is_dir():
        source = "" if root else f" (from ${ZOO_ENV})" if os.environ.get(ZOO_ENV) else " (the default root)"
        build = BUILD_COMMAND.format(name=name) if name is not None else "attrbound zoo build"
        raise FileNotFoundError(f"no zoo at {path}{source}: the folder does not exist; pass the folder that holds "
                                f"the zoo (root=, `--root` or ${ZOO_ENV}; default {ZOO_ROOT}), or create a zoo there "
                                f"with `{build} --root {path}`.")
    return path


def _rebuild_command(name: str, root: str | os.PathLike | None) -> str:
    """The command that (re)builds reference model ``name`` into ``root`` (``--root`` unless the default)."""
    command = BUILD_COMMAND.format(name=name)
    if root is not None and zoo_root(root).resolve() != zoo_root().resolve():
        command += f" --root {zoo_root(root)}"
    return command


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _names(only, what: str = "only") -> list[str]:
    """``only`` as a list of names (a single string is refused: it would be read letter by letter)."""
    if isinstance(only, str):
        raise TypeError(f"{what} must be a list of reference model names, got the string {only!r}; write "
                        f"[{only!r}].")
    return [str(n) for n in only]


def _reference(name: str) -> Recipe:
    if not isinstance(name, str) or name not in REFERENCE:
        raise ValueError(f"no reference model {name!r}; the zoo holds {sorted(REFERENCE)}.")
    return REFERENCE[name]


def read_manifest(name: str, root: str | os.PathLike | None = None) -> dict:
    """The manifest of reference model ``name`` (``<root>/<key>/manifest.json``), checked against its recipe.

    Raises:
        FileNotFoundError: the zoo's folder does not exist, or the model is not built (the message names the command
            that builds it).
        ValueError: the manifest is unreadable, belongs to another recipe, or was edited (its content does not
            match its ``content_sha256``, ``_manifest_digest``).
    """
    recipe = _reference(name)
    path = _existing_root(root, name) / recipe.key / "manifest.json"
    rebuild = _rebuild_command(name, root)
    if not path.is_file():
        raise FileNotFoundError(f"reference model {name!r} is not in the zoo ({path} is missing); build it with "
                                f"`{rebuild}`.")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable manifest ({err}); rebuild it with `{rebuild}`.") from None
    if not isinstance(manifest, dict) or manifest.get("recipe") != recipe.to_dict():
        raise ValueError(f"{path} records another recipe than {name!r}'s; rebuild it with `{rebuild}`.")
    for where, kinds in _MANIFEST_FIELDS.items():
        value = manifest
        for part in where.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(f"{path} lacks {where} (or it is not a {' or '.join(k.__name__ for k in kinds)}); the "
                             f"manifest is damaged: rebuild it with `{rebuild}`.")
    if manifest["key"] != recipe.key:
        raise ValueError(f"{path} records the key {manifest['key']!r}, not {recipe.key!r}; rebuild it with "
                         f"`{rebuild}`.")
    recorded = manifest.get("content_sha256", _COMMITTED_MANIFESTS.get(manifest["sha256"][:16]))
    if recorded is not None and _manifest_digest(manifest) != recorded:
        where = "its content_sha256" if "content_sha256" in manifest else "the committed zoo's record (zoo.py)"
        raise ValueError(f"{path} was edited after the model was built: its content (the evaluation, history and "
                         f"losses the zoo's readers report) does not match the sha256 {where} holds; restore it "
                         f"from git or rebuild it with `{rebuild}`.")
    return manifest


def _manifest_digest(manifest: Mapping) -> str:
    """The sha256 (16 hex digits) of a zoo manifest's content: its canonical JSON without ``content_sha256``.

    ``build_zoo`` records it as the manifest's ``content_sha256``; ``read_manifest`` checks it, so that an edited
    evaluation or history (which ``zoo list`` shows and ``accuracy_floor`` judges) is refused as an edited recipe is.
    The manifests committed before the field existed are checked against ``_COMMITTED_MANIFESTS``.

    Args:
        manifest: a manifest as ``read_manifest`` returns it.

    Returns:
        16 lowercase hex digits.
    """
    content = {key: value for key, value in manifest.items() if key != "content_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# The content digests (_manifest_digest) of the manifests committed before they recorded their own, by the first 16
# hex digits of their weights' sha256: a manifest that names these weights must be the one committed with them. A
# model rebuilt since has other weights and its own content_sha256.
_COMMITTED_MANIFESTS = {
    "5829a04a0f6d664f": "33c1a42d7cf16b64", "50b562361d393e28": "f9d5c476cc501c68",
    "5c7aa38405ca175c": "3701e6c08a7b7021", "3c198bd47ca30aad": "d35c96ed06529303",
    "98aef085bfe7b322": "e51a855ebdba3edd", "3effd840f3dee2c1": "11af4d72f3fe79e8",
    "ac95f0ebfd7e82f7": "47223f4cc31d2380", "1d7001da9e580ae0": "9863b02068def513",
    "cdeb3d2b5431827a": "8c4c91c2ba0e75c7", "3c48336cf6957d86": "2d2ec335c2259883",
    "56fa142cbb5a5cf8": "97c64daf7e8650cf", "e565b8bfb48427de": "1573c616b20e9756",
    "45ab6e9ad01ed4e8": "1a493f8ca56d54fc", "7d95313fa737151a": "cb80fe77a7efb188",
    "272368db0d4ccb19": "8e3e6da44805a490", "e9f636458880f9fe": "c62030cd2423d0fe",
    "f97b1c6f0c8995b4": "fb3b1c45df2dede3", "4b269edbd6d4f5c0": "ae5edbd3ed959dfe",
    "3d2e97357ad53385": "12fa25fc4b199e32", "364034f120015508": "b71efd38fadc17d8",
    "483081cd5bf5c598": "56c2f31683c4fd7c", "4a017cb60550107c": "ea5d0b5753f146f3",
    "cbe245dfbdd25909": "a1f4943354918245", "2ff2655c741435ef": "5d3ccbcd438b716c",
    "13d8c3761a6f0730": "41e2633471c77a53", "d062c224bb27a30a": "b5023a1f3443d9cb",
    "b873ce8fead8f58e": "e1204ecb5d05b470", "b841573df0d73d88": "48d35ec3f7d57ec1",
    "41080a7fc6f163a9": "403469f13ea59479", "6bbad0206a8854f2": "d349e6a26ac174e0",
    "55fe79761f438f11": "628124e89c85a4c5", "eedbeac808b1d724": "0a5d596b81679795",
    "4cf797421d1528b9": "e446eefbae0852c1", "5a8290e8da0ff4e7": "f9959c2d0e85a3f1",
    "1b475a645c9ffe77": "a54e5eafd0de53f4", "c609ac73cc6ce72c": "e4a9216c4a250039",
    "c125324f80db5e4c": "75fada145da298ec", "a5668d394b084c5d": "e7432e206cac3d8c",
    "77aeec6ae6b56f19": "f6c5a7b8ac5f6bb1", "6433dc0b0dbbe9c0": "f3ac59f040c43e1a",
    "0848471dbe6ccbc9": "23aa757016ad7f7b", "31870c0786dec575": "b36ae0be193d9f11",
    "a538511008e816e7": "d1b47f13b2bc9eb7", "349f7cb1fe40d827": "1d1d04463107143b",
    "1edbe57f95291ad8": "c717393a4e1ef870", "c3905f304cbab9c2": "0ec3c9c79e62a9ba",
    "0e28924af2b91bb1": "dfa8e67ec8699917", "e36be7d6b4910b75": "b2a497e8d502f6fa",
    "57a999957647c171": "54e0f8192ef6744d", "d3914d0b57ae9f60": "7f8803c7da8692ff",
    "3ecdef15167d8b8e": "87e35e6b28805c5f", "f56879d3d941eeae": "4cecc6482567f115",
    "71d8fe23d617e59c": "441be43f441f04e2", "3c499ac5c0e11c09": "3a894bdeec45873b",
    "d2e226ef5dc086ff": "b1449382d2830ba7", "a8c55b1a3989e8bd": "91e96c5914b8360c",
    "5e0d11a3d5923265": "8fb5e87a0271000b", "dc74e1dc541c9bd0": "10aca0b555077e4d",
    "87c292d80ce07d46": "573e2620e5a06c18", "d92a86a22de4c81c": "0ba6f14cfa0215ff",
    "14b72afddbcf2175": "e278823d8ad872e4", "1b611bbac0e9089e": "56fce54451e34bb7",
}


# What the zoo's readers take from a manifest (``build_zoo`` writes it), and of which JSON types.
_MANIFEST_FIELDS = {"key": (str,), "sha256": (str,), "size_bytes": (int,), "seconds": (int, float),
                    "history": (dict,), "batch_losses": (list,), "torch": (str,), "evaluation": (dict,),
                    "evaluation.clean_accuracy": (int, float), "evaluation.n_test": (int,),
                    "evaluation.subset": (dict,), "evaluation.subset.n": (int,),
                    "evaluation.subset.clean_accuracy": (int, float), "evaluation.subset.pgd_accuracy": (int, float),
                    "evaluation.subset.pgd": (dict,), "evaluation.subset.pgd.eps": (int, float)}


def load_reference(name: str, *, device: str | torch.device | None = None,
                   root: str | os.PathLike | None = None) -> tuple[nn.Module, dict]:
    """Reference model ``name`` in eval mode on ``device``, after checking its weights against the manifest's sha256.

    Args:
        name: a key of ``REFERENCE`` (``"mnist-advaat"``, ...).
        device: where to load it (``runtime.resolve_device``).
        root: the zoo's folder (``zoo_root``).

    Returns:
        ``(model, manifest)``; a model stored in float16 (``stored_dtype``) is returned in float32.

    Raises:
        FileNotFoundError: the zoo's folder does not exist, or the weights are missing; ValueError: they do not match
        the manifest (a corrupted or replaced file). Both name the model's folder, the file and the command that
        rebuilds it.
    """
    manifest = read_manifest(name, root)
    folder = zoo_root(root) / manifest["key"]
    weights = folder / "model.safetensors"
    rebuild = _rebuild_command(name, root)
    for file, key in ((weights, "sha256"), (folder / "model.json", "sidecar_sha256")):
        if not file.is_file():
            raise FileNotFoundError(f"reference model {name!r} in {folder}: {file.name} is missing; restore the folder "
                                    f"from git or rebuild it with `{rebuild}`.")
        if _sha256(file) != manifest.get(key):
            raise ValueError(f"reference model {name!r} in {folder}: {file.name} does not match the sha256 in its "
                             f"manifest (a corrupted or replaced file); restore the folder from git or rebuild it "
                             f"with `{rebuild}`.")
    model, _ = load_checkpoint(weights, device=resolve_device(device))
    half = next(model.parameters()).dtype == torch.float16
    return (model.float() if half else model), manifest  # stored in half: computed in float32


def _hardware(device: torch.device) -> dict:
    import platform

    processor = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        processor = names[0] if names else processor
    except OSError:
        pass
    info = {"machine": platform.machine(), "processor": processor,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def evaluate_reference(model: nn.Module, recipe: Recipe, device: str | torch.device | None = None,
                       data_root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None) -> dict:
    """The evaluation a manifest records.

    Clean accuracy on the whole test split; clean and PGD accuracy on its first ``EVAL_N`` images (one set for both),
    PGD with RAR's steps and step size (scaled to the radius) at the recipe's training radius (RAR's evaluation radius
    for natural training), one random start, seed 0.

    Returns:
        ``{"clean_accuracy", "n_test", "subset": {"n", "clean_accuracy", "pgd_accuracy", "pgd": {settings}}}``.
    """
    from .data import load_dataset
    from .evaluation import evaluate, protocol

    _check_recipe(recipe, "evaluate_reference")
    test = load_dataset(recipe.dataset, "test", root=data_root, mirror=mirror)
    rar = protocol(recipe.dataset)
    eps = recipe.train_eps or rar["eps"]
    pgd = dict(eps=eps, pgd_steps=rar["pgd_steps"], pgd_alpha=rar["pgd_alpha"] * eps / rar["eps"])
    whole = evaluate(model, test, recipe.dataset, n_pgd=0, n_attribution=0, device=device, progress=False)
    first = evaluate(model, (test.images[:EVAL_N], test.labels[:EVAL_N]), recipe.dataset, n_pgd=None,
                     n_attribution=0, seed=0, device=device, progress=False, **pgd)
    return {"clean_accuracy": whole["clean_accuracy"], "n_test": whole["n_clean"],
            "subset": {"n": first["n_clean"], "clean_accuracy": first["clean_accuracy"],
                       "pgd_accuracy": first["pgd_accuracy"], "pgd": {**pgd, "restarts": 1, "random_start": True,
                                                                      "seed": 0}}}


def build_zoo(only: list[str] | None = None, *, root: str | os.PathLike | None = None,
              work_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
              progress: bool = True, data_root: str | os.PathLike | None = None,
              mirror: str | os.PathLike | None = None, force: bool = False) -> pd.DataFrame:
    """Train the reference models that are missing (or all of ``only``), evaluate them and write their manifests.

    Each model trains in ``work_dir/<key>`` (default ``<root>/../_build/zoo-work``), saving its state after every
    epoch, so an interrupted build resumes where it stopped; the finished model's weights and manifest are then
    written atomically to ``<root>/<key>/``. A model whose manifest matches its recipe and whose weights match the
    manifest's hash is kept (``force`` rebuilds it). A model that starts from another (``Recipe.init``) is built
    after it. Folders of recipes that no longer exist (``stale_folders``) are removed.

    Args:
        only: names of ``REFERENCE`` to build (``None``: all).
        root: the zoo's folder (``zoo_root``).
        work_dir: where unfinished runs keep their state.
        device: where to train (``runtime.resolve_device``).
        progress: progress bars.
        data_root: the data cache.
        mirror: an offline data mirror.
        force: rebuild models that are already built.

    Returns:
        The zoo's table (``zoo_table``) after the build.

    Raises:
        ValueError: a name of ``only`` that is not in ``REFERENCE``.
    """
    from tqdm.auto import tqdm

    root, device = zoo_root(root), resolve_device(device)
    progress, force = check_flag(progress, "progress"), check_flag(force, "force")
    work = Path(work_dir) if work_dir is not None else root.parent / "_build" / "zoo-work"
    names = list(REFERENCE) if only is None else _names(only)
    for name in names:
        _reference(name)
    make_dirs(root)  # a new zoo
    by_key = {recipe.key: name for name, recipe in REFERENCE.items()}
    todo, seen = [], set()

    def add(name: str, requested: bool) -> None:
        recipe = REFERENCE[name]
        if recipe.init is not None:
            add(by_key[recipe.init.key], False)
        if name in seen:
            return
        seen.add(name)
        if (force and requested) or not _is_built(name, root):
            todo.append(name)

    for name in names:
        add(name, True)
    for folder in stale_folders(root):  # models of recipes that changed: their successors replace them
        import shutil

        shutil.rmtree(folder)
        if progress:
            tqdm.write(f"removed {folder}: no reference recipe has this key any more")
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for name in tqdm(todo, desc="reference zoo", disable=not progress):
            _build_one(name, root, work, device, progress, data_root, mirror)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    return zoo_table(root)


def _build_one(name: str, root: Path, work: Path, device, progress: bool, data_root, mirror) -> None:
    import shutil
    import time

    from tqdm.auto import tqdm

    from ._io import atomic_path

    recipe = REFERENCE[name]
    folder = work / recipe.key
    init_weights = None if recipe.init is None else root / recipe.init.key / "model.safetensors"
    t0 = time.perf_counter()
    model, sidecar = train_recipe(recipe, folder, init_seed=recipe_seed(recipe), device=device, progress=progress,
                                  data_root=data_root, mirror=mirror, init_weights=init_weights,
                                  metadata={"recipe": recipe.to_dict(), "name": name})
    stored = folder
    if stored_dtype(name) != torch.float32:  # rounded once, then evaluated and loaded as stored
        stored = folder / "stored"
        save_checkpoint(model.to(stored_dtype(name)), stored / "model.safetensors",
                        {**sidecar["metadata"], "stored_dtype": str(stored_dtype(name)).removeprefix("torch.")})
        model = load_checkpoint(stored / "model.safetensors", device=device)[0].float()
    history = pd.read_csv(folder / "history.csv")
    seconds = float(history["seconds"].sum())
    manifest = {"name": name, "key": recipe.key, "recipe": recipe.to_dict(),
                "training": recipe.train_config().to_dict(),
                "init": None if recipe.init is None else recipe.init.key,
                "history": history.to_dict(orient="list"), "batch_losses": _batch_losses(folder),
                "seconds": seconds, "wall_seconds": time.perf_counter() - t0,
                "hardware": _hardware(device), "torch": torch.__version__,
                "evaluation": evaluate_reference(model, recipe, device, data_root, mirror)}
    target = root / recipe.key
    make_dirs(target)
    for file in checkpoint_paths(stored):  # the weights and their sidecar (the architecture)
        with atomic_path(target / file.name) as tmp:
            shutil.copyfile(file, tmp)
    manifest["sha256"] = _sha256(target / "model.safetensors")
    manifest["sidecar_sha256"] = _sha256(target / "model.json")
    manifest["size_bytes"] = (target / "model.safetensors").stat().st_size
    manifest["content_sha256"] = _manifest_digest(manifest)
    with atomic_path(target / "manifest.json") as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    if progress:
        ev = manifest["evaluation"]
        tqdm.write(f"{name}: clean {ev['clean_accuracy']:.4f}, PGD {ev['subset']['pgd_accuracy']:.4f}, "
                   f"{seconds:.0f} s")


def stale_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """The model folders in the zoo whose key is no reference recipe's (left by a recipe that changed).

    A zoo folder that does not exist yet has none.

    Raises:
        TypeError: ``root`` is not a string, a path or None.
        ValueError: ``root`` is an existing file.
    """
    root, keys = zoo_root(root), {recipe.key for recipe in REFERENCE.values()}
    if not root.is_dir():
        return []
    return sorted(f for f in root.iterdir() if f.is_dir() and f.name not in keys and (f / "manifest.json").is_file())


def _batch_losses(folder: Path) -> list[float]:
    from safetensors import safe_open

    with safe_open(str(folder / "train_state.safetensors"), framework="pt") as fh:
        return json.loads(fh.metadata()["attrbound_train_state"])["batch_losses"]


def _is_built(name: str, root: Path) -> bool:
    try:
        manifest = read_manifest(name, root)
    except (FileNotFoundError, ValueError):
        return False
    folder = root / manifest["key"]
    return all((folder / name).is_file() and _sha256(folder / name) == manifest.get(key)
               for name, key in (("model.safetensors", "sha256"), ("model.json", "sidecar_sha256")))


def zoo_table(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per built reference model: data set, method, training radius, accuracies, seconds, size, key.

    Raises:
        FileNotFoundError: the zoo's folder does not exist (an existing folder without models gives an empty table).
        ValueError: a built model's manifest is unreadable (the message names it and the rebuild command).
    """
    _existing_root(root)
    rows = []
    for name, recipe in REFERENCE.items():
        try:
            m = read_manifest(name, root)
        except FileNotFoundError:  # not built
            continue
        ev = m["evaluation"]
        rows.append({"name": name, "dataset": recipe.dataset, "method": recipe.method, "train_eps": recipe.train_eps,
                     "n_train": recipe.n_train, "clean_accuracy": ev["clean_accuracy"],
                     "pgd_eps": ev["subset"]["pgd"]["eps"], "pgd_accuracy": ev["subset"]["pgd_accuracy"],
                     "seconds": m["seconds"], "size_mb": m["size_bytes"] / 1e6, "key": m["key"]})
    return pd.DataFrame(rows)


REPLAY_RTOL = 1e-4  # the first batches' losses, same CPU kind; other CPUs may differ more (see verify_zoo)
# Methods whose loss differentiates an attribution (a gradient of a gradient through softplus) amplify rounding: on
# CI's CPU (another model than the build machine's) their replays differed by up to 2.4e-3 (MNIST AAT with 2 IG
# steps), against at most 1e-4 for natural training and PGD-AT.
REPLAY_RTOL_ATTRIBUTION = 1e-2
ATTRIBUTION_LOSS_METHODS = frozenset({"ig_norm", "aat", "advaat"})
FULL_RETRAIN = "mnist-natural"  # the cheapest recipe, retrained in full by verify_zoo
FULL_RETRAIN_POINTS = 0.3  # its clean test accuracy must come within this many percentage points


def replay_losses(name: str, *, root: str | os.PathLike | None = None, device: str | torch.device | None = None,
                  data_root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
                  n_batches: int | None = None, data: Any = None) -> list[float]:
    """The losses of the first ``n_batches`` optimiser steps of reference recipe ``name``, retrained now.

    The run starts as the build's did (the recipe's seed, or the committed weights of ``recipe.init``) and stops after
    ``n_batches`` steps (default: as many as the manifest logged, ``training.FIRST_BATCHES``). ``data``: the recipe's
    training data if already loaded.
    """
    from .data import load_dataset
    from .training import FIRST_BATCHES

    recipe, root = _reference(name), zoo_root(root)
    if n_batches is not None:
        check_positive_int(n_batches, "n_batches")
    n_batches = n_batches or len(read_manifest(name, root)["batch_losses"]) or FIRST_BATCHES
    init_weights = None
    if recipe.init is not None:
        init_name = next(n for n, r in REFERENCE.items() if r.key == recipe.init.key)
        load_reference(init_name, root=root, device="cpu")  # checks the parent's hash
        init_weights = root / recipe.init.key / "model.safetensors"
    if data is None:
        data = load_dataset(recipe.dataset, "train", root=data_root, mirror=mirror, subset=recipe.n_train,
                            seed=recipe.seed)
    model = initial_model(recipe, recipe_seed(recipe), init_weights)
    history = train(model, data, recipe.train_config(), device=resolve_device(device), progress=False,
                    stop_after=n_batches)
    return history.attrs["batch_losses"]


def verify_zoo(only: list[str] | None = None, *, root: str | os.PathLike | None = None, full: bool = True,
               device: str | torch.device | None = "cpu", progress: bool = True,
               data_root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
               rtol: float | None = None, replay: list[str] | None = None) -> pd.DataFrame:
    """Check the committed zoo against its manifests and the current code.

    Per model: the weights and sidecar match the manifest's sha256 and load; the recipe retrained for its first
    ``FIRST_BATCHES`` optimiser steps reproduces the logged losses to ``rtol`` (relative; default ``REPLAY_RTOL``, and
    ``REPLAY_RTOL_ATTRIBUTION`` for the ``ATTRIBUTION_LOSS_METHODS``), which catches any change of what the training
    code computes. On the CPU that built the zoo, with its thread count (2), the replay is
    bit-identical; with 1 thread the float sums are reassociated and the 20 losses differed by up to 1.9e-6 relative
    (MNIST PGD-AT; 2.5e-7 natural MNIST, 3.9e-7 CIFAR PGD-AT), so 1e-4 leaves a factor of 50 for other CPUs of the
    same architecture; other vector units or a GPU (other kernels, TF32 off) were not measured and may need 1e-3. A
    change of the code's arithmetic (a loss, a step size, an augmentation) moves the losses by far more. With ``full``,
    ``FULL_RETRAIN`` is retrained in full and must reach its logged clean test accuracy within
    ``FULL_RETRAIN_POINTS`` percentage points. ``replay`` limits the replay to those models (the others are checked
    for their hashes and loading only): the test suite replays the seed-0 recipes and a sample of their reruns.
    The weights check reads the manifest (``read_manifest``): an edited evaluation or history fails it.

    Returns:
        One row per check: ``name, check, ok, detail``.

    Raises:
        FileNotFoundError: the zoo's folder does not exist.
        ValueError: a name of ``only`` or ``replay`` that is not in ``REFERENCE``, or a name of ``replay`` that is
            not among the models verified (``only``).
    """
    import tempfile

    from tqdm.auto import tqdm

    from .data import load_dataset
    from .evaluation import evaluate

    root = _existing_root(root)
    full, progress = check_flag(full, "full"), check_flag(progress, "progress")
    rtol = None if rtol is None else check_tol(rtol, "rtol")
    names = list(REFERENCE) if only is None else _names(only)
    replayed = set(names) if replay is None else set(_names(replay, "replay"))
    for name in (*names, *replayed):
        _reference(name)
    outside = sorted(replayed - set(names))
    if outside:
        raise ValueError(f"replay names {outside}, which are not among the models verified (only={names}): they "
                         "would not be replayed; add them to only, or drop them from replay.")
    rows, loaded = [], {}
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for name in tqdm(names, desc="verify zoo", disable=not progress):
            try:
                _, manifest = load_reference(name, root=root, device="cpu")
            except (FileNotFoundError, ValueError) as err:
                rows.append(dict(name=name, check="weights", ok=False, detail=str(err)))
                continue
            rows.append(dict(name=name, check="weights", ok=True, detail=f"sha256 {manifest['sha256'][:12]} loads"))
            if name not in replayed:
                continue
            logged, recipe = manifest["batch_losses"], REFERENCE[name]
            source = (recipe.dataset, recipe.n_train, recipe.seed if recipe.n_train is not None else 0)  # seed: subset
            if source not in loaded:
                loaded[source] = load_dataset(recipe.dataset, "train", root=data_root, mirror=mirror,
                                              subset=recipe.n_train, seed=recipe.seed)
            now = replay_losses(name, root=root, device=device, data=loaded[source])
            worst = max((abs(a - b) / max(abs(b), 1e-12) for a, b in zip(now, logged, strict=True)), default=0.0)
            tolerance = rtol if rtol is not None else (
                REPLAY_RTOL_ATTRIBUTION if recipe.method in ATTRIBUTION_LOSS_METHODS else REPLAY_RTOL)
            ok = len(now) == len(logged) and worst <= tolerance
            rows.append(dict(name=name, check=f"first {len(logged)} losses", ok=ok,
                             detail=f"max relative difference {worst:.2e} (tolerance {tolerance:g})"))
        if full and (only is None or FULL_RETRAIN in names):
            recipe, manifest = REFERENCE[FULL_RETRAIN], read_manifest(FULL_RETRAIN, root)
            with tempfile.TemporaryDirectory() as tmp:
                model, _ = train_recipe(recipe, tmp, init_seed=recipe_seed(recipe), device=device, progress=progress,
                                        data_root=data_root, mirror=mirror)
            test = load_dataset(recipe.dataset, "test", root=data_root, mirror=mirror)
            accuracy = evaluate(model, test, recipe.dataset, n_pgd=0, n_attribution=0, device=device,
                                progress=False)["clean_accuracy"]
            logged = manifest["evaluation"]["clean_accuracy"]
            gap = 100 * abs(accuracy - logged)
            rows.append(dict(name=FULL_RETRAIN, check="full retraining", ok=gap <= FULL_RETRAIN_POINTS,
                             detail=f"clean accuracy {accuracy:.4f} vs logged {logged:.4f} ({gap:.2f} points)"))
    finally:
        torch.use_deterministic_algorithms(deterministic)
    return pd.DataFrame(rows, columns=["name", "check", "ok", "detail"])
