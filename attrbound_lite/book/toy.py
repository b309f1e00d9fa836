"""Chapter 2's figures: the first-order bounds against the worst case on the toy problems of ``attrbound_lite.toy``.

Needs the ``book`` extra (matplotlib, seaborn), as every figure of the book (``style``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .style import COLORS, _np, plt

__all__ = ["bounds_2d_figure", "worst_case_figure"]


def bounds_2d_figure(model, x, eps: float, attribution, jacobian, span: float = 1.5, points: int = 361):
    """The paper's Figure 1(a), in our reading: (a) the input ball; (b) attribution space.

    (a) The ball around ``x``, over the decision regions. (b) ``A(x)``, the true image of the ball's boundary, its
    linearisation ``A(x) + J d`` (an ellipse), the Euclidean bound (the circle of radius ``eps sigma_max``) and the two
    tangents from the origin that give the cosine bound.
    """
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
    """Worst case on a dense grid against the practical bound and the mean-value bound, by eps; one panel per model.

    ``table`` has columns model, eps, bound, worst_case, mean_value_bound.
    """
    models = list(dict.fromkeys(table["model"])) if models is None else models
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4.4), squeeze=False)
    for ax, name in zip(axes[0], models, strict=True):
        sub = table[table["model"] == name]
        ax.plot(sub["eps"], sub["bound"], "o-", color=COLORS["bound"],
                label=r"practical bound $\epsilon\,\sigma_{\max}(J(x))$")
        ax.plot(sub["eps"], sub["mean_value_bound"], "s--", color=COLORS["mean_value"],
                label=r"mean-value bound $\epsilon \max_{\|d\| \leq \epsilon} \sigma_{\max}(J(x+d))$")
        ax.plot(sub["eps"], sub["worst_case"], "x-", color=COLORS["worst"], label="worst case (dense grid)")
        ax.set(xscale="log", yscale="log", xlabel=r"$\epsilon$ ($\ell_2$)", ylabel=r"$\|A(x+d) - A(x)\|_2$",
               title=name)
    handles, labels = axes[0][0].get_legend_handles_labels()  # below the panels: it covers no curve
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
