"""Tables written for readers: models named by data set and method, radii as people write them, three digits.

reader_table(frame): a Styler with readable headers and names, 3 significant digits and no index column;
radius_label(8 / 255) is "8/255"; DATASET_NAMES["cifar10-subset"] is "CIFAR-10 subset".
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..stats import sig

__all__ = ["DATASET_NAMES", "METHOD_NAMES", "NORM_NAMES", "glue_key", "radius_label", "budget_label", "model_label",
           "readable", "reader_table"]

DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                 "cifar10-subset": "CIFAR-10 subset"}
METHOD_NAMES = {"natural": "natural", "pgd_at": "PGD-AT", "ig_norm": "IG-NORM", "aat": "AAT", "advaat": "AdvAAT"}
NORM_NAMES = {"l2": "ℓ2", "linf": "ℓ∞"}


def check_keyed_table(frame, what: str, keys, columns=(), source: str = "") -> None:
    """Refuse a table that is not a DataFrame, lacks ``keys`` or ``columns``, has no key in a row or repeats a key.

    Args:
        frame: the table.
        what: its name in the messages ("per_image", "the grid").
        keys: the columns that identify a row.
        columns: the other columns it must have.
        source: what makes such a table, named in the messages ("Study.by_method").
    """
    made = f" ({source})" if source else ""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a DataFrame{made}, got {type(frame).__name__}.")
    missing = [c for c in (*keys, *columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the columns {missing}; it needs {[*keys, *columns]}{made}.")
    empty = frame[list(keys)].isna().any(axis=1)
    if empty.any():
        raise ValueError(f"{int(empty.sum())} rows of {what} have no {'/'.join(keys)} (a concatenation of tables with "
                         "other columns?); fill or drop them.")
    repeated = frame.duplicated(subset=list(keys))
    if repeated.any():
        first = frame.loc[repeated, list(keys)].iloc[0].to_dict()
        raise ValueError(f"{what} holds {int(repeated.sum())} repeated rows, e.g. {first}; one row per "
                         f"{', '.join(keys)}.")


def glue_key(name: str) -> str:
    """``name`` as it appears in glue names: ``"fashion-mnist"`` -> ``"fashion_mnist"``."""
    return name.replace("-", "_")

ATTRIBUTION_NAMES = {"saliency": "saliency", "input_x_gradient": "input × gradient",
                     "integrated_gradients": "integrated gradients"}
ATTACK_NAMES = {"pgd": "attribution PGD", "ifia": "IFIA"}


def radius_label(eps: float | None) -> str:
    """A radius as people write it: ``0.3``, ``0.1``, ``8/255`` (a multiple of 1/255 below 0.1), ``"-"`` for none."""
    if eps is None or pd.isna(eps):
        return "-"
    eps = float(eps)
    k = eps * 255
    if 0 < eps < 0.1 and abs(k - round(k)) < 1e-6 and round(k) >= 1:
        return f"{round(k)}/255"
    return f"{eps:.4g}"


def budget_label(steps: int, restarts: int) -> str:
    """An attack's budget in words: ``"10 steps from one start"``, ``"100 steps from each of 3 starts"``."""
    steps, restarts = int(steps), int(restarts)
    where = "one start" if restarts == 1 else f"each of {restarts} starts"
    return f"{steps} step{'s' if steps != 1 else ''} from {where}"


def model_label(dataset: str, method: str) -> str:
    """``"MNIST, AdvAAT"``."""
    return f"{DATASET_NAMES.get(dataset, dataset)}, {METHOD_NAMES.get(method, method)}"


_VALUE_NAMES = {"dataset": DATASET_NAMES, "method": METHOD_NAMES, "model": METHOD_NAMES, "earlier": METHOD_NAMES,
                "norm": NORM_NAMES, "attribution": ATTRIBUTION_NAMES, "attack": ATTACK_NAMES}
_RADIUS_COLUMNS = ("eps", "train_eps", "pgd_eps")
# Column names a reader knows by their symbol (a table's own ``headers`` take precedence).
_HEADERS = {"eps": "ε", "train_eps": "training ε", "pgd_eps": "PGD ε", "sigma_max": "σmax"}


def readable(frame: pd.DataFrame, headers: dict[str, str] | None = None) -> pd.DataFrame:
    """A copy of ``frame`` (a DataFrame, a Series or a dict of columns) with readable names.

    Data sets, methods, norms, attributions, attacks and radii as people write them, True and False as "yes" and
    "no", columns renamed by ``headers`` (else ``_HEADERS``: ε for ``eps``, σmax for ``sigma_max``; ``_`` replaced by
    spaces), the index reset into columns when it carries names.
    """
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    elif isinstance(frame, dict):
        try:
            frame = pd.DataFrame(frame)
        except ValueError as err:
            raise ValueError(f"frame, a dict, must map column names to columns of one length: {err}") from None
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a table (a pandas DataFrame, a Series or a dict of columns), got "
                        f"{type(frame).__name__}.")
    out = frame.copy()
    if any(name is not None for name in out.index.names):
        out = out.reset_index()
    if "attribution" in out:  # 'integrated_gradients(m=16)', as benchmarks write it: 'integrated gradients (m = 16)'
        out["attribution"] = out["attribution"].map(lambda v: re.sub(
            r"^(\w+)\(m=(\d+)\)$", lambda m: f"{ATTRIBUTION_NAMES.get(m[1], m[1])} (m = {m[2]})", v)
            if isinstance(v, str) else v)
    for column, names in _VALUE_NAMES.items():
        if column in out:
            out[column] = out[column].map(lambda v, names=names: names.get(v, v))
    for column in out.columns:  # a reader's words, not Python's True and False
        if out[column].dtype == bool or out[column].map(lambda v: isinstance(v, (bool, np.bool_))).all():
            out[column] = out[column].map(lambda v: "yes" if v else "no")
    for column in _RADIUS_COLUMNS:
        if column in out:
            out[column] = out[column].map(lambda v: v if isinstance(v, str) else radius_label(v))  # (once)
    return out.rename(columns=lambda c: (headers or {}).get(c, _HEADERS.get(c, str(c).replace("_", " "))))


def reader_table(frame: pd.DataFrame, caption: str | None = None, headers: dict[str, str] | None = None):
    """``readable(frame)`` as a Styler: numbers with three significant digits, no index column, an optional caption."""
    out = readable(frame, headers)
    styler = out.style.hide(axis="index").format(lambda v: sig(v) if isinstance(v, float) else v)
    return styler.set_caption(caption) if caption else styler
