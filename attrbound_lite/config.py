"""Typed, validated settings: the base class of the project's configuration models and their field types.

Every setting of the package (``training.TrainConfig``, ``experiments.AttackSpec``, ``bounds.BoundOptions``,
``zoo.Recipe``, the sweep file of ``attrbound_lite.sweep``) is a field of a ``Config`` model: declared,
defaulted and validated in one place. ``Config`` is a pydantic v2 model that refuses unknown keys and
reports every problem with its key path, in the project's style::

    attacks[1].steps: must be a positive integer, got 0
    models[0].train.lr_decay: unknown key; allowed keys here: method, epochs, ...

Constructing a model directly (``TrainConfig(epochs=0)``) raises ``ConfigError`` (a ``ValueError``) with
that message; ``Config.parse(data, where=..., context=...)`` validates a mapping (e.g. a YAML file's
content) the same way. The field types below accept what YAML 1.1 produces (``1e-3`` without a dot is a
string there: it is read as a float where a float is expected) and refuse ``true``/``false`` where a
number is expected.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

__all__ = ["Config", "ConfigError", "key_path", "error_problems", "check_int", "check_float", "choice",
           "PositiveInt", "NonNegativeInt", "OptionalPositiveInt", "OptionalNonNegativeInt", "PositiveFloat",
           "NonNegativeFloat", "OptionalPositiveFloat", "OptionalNonNegativeFloat", "Flag", "Label", "OptionalLabel"]

Loc = tuple  # a key path: names (str) and list positions (int)


def key_path(loc: Sequence[str | int]) -> str:
    """``("attacks", 1, "steps")`` -> ``"attacks[1].steps"``.

    Args:
        loc: names (rendered ``.name``, the first without the dot) and list positions (rendered ``[i]``).

    Returns:
        The key path as a string (``""`` for the empty path).
    """
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class ConfigError(ValueError):
    """Invalid settings, with the key path of each problem.

    Args:
        problems: ``[(loc, problem), ...]`` (``loc`` a tuple of names and positions, see ``key_path``), or a
            single problem as a string (at the empty path).
        loc: with a string ``problems``, the path of that problem.

    The message is ``"path: problem"`` for each problem, joined by ``"; "`` (just ``"problem"`` at the empty
    path). ``problems`` keeps them structured, so that an enclosing model can prefix its own path.
    """

    def __init__(self, problems: Sequence[tuple[Loc, str]] | str, loc: Sequence[str | int] = ()):
        if isinstance(problems, str):
            problems = [(tuple(loc), problems)]
        self.problems = [(tuple(p_loc), str(p)) for p_loc, p in problems]
        super().__init__("; ".join(f"{key_path(p_loc)}: {p}" if p_loc else p for p_loc, p in self.problems))

    def under(self, *prefix: str | int) -> ConfigError:
        """The same problems, below ``prefix`` (e.g. ``under("attacks", 1)``)."""
        return ConfigError([(tuple(prefix) + p_loc, p) for p_loc, p in self.problems])


def error_problems(err: ValidationError) -> list[tuple[Loc, str]]:
    """``[(loc, problem), ...]`` of a pydantic ``ValidationError``, in the project's words.

    A ``ValueError`` raised by a validator gives its own message (a ``ConfigError`` its problems, below the
    validator's path); pydantic's own errors are reworded: ``missing`` -> ``missing (required)``,
    ``extra_forbidden`` -> ``unknown key``, others ``<pydantic's message>, got <value>``.

    Args:
        err: the error of ``BaseModel.model_validate`` or of a model's constructor.

    Returns:
        One ``(loc, problem)`` per problem, in pydantic's order.
    """
    out: list[tuple[Loc, str]] = []
    for e in err.errors(include_url=False):
        loc, cause = tuple(e["loc"]), (e.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):
            out.extend((loc + p_loc, p) for p_loc, p in cause.problems)
        elif isinstance(cause, BaseException):
            out.append((loc, str(cause)))
        elif e["type"] == "missing":
            out.append((loc, "missing (required)"))
        elif e["type"] == "extra_forbidden":
            out.append((loc, "unknown key"))
        elif e["type"] in ("frozen_instance", "frozen_field"):
            out.append((loc, "cannot be changed (the settings are frozen)"))
        else:
            msg = e["msg"]
            out.append((loc, f"{msg[:1].lower()}{msg[1:]}, got {e.get('input')!r}"))
    return out


class Config(BaseModel):
    """Base of the configuration models: validated fields, no unknown keys, errors with their key path.

    An unknown key's error lists the allowed keys; fields are validated by their types; the errors are
    ``ConfigError``.

    Fields may be given positionally in their declaration order, as with the dataclasses these models
    replace (``AttackSpec("pgd", steps=10)``). ``to_dict()`` is the plain (JSON-serialisable) content.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __init__(self, /, *args: Any, **data: Any) -> None:
        names = list(type(self).model_fields)
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments "
                            f"({', '.join(names)}), got {len(args)}.")
        for name, value in zip(names, args, strict=False):
            if name in data:
                raise TypeError(f"{type(self).__name__} got {name!r} both positionally and by keyword.")
            data[name] = value
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(error_problems(err)) from None

    # Validation (model_validate, nested models) bypasses this constructor, as it does pydantic's own: with a
    # "custom" __init__ pydantic would call it for nested models too and lose the validation context.
    __init__.__pydantic_base_init__ = True

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise ConfigError(error_problems(err)) from None

    @classmethod
    def parse(cls, data: Any, *, context: Mapping | None = None):
        """Validate ``data`` (a mapping or an instance) into this model.

        Args:
            data: the settings, e.g. a YAML file's content.
            context: passed to the validators (pydantic's validation context), e.g. the folder that
                relative paths are taken from.

        Returns:
            The model.

        Raises:
            ConfigError: naming the key path of each problem.
        """
        try:
            return cls.model_validate(data, context=dict(context or {}))
        except ValidationError as err:
            raise ConfigError(error_problems(err)) from None

    @classmethod
    def _prepare(cls, data: Any) -> Any:
        """Hook: turn shorthand input (e.g. a bare name) into a mapping before the keys are checked."""
        return data

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            return data
        data = cls._prepare(data)
        if not isinstance(data, Mapping):
            raise ConfigError(f"must be a mapping, got {type(data).__name__} {data!r}")
        for key in data:
            if key not in cls.model_fields:
                raise ConfigError(f"unknown key; allowed keys here: {', '.join(cls.model_fields)}", loc=(key,))
        return data

    def to_dict(self) -> dict:
        """The fields and their values as a plain dict (every default filled in).

        Returns:
            ``{field: value}`` in declaration order.
        """
        return self.model_dump()


