"""What ``experiments.validate_bounds`` is asked to run: attacks (``AttackSpec``), tolerances and the radius grid.

``AttackSpec`` declares one attack (``"pgd"``: ``AttributionPGD`` with a Euclidean or cosine objective, ``"ifia"``:
``IFIA``), its steps, restarts and step size; ``Tolerance`` the margins a violation must exceed. The private
helpers read the forms ``validate_bounds`` and ``bound_table`` accept (specs, names or dicts; one grid for every
norm or one per norm) into one, refusing the rest with the key at fault. ``experiments`` re-exports the public names.
"""

from __future__ import annotations

import numbers
from typing import ClassVar, Iterable, Mapping, Sequence

import numpy as np
import torch
from pydantic import ConfigDict, model_validator
from torch import nn

from ._checks import (
    NORMS,
    check_eps,
    check_names,
)
from .attacks import IFIA, AttributionAttack, AttributionPGD
from .attributions import ATTRIBUTIONS
from .bounds import BoundOptions
from .config import (
    Config,
    ConfigError,
    NonNegativeFloat,
    OptionalLabel,
    OptionalPositiveFloat,
    OptionalPositiveInt,
    PositiveInt,
    choice,
)

__all__ = ["AttackSpec", "Tolerance", "ATTACK_TYPES"]


ATTACK_TYPES = ("pgd", "ifia")


