"""The book's figure style (matplotlib + seaborn), shared by every chapter's figure functions.

``set_style()`` once per notebook (``attrbound_lite.book.setup`` does); the palette (``COLORS`` for the bounds
and attacks, ``METHOD_COLORS``: one colour per training method in every figure) and small drawing helpers. Each
chapter's figures live beside its helper module (``jacobians``, ``validation_figures``, ``far``, ...): every
figure function returns a ``matplotlib.figure.Figure`` and leaves displaying it to the caller (the book's notebooks
glue it with ``myst_nb.glue`` and close it). What a chapter claims (a benchmark's target, a panel title that states
a finding) is passed in by the chapter; the figure functions only draw.

Needs the ``book`` extra (matplotlib, seaborn): ``pip install 'attrbound-lite[book]'``.
"""

from __future__ import annotations

import math

try:
    import matplotlib.pyplot as plt
    import seaborn as sns
except ImportError as err:  # the core package does not need them; the book does
    raise ImportError(f"the book's figures ({__name__}) need matplotlib and seaborn ({err}): they come with the "
                      "`book` extra, pip install 'attrbound-lite[book]' (or `make venv-book`).") from err
import numpy as np
import torch

__all__ = ["set_style", "COLORS", "METHOD_ORDER", "METHOD_COLORS", "method_color", "plt", "sns"]


_PALETTE = sns.color_palette("colorblind")
COLORS = {"bound": _PALETTE[3], "worst": _PALETTE[0], "linear": _PALETTE[2], "mean_value": _PALETTE[4],
          "point": "black", "ball": _PALETTE[1], "region": ("#e8eef7", "#f7ece8")}
METHOD_ORDER = ["natural", "pgd_at", "ig_norm", "aat", "advaat"]
# One colour per training method in every figure, from the colour-blind palette: blue, orange, green, pink, brown
# (its vermillion, next to PGD-AT's orange, is left out, and it is the bounds' colour).
_METHOD_SHADES = (0, 1, 2, 4, 5)
METHOD_COLORS = dict(zip(METHOD_ORDER, (_PALETTE[i] for i in _METHOD_SHADES), strict=True))
_OTHER_SHADES = [i for i in range(len(_PALETTE)) if i not in _METHOD_SHADES and i != 3]


def method_color(method: str, fallback: int = 0):
    """The colour of a training method (``METHOD_COLORS``), or another palette colour for another name."""
    return METHOD_COLORS.get(method, _PALETTE[_OTHER_SHADES[fallback % len(_OTHER_SHADES)]])


def set_style() -> None:
    """Seaborn's white grid, the colour-blind palette, figure sizes readable in the static HTML.

    In a kernel it also registers the PNG formatter for figures, so that ``myst_nb.glue`` stores an image
    even under a non-interactive backend (the book executes with ``MPLBACKEND=agg``, where IPython would
    otherwise keep only the figure's text repr).
    """
    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (7.0, 4.0),
                         "axes.titlesize": "medium", "legend.fontsize": "small", "image.cmap": "viridis",
                         # log axes: 0.01 ... 100 as plain numbers (minor labels "4", "6", not "4×10⁰")
                         "axes.formatter.min_exponent": 3})
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "display_formatter"):
        from matplotlib.figure import Figure

        def _png(fig):
            import io
            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
            return buf.getvalue()

        shell.display_formatter.formatters["image/png"].for_type(Figure, _png)


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)


def _model_labels(table) -> dict:
    return {m: f"{m}\nn = {int(n):,}" for m, n in dict(zip(table["model"], table["n"], strict=True)).items()}


def _isna(value) -> bool:
    """``value`` is None or NaN (without importing pandas here)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _methods(values) -> list[str]:
    present = list(dict.fromkeys(values))
    return [m for m in METHOD_ORDER if m in present] + [m for m in present if m not in METHOD_ORDER]


def _lognorm(values):
    from matplotlib.colors import LogNorm
    return LogNorm(float(np.min(values)), float(np.max(values)))


_NORM_TEX = {"l2": r"$\ell_2$", "linf": r"$\ell_\infty$"}


def _datasets(values) -> list[str]:
    """The data sets among ``values`` in the book's order (MNIST, Fashion-MNIST, CIFAR-10)."""
    from .tables import DATASET_NAMES

    present = list(dict.fromkeys(values))
    return [d for d in DATASET_NAMES if d in present] + [d for d in present if d not in DATASET_NAMES]


def _errorbar(ax, xs, intervals, **kwargs):
    est = np.array([i.estimate for i in intervals])
    err = np.array([[i.estimate - i.low for i in intervals], [i.high - i.estimate for i in intervals]])
    return ax.errorbar(xs, est, yerr=err, capsize=3, **kwargs)
