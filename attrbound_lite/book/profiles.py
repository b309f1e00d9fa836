"""The book's profiles in one place: what each chapter trains, computes and attacks in ``ci`` and ``full``.

A chapter's notebook keeps its parameters in its ``parameters`` cell (papermill injects ``-p NAME VALUE``
there), holding the CI sizes; the ``full`` profile's sizes are here, as rules applied to those parameters
by ``chapter_settings`` (``AtLeast``: the larger of the two; ``Fixed``: the profile's value whatever the
parameter; ``Including``: the parameter's list with the profile's values added, sorted):

    settings = chapter_settings("full", "05_bounds", n_samples=16, ig_steps=8)
    settings.n_samples, settings.ig_steps          # 500, 32

``BOOK_PROFILES`` holds each profile's data sets; the models are the reference zoo (``Settings.model``), and
``book_store`` says where a build keeps what it computes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..zoo import REFERENCE, get_model, load_reference, reference_name, zoo_root
from .runner import BOOK_OUT_ENV, EXECUTED_DIR, PROFILES, RETRAIN_ENV

__all__ = ["BOOK_PROFILES", "CHAPTERS", "CHAPTER_SIZES", "Rule", "AtLeast", "Fixed", "Including", "Settings",
           "chapter_settings", "default_settings", "check_profile", "book_store"]

# The book's models are the reference zoo (attrbound_lite.zoo.REFERENCE, committed weights; chapter 4 states
# every training choice) in both profiles; the profiles differ in how many images and steps the chapters spend.
BOOK_PROFILES = {
    "ci": dict(datasets=("mnist", "fashion-mnist", "cifar10-subset")),
    "full": dict(datasets=("mnist", "fashion-mnist", "cifar10-subset")),
}

# The notebooks' stems, in the book's order (_toc.yml): the number of a stem is its chapter's.
CHAPTERS = ("01_findings", "02_bounds", "03_jacobians", "04_training", "05_bounds", "06_validation", "07_far",
            "08_region", "09_certified", "10_sampled", "11_speed", "12_reproducibility")


class Rule:
    """How a profile changes a chapter's parameter: ``apply(given)`` is the value the chapter runs with.

    ``given`` is the parameter's value (its default in the notebook, or a ``-p`` override).
    """

    def apply(self, given):
        """The value the chapter runs with, from the parameter's value ``given``."""
        raise NotImplementedError


@dataclass(frozen=True)
class AtLeast(Rule):
    """The larger of the parameter and ``value`` (a larger ``-p`` value is kept)."""

    value: Any

    def apply(self, given):  # noqa: D102 (Rule.apply)
        return max(given, self.value)


@dataclass(frozen=True)
class Fixed(Rule):
    """``value``, whatever the parameter says."""

    value: Any

    def apply(self, given):  # noqa: D102 (Rule.apply)
        return self.value


@dataclass(frozen=True)
class Including(Rule):
    """The parameter's values and ``values``, sorted, without repeats."""

    values: tuple

    def apply(self, given):  # noqa: D102 (Rule.apply)
        return sorted(set(given) | set(self.values))


# Per profile and chapter: how the profile changes the chapter's parameters (their CI defaults are in the
# notebooks' parameters cells). The CI profile runs them as given.
CHAPTER_SIZES: Mapping[str, Mapping[str, Mapping[str, Rule]]] = {
    "ci": {},
    "full": {
        "02_bounds": {"grid_points": AtLeast(401)},                       # denser grids
        "03_jacobians": {"width": AtLeast(0.25), "ig_steps": AtLeast(16), "n_images": AtLeast(32)},
        "05_bounds": {"n_samples": AtLeast(500), "ig_steps": AtLeast(32)},
        "06_validation": {"n_samples": AtLeast(1000), "restarts": AtLeast(3), "steps": AtLeast(100),
                          "ig_steps": AtLeast(16), "eps_l2": Including((0.01, 0.05, 0.25, 1.0)),
                          "eps_linf": Including((0.001, 0.003, 0.1)),
                          "committed": Fixed(False)},  # its own l-inf sweep: the committed one is the CI size
        "07_far": {"n_ifia": AtLeast(500), "restarts": Fixed(3), "eval_ig_steps": Fixed(100),  # RAR's evaluation
                   "seeds": Including((0, 1, 2)), "ifia_steps": Fixed(None),  # None: RAR's steps
                   "committed": Fixed(False),  # attack every model now, on n_ifia images
                   "n_bound": AtLeast(128), "bound_ig_steps": AtLeast(16)},
        "08_region": {"n_images": AtLeast(200), "steps": AtLeast(20), "restarts": AtLeast(3),  # radii of 06's grid
                      "eps_l2": Including((0.001, 0.003, 0.03, 0.3)), "eps_linf": Including((0.0003, 0.003, 0.3))},
        "10_sampled": {"n_images": AtLeast(100), "eps_l2": Fixed(1.0)},  # radii of 08's grid
    },
}


