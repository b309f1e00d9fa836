"""The sweep file: its sections as validated models, and ``load_config``.

Every key is a field of one of the models below (declared, defaulted and validated there); the models of
the package are reused where a section is one of its settings: an attack is an ``experiments.AttackSpec``,
``bound`` is ``bounds.BoundOptions`` and a recipe's ``train`` section is a ``training.TrainConfig`` (plus
the training data: ``dataset``, ``subset``). Problems are reported with their key path
(``attacks[1].steps: must be a positive integer, got 0``).
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_serializer, model_validator

from .._checks import NORMS
from ..attacks import COMPILE_MODES
from ..attributions import ATTRIBUTIONS, IntegratedGradients
from ..bounds import BoundOptions
from ..config import (
    Config,
    ConfigError,
    Flag,
    Label,
    NonNegativeInt,
    OptionalNonNegativeFloat,
    OptionalNonNegativeInt,
    OptionalPositiveFloat,
    OptionalPositiveInt,
    PositiveFloat,
    PositiveInt,
    check_float,
    choice,
)
from ..data import DATASET_INFO, DATASETS
from ..experiments import AttackSpec, Tolerance
from ..training import TrainConfig

__all__ = ["SweepConfig", "SweepConfigError", "DataSection", "ModelEntry", "RecipeTraining", "Architecture",
           "AttributionEntry", "Tolerance", "load_config", "check_loaded"]

# IG's number of points where the sweep file gives none: IntegratedGradients' own default.
_IG_STEPS = inspect.signature(IntegratedGradients.__init__).parameters["n_steps"].default


class SweepConfigError(ValueError):
    """An invalid sweep config; the message starts with the key path of the offending entry."""


def _set(model: Config, **values: Any) -> None:
    """Fill in values inside a validator (no re-validation, no change of ``model_fields_set``)."""
    for name, value in values.items():
        object.__setattr__(model, name, value)


def _resolve_path(value: Any, info: ValidationInfo) -> str | None:
    """An absolute path; a relative one is taken from ``context["base"]`` (the YAML file's folder)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"must be a path (a string), got {value!r}")
    path = Path(value).expanduser()
    base = Path((info.context or {}).get("base") or Path.cwd())
    return str(path if path.is_absolute() else (base / path).resolve())


def _check_device(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^(auto|cpu|cuda(:\d+)?)$", value):
        raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {value!r}")
    return value


OptionalPath = Annotated[str | None, BeforeValidator(_resolve_path)]
Device = Annotated[str, BeforeValidator(_check_device)]


def _check_compile(value: Any) -> bool | str:
    if isinstance(value, bool) or value in COMPILE_MODES:
        return value
    raise ValueError(f"must be true, false or a torch.compile mode ({', '.join(COMPILE_MODES)}); got {value!r}")


CompileSetting = Annotated[Union[bool, str], BeforeValidator(_check_compile)]


class DataSection(Config):
    """``data:``, the evaluated samples.

    Args:
        name: the data set (``data.DATASETS``).
        split: ``"test"`` or ``"train"``.
        n_samples: how many samples (at most the split's size).
        subset_seed: ``None``: the first ``n_samples`` of the split; an int: a seeded random subset.
        root: the data cache (relative: from the config's folder); not part of the sweep's identity.
        mirror: an offline mirror (as ``root``); not part of the identity.
        download: whether the network may be used; not part of the identity.
    """

    name: choice(*DATASETS)
    split: choice("train", "test") = "test"
    n_samples: PositiveInt
    subset_seed: OptionalNonNegativeInt = None
    root: OptionalPath = None
    mirror: OptionalPath = None
    download: Flag = True

    @model_validator(mode="after")
    def _fits_the_split(self) -> DataSection:
        size = DATASET_INFO[self.name]["sizes"][self.split]
        if self.n_samples > size:
            raise ConfigError(f"must be at most {size} (the {self.name} {self.split} split), got {self.n_samples}",
                              loc=("n_samples",))
        return self


class Architecture(Config):
    """``models[i].model:``, a recipe's architecture: keyword arguments of ``models.model_for_dataset``.

    Args:
        width: width multiplier (0.25: the CPU-sized net of RAR's shape).
        activation: ``"softplus"`` (smooth) or ``"relu"``.
        beta: the softplus sharpness.
        pool: ``"avg"`` (smooth) or ``"max"``.
    """

    width: PositiveFloat = 1.0
    activation: choice("softplus", "relu") = "softplus"
    beta: PositiveFloat = 10.0
    pool: choice("avg", "max") = "avg"


class RecipeTraining(TrainConfig):
    """``models[i].train:``, every ``TrainConfig`` field plus the training data.

    Args:
        dataset: the training set (default: ``data.name``); its images must have the evaluated set's shape.
        subset: train on a seeded random subset of this size (seed: ``seed``, default the sweep's).
    """

    dataset: choice(*DATASETS, none=True) = None
    subset: OptionalPositiveInt = None

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        out = handler(self)
        if "alpha" not in self.model_fields_set:  # the derived default is not part of the file's content
            out["alpha"] = None
        return out


class ModelEntry(Config):
    """``models[i]``: a saved model (``checkpoint``) or a recipe (``train``, with ``model``).

    A recipe is trained once, into ``OUT/models/<name>/``.

    Args:
        name: the model's name in the table and its folder name.
        checkpoint: a ``model.safetensors`` (with its sidecar) of ``checkpoints.save_checkpoint``.
        train: the recipe's training (``RecipeTraining``).
        model: the recipe's architecture (``Architecture``; default its defaults).
    """

    name: Label
    checkpoint: OptionalPath = None
    train: RecipeTraining | None = None
    model: Architecture | None = None

    @classmethod
    def _prepare(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("train") is not None and data.get("model") is None:
            return {**data, "model": {}}  # a recipe's architecture defaults
        return data

    @model_validator(mode="after")
    def _one_source(self) -> ModelEntry:
        if (self.checkpoint is None) == (self.train is None):
            raise ConfigError("give exactly one of checkpoint (a saved model) or train (a recipe, with model)")
        if self.checkpoint is not None:
            if self.model is not None:
                raise ConfigError("only with train (a checkpoint records its own architecture)", loc=("model",))
            from ..checkpoints import checkpoint_paths
            weights, sidecar = checkpoint_paths(self.checkpoint)
            if not weights.is_file() or not sidecar.is_file():
                raise ConfigError(f"no checkpoint at {weights} (with its sidecar {sidecar.name}); save models with "
                                  "attrbound_lite.checkpoints.save_checkpoint or `attrbound train`",
                                  loc=("checkpoint",))
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        out = handler(self)
        keep = ("checkpoint",) if self.checkpoint is not None else ("train", "model")
        return {k: v for k, v in out.items() if k == "name" or k in keep}


class AttributionEntry(Config):
    """``attributions[i]``: a name, or ``{name: integrated_gradients, n_steps, baseline, internal_batch_size}``.

    Args:
        name: one of ``attributions.ATTRIBUTIONS``.
        n_steps: IG's points (default ``IntegratedGradients``'s).
        baseline: IG's constant baseline (``None``: zeros).
        internal_batch_size: IG's path points per backward pass.
    """

    name: choice(*ATTRIBUTIONS)
    n_steps: OptionalPositiveInt = None
    baseline: OptionalNonNegativeFloat = None
    internal_batch_size: OptionalPositiveInt = None

    @classmethod
    def _prepare(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if isinstance(data, Mapping) and data.get("name") == "integrated_gradients" and data.get("n_steps") is None:
            data = {**data, "n_steps": _IG_STEPS}
        return data

    @model_validator(mode="after")
    def _ig_only(self) -> AttributionEntry:
        if self.name != "integrated_gradients":
            for key in ("n_steps", "baseline", "internal_batch_size"):
                if getattr(self, key) is not None:
                    raise ConfigError("only for integrated_gradients", loc=(key,))
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        out = handler(self)
        return out if self.name == "integrated_gradients" else {"name": self.name}


class SweepConfig(Config):
    """A sweep file (see the docstring of ``attrbound_lite.sweep`` for an example).

    Args:
        seed: base of every derived seed.
        shard_size: samples per shard (the unit of work, of resuming and of distribution).
        batch_size: samples per batch inside a shard (default ``shard_size``).
        device: ``auto`` (cuda if available, else cpu), ``cpu``, ``cuda``, ``cuda:N``.
        chunk_size: rows per attack batch (every (sample, radius, restart) instance of a batch, norm and attack
            is a row); default: on CUDA as many as memory allows, on a CPU ``runtime.CPU_CHUNK``. Batch sizes
            can change the last bits of float sums, so a given size is part of the sweep's identity.
        compile: compile the attack step (``true`` or a ``torch.compile`` mode such as ``reduce-overhead``):
            a one-off compilation, then faster steps; results equal up to float rounding, so it is part of the
            sweep's identity when set.
        surrogate_beta: softplus surrogate for ReLU / max-pool models.
        data: the evaluated samples (``DataSection``).
        models: the models (``ModelEntry``), with distinct names.
        norms: ``l2`` and/or ``linf``.
        eps: one list of radii for every norm, or ``{norm: [eps, ...]}`` with a list per norm.
        attributions: names or ``AttributionEntry`` mappings, without repeats.
        restarts: random restarts of every attack (an attack may set its own).
        attacks: ``experiments.AttackSpec`` mappings, with distinct labels; their defaults are spelled out
            (``AttackSpec.resolved``) so that equivalent files have the same hash.
        bound: ``bounds.BoundOptions``.
        tolerance: ``Tolerance``.
    """

    seed: NonNegativeInt = 0
    shard_size: PositiveInt = 64
    batch_size: OptionalPositiveInt = None
    device: Device = "auto"
    chunk_size: OptionalPositiveInt = None
    compile: CompileSetting = False
    surrogate_beta: OptionalPositiveFloat = None
    data: DataSection
    models: list[ModelEntry]
    norms: list[choice(*NORMS)] = ["l2", "linf"]
    eps: dict[str, list[float]]
    attributions: list[AttributionEntry] = Field(["saliency"], validate_default=True)
    restarts: PositiveInt = 1
    attacks: list[AttackSpec]
    bound: BoundOptions = BoundOptions()
    tolerance: Tolerance = Tolerance()

    @field_validator("models", "norms", "attributions", "attacks", mode="before")
    @classmethod
    def _non_empty(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError(f"must be a non-empty list, got {value!r}")
        return value

    @field_validator("norms")
    @classmethod
    def _no_repeated_norms(cls, norms: list[str]) -> list[str]:
        if len(set(norms)) != len(norms):
            raise ValueError(f"has repeats: {norms}")
        return norms

    @field_validator("eps", mode="before")
    @classmethod
    def _eps_grid(cls, value: Any, info: ValidationInfo) -> dict[str, list[float]]:
        norms = info.data.get("norms")  # absent when norms is invalid: only the values are checked then
        if isinstance(value, Mapping):
            for key in value:
                if norms is not None and key not in norms:
                    raise ConfigError(f"unknown key; allowed keys here: {', '.join(norms)}", loc=(key,))
            for norm in norms or ():
                if norm not in value:
                    raise ConfigError("missing (required)", loc=(norm,))
            lists = [(norm, value[norm], (norm,)) for norm in (norms or value)]
        else:
            lists = [(norm, value, ()) for norm in (norms or NORMS)]
        grid = {}
        for norm, values, loc in lists:
            if not isinstance(values, list) or not values:
                raise ConfigError(f"must be a non-empty list, got {values!r}", loc=loc)
            floats = []
            for i, v in enumerate(values):
                try:
                    floats.append(check_float(v))
                except ValueError as err:
                    raise ConfigError(str(err), loc=loc + (i,)) from None
            if len(set(floats)) != len(floats):
                raise ConfigError(f"has repeats: {floats}", loc=loc)
            grid[norm] = floats
        return grid

    @model_validator(mode="after")
    def _across_sections(self) -> SweepConfig:
        _set(self, batch_size=self.batch_size or self.shard_size)
        names = [a.name for a in self.attributions]
        if len(set(names)) != len(names):
            raise ConfigError(f"has repeats: {names}", loc=("attributions",))
        shape = DATASET_INFO[self.data.name]["shape"]
        attacks = []
        for i, attack in enumerate(self.attacks):
            try:
                attack = attack.resolved(pixels=shape[1] * shape[2], restarts=self.restarts)
            except ConfigError as err:
                raise err.under("attacks", i) from None
            if attack.label in [a.label for a in attacks]:
                raise ConfigError(f"duplicate attack name {attack.label!r}; give each attack a distinct name",
                                  loc=("attacks", i, "name"))
            attacks.append(attack)
        _set(self, attacks=attacks)
        seen = set()
        for i, entry in enumerate(self.models):
            if entry.name in seen:
                raise ConfigError(f"duplicate model name {entry.name!r}", loc=("models", i, "name"))
            seen.add(entry.name)
            if entry.train is not None:
                _set(entry, train=self._recipe_training(entry, ("models", i)))
        return self

    def _recipe_training(self, entry: ModelEntry, loc: tuple) -> RecipeTraining:
        """A recipe's training with the sweep's defaults (seed, data set), checked against the evaluated data."""
        train = entry.train
        from ..training import ignored_options
        # the options set to other values than TrainConfig's defaults (a stored config spells out every field)
        typed = {name for name in train.model_fields_set if name in TrainConfig.model_fields
                 and getattr(train, name) != TrainConfig.model_fields[name].default}
        ignored = ignored_options(train.method, typed, train.attribution)  # the rule of train and `attrbound train`
        if ignored:
            raise ConfigError(" ".join(ignored), loc=(*loc, "train"))
        defaults = {"seed": self.seed} if "seed" not in train.model_fields_set else {}
        if train.dataset is None:
            defaults["dataset"] = self.data.name
        train = train.model_copy(update=defaults)
        limit = DATASET_INFO[train.dataset]["sizes"]["train"]
        if train.subset is not None and train.subset > limit:
            raise ConfigError(f"must be at most {limit} (the {train.dataset} training split), got {train.subset}",
                              loc=(*loc, "train", "subset"))
        from ..models import model_for_dataset, nonsmooth_modules
        arch = entry.model
        if self.surrogate_beta is None and nonsmooth_modules(model_for_dataset(train.dataset, **arch.to_dict())):
            raise ConfigError(f"activation {arch.activation!r} with pool {arch.pool!r} is not smooth: its attribution "
                              "Jacobian is zero or jumps, so the bounds refuse it. Use activation: softplus and pool: "
                              "avg, or set surrogate_beta (e.g. 10.0) at the top level", loc=(*loc, "model"))
        if DATASET_INFO[train.dataset]["shape"] != DATASET_INFO[self.data.name]["shape"]:
            raise ConfigError(f"{train.dataset} images do not fit the evaluated data set {self.data.name}",
                              loc=(*loc, "train", "dataset"))
        return train


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping.

    YAML requires unique keys; PyYAML keeps the last silently, so a radius written twice would sweep the second alone.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found the key {key!r} twice (YAML keys are "
                    "unique: keep one)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(source: str | os.PathLike | Mapping) -> dict:
    """The validated sweep config with every default filled in, from a YAML file or a mapping.

    Args:
        source: a YAML file, or its content as a mapping (relative paths then start at the working directory;
            from the YAML file's folder otherwise).

    Returns:
        A plain, JSON-serialisable dict (``SweepConfig.to_dict()``): what sweep folders store and hash.

    Raises:
        SweepConfigError: naming the file and the key path of each problem.
        FileNotFoundError: no file at ``source``.
        TypeError: ``source`` is neither a path nor a mapping.
    """
    if isinstance(source, Mapping):
        raw, base, where = dict(source), Path.cwd(), "sweep config"
    elif not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_config takes a YAML file (a string or path) or a mapping, got "
                        f"{type(source).__name__}.")
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no sweep config at {path}.")
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (safe)
        except UnicodeDecodeError as err:
            raise SweepConfigError(f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                                   f"{err.start}); save it as UTF-8, as YAML files are.") from None
        except yaml.YAMLError as err:
            raise SweepConfigError(f"{path} is not valid YAML: {err}") from None
        base, where = path.resolve().parent, str(path)
    if not isinstance(raw, Mapping):
        raise SweepConfigError(f"{where}: config: must be a mapping, got {type(raw).__name__} {raw!r}")
    try:
        return SweepConfig.parse(raw, context={"base": base}).to_dict()
    except ConfigError as err:
        raise SweepConfigError(f"{where}: {err}") from None


def check_loaded(cfg: Any, what: str) -> dict:
    """Return ``cfg`` if it is a config of ``load_config`` (every section and default filled in).

    The YAML file's own mapping (or a hand-written dict) lacks the defaults and keeps its shorthands (one ``eps``
    list for every norm, bare attribution names), which ``plan_shards`` and ``config_identity`` do not read.

    Args:
        cfg: the config.
        what: the function that takes it, for the message.

    Raises:
        TypeError: ``cfg`` is not a dict, or not one that ``load_config`` returns (the message names the fix).
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"{what} takes a config returned by load_config (a dict), got {type(cfg).__name__}; pass "
                        "load_config(path_or_mapping).")
    missing = [k for k in SweepConfig.model_fields if k not in cfg]
    data = cfg.get("data")
    if isinstance(data, dict):
        missing += [f"data.{k}" for k in DataSection.model_fields if k not in data]
    shapes = (isinstance(data, dict) and isinstance(cfg.get("eps"), dict)
              and all(isinstance(cfg.get(k), list) for k in ("models", "attributions", "attacks"))
              and all(isinstance(e, dict) and "name" in e for e in (*cfg["models"], *cfg["attributions"]))
              and all(isinstance(a, dict) and "restarts" in a for a in cfg["attacks"]))
    if missing or not shapes:
        lacks = f"lacks {missing[:6]}" if missing else "has its sections in another form"
        raise TypeError(f"{what} takes a config returned by load_config (every default filled in); the one given "
                        f"{lacks}, as the YAML file's own mapping does: pass load_config(path_or_mapping).")
    return cfg
