"""The book's figures in one consistent style (matplotlib + seaborn).

Every function returns a ``matplotlib.figure.Figure`` and leaves displaying it to the caller (the book's
notebooks glue it with ``myst_nb.glue`` and close it). Call ``set_style()`` once per notebook.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

__all__ = ["set_style", "COLORS", "bounds_2d_figure", "worst_case_figure", "attribution_maps_figure",
           "surrogate_figure", "jacobian_heatmap_figure"]

_PALETTE = sns.color_palette("colorblind")
COLORS = {"bound": _PALETTE[3], "worst": _PALETTE[0], "linear": _PALETTE[2], "mean_value": _PALETTE[4],
          "point": "black", "ball": _PALETTE[1], "region": ("#e8eef7", "#f7ece8")}


def set_style() -> None:
    """Seaborn's white grid, the colour-blind palette, figure sizes readable in the static HTML.

    In a kernel it also registers the PNG formatter for figures, so that ``myst_nb.glue`` stores an image
    even under a non-interactive backend (the book executes with ``MPLBACKEND=agg``, where IPython would
    otherwise keep only the figure's text repr)."""
    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (7.0, 4.0),
                         "axes.titlesize": "medium", "legend.fontsize": "small", "image.cmap": "viridis"})
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


def bounds_2d_figure(model, x, eps: float, attribution, jacobian, span: float = 1.5, points: int = 361):
    """The paper's Figure 1(a), in our reading: (a) the input ball around ``x`` over the decision regions;
    (b) attribution space: ``A(x)``, the true image of the ball's boundary, its linearisation
    ``A(x) + J d`` (an ellipse), the Euclidean bound (the circle of radius ``eps sigma_max``) and the two
    tangents from the origin that give the cosine bound."""
    x = x.reshape(1, 2).double()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.4))
    # (a) input space
    g = np.linspace(-span, span, 241)
    gx, gy = np.meshgrid(g + _np(x)[0, 0], g + _np(x)[0, 1])
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1))
    with torch.no_grad():
        cls = model(grid).argmax(1).reshape(gx.shape).numpy()
        c = int(model(x).argmax(1))
    ax0.contourf(gx, gy, cls, levels=[-0.5, 0.5, 1.5], colors=list(COLORS["region"]))
    ax0.contour(gx, gy, cls, levels=[0.5], colors="0.4", linewidths=1)
    t = np.linspace(0, 2 * math.pi, points)
    x0 = _np(x)[0]
    ax0.plot(x0[0] + eps * np.cos(t), x0[1] + eps * np.sin(t), color=COLORS["ball"], label=r"$\|d\|_2 \leq \epsilon$")
    sq = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]]) * eps + x0
    ax0.plot(sq[:, 0], sq[:, 1], "--", color=COLORS["ball"], label=r"$\|d\|_\infty \leq \epsilon$")
    ax0.plot(*x0, "o", color=COLORS["point"], label=f"$x$ (class {c})")
    ax0.set(title="(a) input space", xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax0.legend(loc="lower left")
    # (b) attribution space
    d = torch.tensor(np.stack([eps * np.cos(t), eps * np.sin(t)], 1))
    target = torch.full((points,), c, dtype=torch.long)
    a0 = _np(attribution(x, target=torch.tensor([c])))[0]
    image = _np(attribution(x + d, target=target))
    J = _np(jacobian)
    linear = a0 + _np(d) @ J.T
    r = eps * np.linalg.norm(J, 2)
    ax1.plot(image[:, 0], image[:, 1], color=COLORS["worst"], label=r"$A(x + d)$, $\|d\|_2 = \epsilon$")
    ax1.plot(linear[:, 0], linear[:, 1], "--", color=COLORS["linear"], label=r"$A(x) + J d$")
    ax1.plot(a0[0] + r * np.cos(t), a0[1] + r * np.sin(t), color=COLORS["bound"],
             label=r"bound: radius $\epsilon\,\sigma_{\max}(J)$")
    a = np.linalg.norm(a0)
    if r < a:  # tangents from the origin to the bound circle
        half = math.asin(r / a)
        base = math.atan2(a0[1], a0[0])
        length = math.sqrt(a * a - r * r)
        for sgn in (-1, 1):
            ang = base + sgn * half
            ax1.plot([0, 1.15 * length * math.cos(ang)], [0, 1.15 * length * math.sin(ang)], ":",
                     color=COLORS["bound"], lw=1)
    ax1.plot(0, 0, "+", color="0.3", ms=10)
    ax1.plot(*a0, "o", color=COLORS["point"], label="$A(x)$")
    ax1.set(title="(b) attribution space", xlabel="$A_1$", ylabel="$A_2$", aspect="equal")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def worst_case_figure(table, models=None):
    """Worst case on a dense grid against the practical bound and the mean-value bound, by eps; one
    panel per model. ``table`` has columns model, eps, bound, worst_case, mean_value_bound."""
    models = list(dict.fromkeys(table["model"])) if models is None else models
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    for ax, name in zip(axes[0], models):
        sub = table[table["model"] == name]
        ax.plot(sub["eps"], sub["bound"], "o-", color=COLORS["bound"], label=r"practical bound $\epsilon\,\sigma_{\max}(J(x))$")
        ax.plot(sub["eps"], sub["mean_value_bound"], "s--", color=COLORS["mean_value"],
                label=r"mean-value bound $\epsilon \max_{\|d\| \leq \epsilon} \sigma_{\max}(J(x+d))$")
        ax.plot(sub["eps"], sub["worst_case"], "x-", color=COLORS["worst"], label="worst case (dense grid)")
        ax.set(xscale="log", yscale="log", xlabel=r"$\epsilon$ ($\ell_2$)", ylabel=r"$\|A(x+d) - A(x)\|_2$",
               title=name)
    axes[0][0].legend(loc="upper left")
    fig.tight_layout()
    return fig


def attribution_maps_figure(image, maps: dict):
    """An input image (C, H, W) in [0, 1] and its attribution maps (channel-summed absolute values)."""
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2.6 * (len(maps) + 1), 2.9))
    img = _np(image)
    axes[0].imshow(np.transpose(img, (1, 2, 0)) if img.shape[0] == 3 else img[0], cmap="gray")
    axes[0].set_title("input")
    for ax, (name, attr) in zip(axes[1:], maps.items()):
        ax.imshow(np.abs(_np(attr)).sum(0), cmap="magma")
        ax.set_title(name)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
    fig.tight_layout()
    return fig