def check_profile(profile) -> str:
    """``profile`` if it is one of ``PROFILES``, else ``ValueError``."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be 'ci' or 'full', got {profile!r}")
    return profile


@dataclass(frozen=True)
class Settings:
    """A chapter's settings in a profile, the torch seed, the device and where models and sweeps are kept.

    The settings are the chapter's parameters after the profile's rules (``settings.n_samples`` ...; ``datasets`` of
    ``None`` becomes the profile's data sets); the seed and the device are set by ``attrbound_lite.book.setup``.
    """

    profile: str
    chapter: str
    values: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    device: Any = None

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "values":
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"{self.chapter} settings have no {name!r}; they have {sorted(self.values)}"
                                 ) from None

    @property
    def model_dir(self) -> Path:
        """Where a build that retrains the zoo keeps its models (``book_store("models", profile)``)."""
        return book_store("models", self.profile)

    @property
    def executed_dir(self) -> Path:
        """Where this build's executed chapters are: ``OUT/source/notebooks`` (read by the Findings page)."""
        return book_store("source", "") / EXECUTED_DIR

    @property
    def sweep_dir(self) -> Path:
        """Where the build keeps the profile's sweeps (``book_store("sweeps", profile)``)."""
        return book_store("sweeps", self.profile)

    @property
    def retrain(self) -> bool:
        """Whether this build retrains the zoo from its recipes (``$ATTRBOUND_BOOK_RETRAIN=1``) rather than load it."""
        return os.environ.get(RETRAIN_ENV, "") == "1"

    def model(self, dataset: str, method: str, eps: float | None = None, ig_steps: int | None = None, seed: int = 0):
        """The reference model (``zoo.reference_name``, training seed ``seed``) on ``device``, in eval mode.

        Loaded from the committed zoo (its sha256 checked), or, when the build retrains (``retrain``), trained from its
        recipe into ``model_dir`` (``zoo.get_model``, resumable).
        """
        return self.load(reference_name(dataset, method, eps, ig_steps, seed))[0]

    def load(self, name: str):
        """``(model, manifest-or-sidecar)`` of reference model ``name``: loaded, or retrained (``retrain``)."""
        if self.retrain:
            return get_model(REFERENCE[name], self.model_dir, device=self.device, progress=False)
        return load_reference(name, device=self.device)

    def weights(self, dataset: str, method: str, eps: float | None = None, ig_steps: int | None = None) -> Path:
        """The weights file of the reference model (for a sweep, which loads its models from files)."""
        name = reference_name(dataset, method, eps, ig_steps)
        self.load(name)  # trains it when retraining, checks its hash otherwise
        root = self.model_dir if self.retrain else zoo_root()
        return root / REFERENCE[name].key / "model.safetensors"


def chapter_settings(profile: str, chapter: str, **parameters) -> Settings:
    """The settings of ``chapter`` (a notebook's stem) in ``profile`` from its ``parameters``.

    ``parameters``: the values of its parameters cell, papermill's overrides included. Each parameter the profile sizes
    (``CHAPTER_SIZES``) passes through its rule, the others are kept; a ``datasets`` of ``None`` becomes the profile's
    data sets. Every parameter the profile sizes must be passed.
    """
    check_profile(profile)
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; the book's chapters are {CHAPTERS}.")
    rules = CHAPTER_SIZES[profile].get(chapter, {})
    missing = sorted(set(rules) - set(parameters))
    if missing:
        raise ValueError(f"{chapter}: the {profile} profile sizes the parameters {missing}; pass them to "
                         "chapter_settings (the notebook's parameters cell defines them).")
    values = {name: rules[name].apply(value) if name in rules else value for name, value in parameters.items()}
    if "datasets" in values:
        values["datasets"] = list(values["datasets"] or BOOK_PROFILES[profile]["datasets"])
    return Settings(profile, chapter, MappingProxyType(values))


def default_settings(chapter: str, like: Settings, notebooks: str | Path | None = None) -> Settings:
    """The settings ``chapter`` runs with in ``like.profile`` by default, for a later chapter that reuses its results.

    The defaults of ``chapter``'s parameters cell through the profile's rules, restricted to ``like.datasets`` (the
    chapters that are reused compute per data set), with ``like``'s device; ``-p`` overrides given to ``chapter`` are
    not seen. ``notebooks``: the folder of the sources (default: the project's ``notebooks/``).
    """
    import ast
    import dataclasses

    from .runner import notebook_parameters, project_root

    path = Path(notebooks or project_root() / "notebooks") / f"{chapter}.ipynb"
    values = {name: ast.literal_eval(p["default"]) for name, p in notebook_parameters(path).items()
              if name != "profile"}
    if "datasets" in values:
        values["datasets"] = list(like.datasets)
    settings = chapter_settings(like.profile, chapter, **values)
    return dataclasses.replace(settings, seed=values.get("seed"), device=like.device)


def book_store(kind: str, profile: str) -> Path:
    """Where the book keeps ``kind`` ("models", "sweeps", ...) for ``profile``.

    ``$ATTRBOUND_BOOK_OUT/<kind>/<profile>`` (``runner.BOOK_OUT_ENV``) while ``attrbound book`` runs, else
    ``<project>/_build/<kind>/<profile>`` (a notebook opened by hand reuses the models of the last build).
    """
    base = os.environ.get(BOOK_OUT_ENV) or Path(__file__).resolve().parents[2] / "_build"
    return Path(base) / kind / profile