# ----------------------------------------------------------------------------------------- field types
def check_int(value: Any, minimum: int = 1, none: bool = False) -> int | None:
    """``int(value)`` if it is an integer ``>= minimum`` (or ``None`` with ``none``), else ``ValueError``.

    Python and numpy integers (``np.int64(1)``) are integers; a bool is not.
    """
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"must be {kind}{' or null' if none else ''}, got {value!r}")
    return int(value)


def check_float(value: Any, positive: bool = True, none: bool = False) -> float | None:
    """``float(value)`` if it is a finite number ``> 0`` (``>= 0`` unless ``positive``), else ``ValueError``.

    ``None`` passes with ``none``. A string that reads as a number is one (YAML 1.1 reads ``1e-3`` as a
    string), as are numpy scalars (``np.float32(0.1)``); a bool is not.
    """
    if value is None and none:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        kind = "a positive number" if positive else "a non-negative number"
        raise ValueError(f"must be {kind}{' or null' if none else ''}, got {value!r}")
    return float(value)


def _check_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_label(value: Any) -> Any:
    if not isinstance(value, str) or not _LABEL.match(value):
        raise ValueError(f"must be a name of letters, digits, '_', '-', '.' (starting with a letter or digit), got "
                         f"{value!r}")
    return value


def choice(*values: str, none: bool = False) -> Any:
    """The type of a field that takes one of ``values``, refused as ``must be one of a, b; got 'c'``.

    Args:
        *values: the allowed strings.
        none: also allow ``None``.

    Returns:
        An ``Annotated`` type for a pydantic field.
    """
    def check(value: Any) -> Any:
        if value is None and none:
            return None
        if not isinstance(value, str) or value not in values:
            raise ValueError(f"must be one of {', '.join(values)}{' or null' if none else ''}; got {value!r}")
        return value
    return Annotated[Literal[values] | None if none else Literal[values], BeforeValidator(check)]


PositiveInt = Annotated[int, BeforeValidator(check_int)]
NonNegativeInt = Annotated[int, BeforeValidator(lambda v: check_int(v, 0))]
OptionalPositiveInt = Annotated[int | None, BeforeValidator(lambda v: check_int(v, 1, none=True))]
OptionalNonNegativeInt = Annotated[int | None, BeforeValidator(lambda v: check_int(v, 0, none=True))]
PositiveFloat = Annotated[float, BeforeValidator(check_float)]
NonNegativeFloat = Annotated[float, BeforeValidator(lambda v: check_float(v, positive=False))]
OptionalPositiveFloat = Annotated[float | None, BeforeValidator(lambda v: check_float(v, none=True))]
OptionalNonNegativeFloat = Annotated[float | None, BeforeValidator(lambda v: check_float(v, False, none=True))]
Flag = Annotated[bool, BeforeValidator(_check_flag)]
Label = Annotated[str, BeforeValidator(_check_label)]
"""A name usable as a folder name and a table label: letters, digits, ``_``, ``-``, ``.``."""
OptionalLabel = Annotated[str | None, BeforeValidator(lambda v: v if v is None else _check_label(v))]