def surrogate_figure(table):
    """The softplus surrogate as beta grows: distance of its saliency map to the ReLU network's, and the
    spectral norm of its saliency Jacobian. ``table``: columns beta, relative_distance, sigma_max."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax0.plot(table["beta"], table["relative_distance"], "o-", color=COLORS["worst"])
    ax0.set(xscale="log", yscale="log", xlabel=r"$\beta$",
            ylabel=r"$\|A_\beta(x) - A_{\mathrm{ReLU}}(x)\| / \|A_{\mathrm{ReLU}}(x)\|$",
            title="(a) surrogate saliency tends to ReLU saliency")
    ax1.plot(table["beta"], table["sigma_max"], "o-", color=COLORS["bound"])
    ax1.set(xscale="log", yscale="log", xlabel=r"$\beta$", ylabel=r"$\sigma_{\max}(H_\beta(x))$",
            title="(b) ... while its curvature grows")
    fig.tight_layout()
    return fig


def jacobian_heatmap_figure(jacobian, k: int = 100):
    """The paper's Figure 1(b): absolute values of the first ``k`` x ``k`` entries of an attribution
    Jacobian, on a log colour scale."""
    from matplotlib.colors import LogNorm

    block = np.abs(_np(jacobian)[:k, :k])
    positive = block[block > 0]
    vmin = max(positive.min(), positive.max() * 1e-6) if positive.size else 1e-12
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    im = ax.imshow(np.maximum(block, vmin), norm=LogNorm(vmin=vmin, vmax=max(block.max(), vmin * 10)),
                   cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, label=r"$|J_{ij}|$")
    ax.set(xlabel="input dimension $j$", ylabel="attribution dimension $i$")
    ax.grid(False)
    fig.tight_layout()
    return fig
