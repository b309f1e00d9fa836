"""The book's profiles in one place: what each chapter trains, computes and attacks in ``ci`` and ``full``.

A chapter's notebook keeps its parameters in its ``parameters`` cell (papermill injects ``-p NAME VALUE``
there), holding the CI sizes; the ``full`` profile's sizes are here, as rules applied to those parameters
by ``chapter_settings`` (``AtLeast``: the larger of the two; ``Fixed``: the profile's value whatever the
parameter; ``Including``: the parameter's list with the profile's values added, sorted):

    settings = chapter_settings("full", "05_bounds", n_samples=16, ig_steps=8)
    settings.n_samples, settings.ig_steps          # 500, 32

``BOOK_PROFILES`` holds the training settings of the models of chapters 4 to 7 (``book_recipe``), and
``book_store`` where a build keeps them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..training import TRAINING_PROTOCOLS
from ..zoo import Recipe, get_model
from .runner import BOOK_OUT_ENV, PROFILES

__all__ = ["BOOK_PROFILES", "CHAPTERS", "CHAPTER_SIZES", "Rule", "AtLeast", "Fixed", "Including", "Settings",
           "chapter_settings", "check_profile", "book_recipe", "book_store"]

# The book's training settings per profile (reproduction choices, stated in chapter 4).
#   ci:   CPU-sized: 2,048 training images, 2 epochs, a quarter-width smooth CNN, 5 inner steps, smaller eps
#         than RAR (its radii need long schedules), 4 IG points inside IG-NORM.
#   full: paper scale (meant for a GPU): the whole training split (CIFAR-10: all 50,000 images), RAR's eps
#         and inner PGD (TRAINING_PROTOCOLS), the full-width CNN.
BOOK_PROFILES = {
    "ci": dict(datasets=("mnist", "fashion-mnist", "cifar10-subset"), n_train=2048,
               epochs={"mnist": 2, "fashion-mnist": 2, "cifar10-subset": 2},
               eps={"mnist": 0.1, "fashion-mnist": 0.05, "cifar10-subset": 4 / 255},
               width=0.25, steps=5, ig_steps=4),
    "full": dict(datasets=("mnist", "fashion-mnist", "cifar10"), n_train=None,
                 epochs={"mnist": 20, "fashion-mnist": 20, "cifar10": 40},
                 eps={name: TRAINING_PROTOCOLS[name]["eps"] for name in ("mnist", "fashion-mnist", "cifar10")},
                 width=1.0, steps=None, ig_steps=10),
}

CHAPTERS = ("02_bounds", "03_jacobians", "04_training", "05_bounds", "06_validation", "07_far", "08_speed",
            "09_reproducibility")


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
        "04_training": {"n_test": Fixed(None), "n_pgd": Fixed(None)},     # the whole test split
        "05_bounds": {"n_samples": AtLeast(500), "ig_steps": AtLeast(32)},
        "06_validation": {"n_samples": AtLeast(1000), "restarts": AtLeast(3), "steps": AtLeast(100),
                          "ig_steps": AtLeast(16), "eps_l2": Including((0.01, 0.05, 0.25, 1.0)),
                          "eps_linf": Including((0.001, 0.003, 0.1))},
        "07_far": {"n_ifia": Fixed(500), "restarts": Fixed(3), "eval_ig_steps": Fixed(100),  # RAR's evaluation
                   "attack_ig_steps": Fixed(10), "n_bound": Fixed(500), "ifia_steps": Fixed(None),  # None: RAR's
                   "train_eps_grid": Including((0.3,)), "ig_steps_grid": Including((64, 100))},
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
    def training(self) -> dict:
        """The profile's training settings (``BOOK_PROFILES``)."""
        return BOOK_PROFILES[self.profile]

    @property
    def model_dir(self) -> Path:
        """Where the build keeps the profile's models (``book_store("models", profile)``)."""
        return book_store("models", self.profile)

    @property
    def sweep_dir(self) -> Path:
        """Where the build keeps the profile's sweeps (``book_store("sweeps", profile)``)."""
        return book_store("sweeps", self.profile)

    def recipe(self, dataset: str, method: str, eps: float | None = None, **changes) -> Recipe:
        """``book_recipe(profile, dataset, method, eps, **changes)``."""
        return book_recipe(self.profile, dataset, method, eps, **changes)

    def model(self, dataset: str, method: str, eps: float | None = None, **changes):
        """The model of ``recipe(...)`` on ``device``: loaded from ``model_dir``, or trained now (``zoo.get_model``)."""
        return get_model(self.recipe(dataset, method, eps, **changes), self.model_dir, device=self.device,
                         progress=False)[0]


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


def book_recipe(profile: str, dataset: str, method: str, eps: float | None = None, **changes) -> Recipe:
    """The book's recipe for ``(dataset, method)`` in ``profile`` (``BOOK_PROFILES``).

    ``eps`` overrides the profile's training radius (chapter 7 varies it), ``changes`` other ``Recipe`` fields. Natural
    training ignores eps, so every chapter shares one natural model per data set.
    """
    if profile not in BOOK_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(BOOK_PROFILES)}.")
    p = BOOK_PROFILES[profile]
    if dataset not in p["datasets"]:
        raise ValueError(f"the {profile} profile trains on {p['datasets']}, not {dataset!r}.")
    options = {}
    if method != "natural":
        eps = p["eps"][dataset] if eps is None else eps
        protocol = TRAINING_PROTOCOLS[dataset]
        steps = p["steps"] or protocol["steps"]
        # RAR's step size scaled with the radius (full), or Madry's 2.5 eps / steps (ci)
        alpha = protocol["alpha"] * eps / protocol["eps"] if p["steps"] is None else 2.5 * eps / steps
        options = dict(steps=steps, alpha=alpha)
        if method == "ig_norm":
            options["ig_steps"] = p["ig_steps"]
    else:
        eps = None
    recipe = dict(dataset=dataset, method=method, eps=eps, epochs=p["epochs"][dataset], n_train=p["n_train"],
                  model=dict(width=p["width"], activation="softplus", beta=10.0, pool="avg"), options=options)
    recipe.update(changes)
    return Recipe(**recipe)


def book_store(kind: str, profile: str) -> Path:
    """Where the book keeps ``kind`` ("models", "sweeps", ...) for ``profile``.

    ``$ATTRBOUND_BOOK_OUT/<kind>/<profile>`` (``runner.BOOK_OUT_ENV``) while ``attrbound book`` runs, else
    ``<project>/_build/<kind>/<profile>`` (a notebook opened by hand reuses the models of the last build).
    """
    base = os.environ.get(BOOK_OUT_ENV) or Path(__file__).resolve().parents[2] / "_build"
    return Path(base) / kind / profile