class AttackSpec(Config):
    """One attack of a validation run; ``resolved(pixels)`` spells out its defaults, ``build`` makes the attack.

    Args:
        type: ``"pgd"`` (``AttributionPGD``) or ``"ifia"`` (``IFIA``, top-k objective).
        name: its label in the table (default ``label``: ``"pgd"``, ``"pgd-cosine"`` or ``"ifia"``).
        steps: attack steps.
        relative_alpha: the step size as a fraction of eps, ``alpha = relative_alpha * eps`` (default
            ``RELATIVE_ALPHA[type]``: 0.25 for PGD, 0.125 for IFIA).
        objective: PGD's objective, ``"euclidean"`` or ``"cosine"`` (IFIA has the top-k objective).
        k: IFIA's top-k pixels (default ``max(1, round(K_FRACTION * pixels))``, 10% of the pixels of the
            saliency map).
        restarts: random restarts (default: the run's).
    """

    model_config = ConfigDict(frozen=True)

    RELATIVE_ALPHA: ClassVar[dict[str, float]] = {"pgd": 0.25, "ifia": 0.125}
    K_FRACTION: ClassVar[float] = 0.1

    type: choice(*ATTACK_TYPES)
    name: OptionalLabel = None
    steps: PositiveInt = 20
    relative_alpha: OptionalPositiveFloat = None
    objective: choice("euclidean", "cosine") = "euclidean"
    k: OptionalPositiveInt = None
    restarts: OptionalPositiveInt = None

    @classmethod
    def _prepare(cls, data):
        return {"type": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _per_type(self) -> AttackSpec:
        if self.type == "pgd" and self.k is not None:
            raise ConfigError("only for type ifia", loc=("k",))
        if self.type == "ifia" and self.objective != "euclidean":
            raise ConfigError("only for type pgd (IFIA uses the top-k objective)", loc=("objective",))
        return self

    @property
    def label(self) -> str:
        """The attack's name in the table: ``name``, else ``"pgd"``, ``"pgd-cosine"`` or ``"ifia"``."""
        if self.name is not None:
            return self.name
        return "pgd-cosine" if self.type == "pgd" and self.objective == "cosine" else self.type

    def resolved(self, pixels: int, restarts: int | None = None) -> AttackSpec:
        """This spec with every default spelled out (the one place the defaults are applied).

        Args:
            pixels: the number of pixels of a saliency map (``H * W``), for IFIA's ``k``.
            restarts: the run's restarts, filled in where ``restarts`` is None (left None if not given).

        Returns:
            An ``AttackSpec`` with ``relative_alpha`` set, and ``k`` for IFIA; equal specs give equal results.

        Raises:
            ConfigError: ``k`` larger than ``pixels``.
        """
        if isinstance(pixels, bool) or not isinstance(pixels, numbers.Integral) or pixels < 1:
            raise ConfigError(f"must be the positive number of pixels of a saliency map (H * W), got {pixels!r}",
                              loc=("pixels",))
        k = self.k
        if self.type == "ifia":
            if k is not None and k > pixels:
                raise ConfigError(f"must be at most {pixels} (the pixels of a saliency map), got {k}", loc=("k",))
            k = k if k is not None else max(1, round(self.K_FRACTION * pixels))
        alpha = self.relative_alpha if self.relative_alpha is not None else self.RELATIVE_ALPHA[self.type]
        return self.model_copy(update=dict(relative_alpha=alpha, k=k, restarts=self.restarts or restarts))

    def build(self, model: nn.Module, explainer, eps: float | torch.Tensor, norm: str, restarts: int,
              surrogate_beta: float | None, seed: int, pixels: int, compile: bool | str = False,
              alpha: float | torch.Tensor | None = None) -> AttributionAttack:
        """The attack for one radius (or a (B,) tensor of radii, one per input) and norm.

        One result per (restart, sample).

        Args:
            model: the attacked model.
            explainer: the attribution (an ``Attribution``).
            eps: the radius, or per-sample radii; the step size is ``alpha = relative_alpha * eps``.
            norm: ``"l2"`` or ``"linf"``.
            restarts: random restarts.
            surrogate_beta: softplus surrogate for the gradients of ReLU / max-pool models.
            seed: the attack's random stream.
            pixels: pixels of a saliency map, for IFIA's default ``k``.
            compile: compile the attack step (``AttributionAttack``).
            alpha: the step size(s), default ``relative_alpha * eps``.

        Returns:
            An ``AttributionPGD`` or ``IFIA`` with ``per_restart=True``.
        """
        spec = self.resolved(pixels)
        alpha = spec.relative_alpha * eps if alpha is None else alpha
        common = dict(eps=eps, alpha=alpha, steps=spec.steps, norm=norm, restarts=restarts,
                      surrogate_beta=surrogate_beta, seed=seed, per_restart=True, compile=compile)
        if spec.type == "pgd":
            return AttributionPGD(model, explainer, objective=spec.objective, **common)
        return IFIA(model, explainer, k=spec.k, kind="topk", **common)


def _attack_specs(attacks) -> list[AttackSpec]:
    if isinstance(attacks, (str, AttackSpec, Mapping)):
        attacks = [attacks]
    if not isinstance(attacks, Iterable):
        raise TypeError(f"attacks must be an attack (a type name {ATTACK_TYPES}, a dict or an AttackSpec) or a list "
                        f"of them, got {type(attacks).__name__}: {attacks!r}.")
    specs = []
    for i, item in enumerate(attacks):
        if not isinstance(item, (str, Mapping, AttackSpec)):
            raise TypeError(f"an attack must be a type name ({ATTACK_TYPES}), a dict or an AttackSpec, got "
                            f"{type(item).__name__}.")
        try:
            specs.append(AttackSpec.parse(item))
        except ConfigError as err:
            raise err.under("attacks", i) from None
    labels = [s.label for s in specs]
    if not specs or len(set(labels)) != len(labels):
        raise ValueError(f"attacks must be a non-empty list with distinct names, got {labels}; give each a name.")
    return specs


def _bound_options(options: Mapping | BoundOptions | None) -> dict:
    """The ``attribution_bound`` options that were given, validated by ``BoundOptions``.

    The others keep ``attribution_bound``'s defaults, which are ``BoundOptions``'s.
    """
    if options is None:
        return {}
    try:
        return BoundOptions.parse(options).model_dump(exclude_unset=True)
    except ConfigError as err:
        raise err.under("bound_options") from None


def _attribution_specs(attributions) -> list[tuple[str, dict]]:
    """``[(name, options)]`` from names, ``(name, options)`` pairs or dicts ``{"name": ..., **options}``."""
    if isinstance(attributions, (str, Mapping)):
        attributions = [attributions]
    out = []
    for item in attributions:
        if isinstance(item, str):
            name, options = item, {}
        elif isinstance(item, Mapping):
            options = dict(item)
            name = options.pop("name", None)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            name, options = item[0], dict(item[1])
        else:
            raise TypeError(f"an attribution must be a name, a (name, options) pair or a dict, got {item!r}.")
        if not isinstance(name, str) or name not in ATTRIBUTIONS:
            raise ValueError(f"unknown attribution {name!r}; choose one of {tuple(ATTRIBUTIONS)}.")
        out.append((name, options))
    names = [name for name, _ in out]
    if not out or len(set(names)) != len(names):
        raise ValueError(f"attributions must be a non-empty list without repeats, got {names}.")
    return out


def _radii_list(values, what: str) -> list:
    """A list of radii from a list, a tuple, an array or one number (Python, numpy or a 0-d tensor)."""
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list of radii (e.g. [0.01, 0.1]), got the string {values!r}.")
    if isinstance(values, numbers.Number) or (isinstance(values, (torch.Tensor, np.ndarray)) and values.ndim == 0):
        return [values]
    try:
        return list(values)
    except TypeError:
        raise TypeError(f"{what} must be a list of radii (e.g. [0.01, 0.1]), got {type(values).__name__}.") from None


def _eps_grid(eps_grid, norms: Sequence[str]) -> dict[str, list[float]]:
    """``{norm: [eps, ...]}`` from one list for every norm or a mapping norm -> list."""
    norms = list(check_names(norms, NORMS, "norms"))  # a str ("l2") is refused, not iterated letter by letter
    if len(set(norms)) != len(norms):
        raise ValueError(f"norms must be a non-empty list without repeats, got {list(norms)}.")
    if isinstance(eps_grid, Mapping):
        if set(eps_grid) != set(norms):
            raise ValueError(f"eps_grid has keys {sorted(eps_grid)} but norms are {sorted(norms)}; give one eps list "
                             "per norm.")
        grid = {n: _radii_list(eps_grid[n], f"eps_grid[{n!r}]") for n in norms}
    else:
        grid = {n: _radii_list(eps_grid, "eps_grid") for n in norms}
    for n, values in grid.items():
        if not values:
            raise ValueError(f"the eps grid of norm {n!r} is empty.")
        grid[n] = [check_eps(e) for e in values]
        if len(set(grid[n])) != len(grid[n]):
            raise ValueError(f"the eps grid of norm {n!r} has repeats: {grid[n]}.")
    return grid


class Tolerance(Config):
    """When a row counts as a violation of a bound (the sweep file's ``tolerance:``).

    Args:
        rtol: Euclidean: ``achieved > (1 + rtol) * bound``.
        cosine_atol: cosine: ``achieved < bound - cosine_atol``.
    """

    rtol: NonNegativeFloat = 0.01
    cosine_atol: NonNegativeFloat = 1e-3
