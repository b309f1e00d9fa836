"""Chapter 3 (attributions and their Jacobians): the studies on a random-weight CNN and the values its prose quotes.

Every function draws from torch's global generator only where the chapter's text says it does (the random direction of
the ReLU check), so a chapter seeded once gives the same numbers.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from ..attributions import InputXGradient, IntegratedGradients, Saliency
from ..bounds import attribution_bound, dense_jacobian
from ..models import smooth_relu
from ..stats import sig

__all__ = ["attribution_maps", "completeness_table", "completeness_values", "relu_curvature", "surrogate_table",
           "surrogate_values", "ig_jacobian", "sigma_table", "sigma_values"]


def attribution_maps(model, x1) -> dict:
    """The three attribution maps of one input ``x1`` (1, C, H, W), by name (IG with 64 steps)."""
    return {"saliency": Saliency(model).attribute(x1).detach()[0],
            "input x gradient": InputXGradient(model).attribute(x1).detach()[0],
            "integrated gradients": IntegratedGradients(model, n_steps=64).attribute(x1).detach()[0]}


def completeness_table(model, x1, steps=(4, 16, 64, 256)) -> pd.DataFrame:
    """The sum of the IG map against the logit gap f_c(x) - f_c(0), by number of steps."""
    c = int(model(x1).argmax(1))
    with torch.no_grad():
        gap = float(model(x1)[0, c] - model(torch.zeros_like(x1))[0, c])
    rows = []
    for m in steps:
        total = float(IntegratedGradients(model, n_steps=m).attribute(x1, target=c).sum())
        rows.append({"steps": m, "sum_ig": total, "logit_gap": gap, "relative_error": abs(total - gap) / abs(gap)})
    return pd.DataFrame(rows)


def completeness_values(table: pd.DataFrame) -> dict:
    """The completeness values the chapter's prose quotes.

    Args:
        table: the table of ``completeness_table``.

    Returns:
        ``{glue name: value}``: the relative error at the table's last number of steps, and that number.
    """
    return {"ch3_completeness_err": float(table["relative_error"].iloc[-1]),
            "ch3_completeness_err_shown": sig(float(table["relative_error"].iloc[-1]), 2),
            "ch3_completeness_steps": int(table["steps"].iloc[-1])}


def relu_curvature(relu, x1) -> tuple[float, str]:
    """``(max |H v|, refusal)`` for a ReLU network: a Hessian-vector product's largest entry and the refusal.

    The direction v is random, drawn from torch's global generator; ``max |H v|`` is exactly 0 for a piecewise-linear
    model. ``refusal`` is the message with which ``attribution_bound`` refuses the model ("(not refused)" if it does
    not).
    """
    xr = x1.clone().requires_grad_(True)
    logit = relu(xr)[0, int(relu(x1).argmax(1))]
    (grad,) = torch.autograd.grad(logit, xr, create_graph=True)
    v = torch.randn_like(xr)
    (hv,) = torch.autograd.grad((grad * v).sum(), xr, allow_unused=True)
    hvp_max = 0.0 if hv is None else float(hv.abs().max())
    try:
        attribution_bound(relu, x1, 0.1)
        refused = "(not refused)"
    except ValueError as err:
        refused = str(err)
    return hvp_max, refused


def surrogate_table(relu, x, betas) -> pd.DataFrame:
    """Per softplus beta: the surrogate's saliency distance to the ReLU network's and its mean sigma_max.

    The distance is the mean relative distance between the surrogate's saliency maps and the ReLU network's; sigma_max
    is that of the surrogate's saliency Jacobian.
    """
    s_relu = Saliency(relu).attribute(x).detach().flatten(1)
    rows = []
    for beta in betas:
        s_beta = Saliency(smooth_relu(relu, beta)).attribute(x).detach().flatten(1)
        bound = attribution_bound(relu, x, 1.0, "l2", "saliency", surrogate_beta=beta, tol=1e-6)
        rows.append({"beta": beta,
                     "relative_distance": float(((s_beta - s_relu).norm(dim=1) / s_relu.norm(dim=1)).mean()),
                     "sigma_max": float(bound.sigma_max.mean())})
    return pd.DataFrame(rows)


def surrogate_values(table: pd.DataFrame) -> dict:
    """The surrogate values the chapter's prose quotes.

    Args:
        table: the table of ``surrogate_table``.

    Returns:
        ``{glue name: value}``: the table's first and last beta, the relative distance at each, and the growth of
        sigma_max from the first to the last.
    """
    betas = table["beta"].tolist()  # Python numbers
    return {"ch3_beta_min": betas[0], "ch3_beta_max": betas[-1],
            "ch3_dist_beta_min": float(table["relative_distance"].iloc[0]),
            "ch3_dist_beta_max": float(table["relative_distance"].iloc[-1]),
            "ch3_sigma_growth": float(table["sigma_max"].iloc[-1] / table["sigma_max"].iloc[0])}


def ig_jacobian(model, x1, steps: int):
    """``(explainer, J, seconds)``: the dense Jacobian of Integrated Gradients with ``steps`` steps at ``x1``.

    ``seconds``: the seconds it took.
    """
    ig = IntegratedGradients(model, n_steps=steps)
    start = time.perf_counter()
    jac = dense_jacobian(ig, x1)[0]
    return ig, jac, time.perf_counter() - start


def sigma_table(model, x1, ig, ig_jac, ig_seconds: float) -> pd.DataFrame:
    """sigma_max of the three attributions' Jacobians at ``x1``: exact against matrix-free, with their times.

    Exact: SVD of the dense Jacobian (IG's is ``ig_jac``, built in ``ig_seconds``); matrix-free: Lanczos.
    """
    rows = []
    for name, explainer, jac in (("saliency", Saliency(model), None), ("input x gradient", InputXGradient(model), None),
                                 ("integrated gradients", ig, ig_jac)):
        start = time.perf_counter()
        if jac is None:
            jac = dense_jacobian(explainer, x1)[0]
        exact = float(torch.linalg.matrix_norm(jac, 2))
        exact_seconds = time.perf_counter() - start + (ig_seconds if name == "integrated gradients" else 0.0)
        start = time.perf_counter()
        res = attribution_bound(model, x1, 1.0, "l2", explainer, tol=1e-8)
        rows.append({"attribution": name, "exact_svd": exact, "matrix_free": float(res.sigma_max[0]),
                     "relative_error": abs(float(res.sigma_max[0]) - exact) / exact,
                     "products": int(res.products[0]), "exact_seconds": exact_seconds,
                     "matrix_free_seconds": time.perf_counter() - start})
        del jac
    return pd.DataFrame(rows)


def sigma_values(sigmas: pd.DataFrame) -> dict:
    """The sigma_max values the chapter's prose quotes.

    Args:
        sigmas: the table of ``sigma_table``.

    Returns:
        ``{glue name: value}``: IG's exact and matrix-free sigma_max, their relative error, the largest relative
        error of the three attributions, IG's number of products and IG's speed-up of the matrix-free route.
    """
    ig_row = sigmas[sigmas["attribution"] == "integrated gradients"].iloc[0]
    return {"ch3_sigma_exact": float(ig_row["exact_svd"]), "ch3_sigma_matrix_free": float(ig_row["matrix_free"]),
            "ch3_sigma_rel_err": float(ig_row["relative_error"]),
            "ch3_sigma_max_rel_err": float(sigmas["relative_error"].max()),
            "ch3_sigma_shown": sig(float(ig_row["matrix_free"]), 9),
            "ch3_sigma_exact_shown": sig(float(ig_row["exact_svd"]), 9),
            "ch3_sigma_rel_err_shown": sig(float(ig_row["relative_error"]), 2),
            "ch3_sigma_max_rel_err_shown": sig(float(sigmas["relative_error"].max()), 2),
            "ch3_ig_products": int(ig_row["products"]),
            "ch3_speedup": float(ig_row["exact_seconds"] / ig_row["matrix_free_seconds"])}


def attribution_maps_figure(image, maps: dict):
    """An input image (C, H, W) in [0, 1] and its attribution maps (channel-summed absolute values)."""
    from .style import _np, plt
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2.6 * (len(maps) + 1), 2.9))
    img = _np(image)
    axes[0].imshow(np.transpose(img, (1, 2, 0)) if img.shape[0] == 3 else img[0], cmap="gray")
    axes[0].set_title("input")
    for ax, (name, attr) in zip(axes[1:], maps.items(), strict=True):
        ax.imshow(np.abs(_np(attr)).sum(0), cmap="magma")
        ax.set_title(name)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
    fig.tight_layout()
    return fig


def surrogate_figure(table, titles: tuple[str, str] = ("(a) relative distance to ReLU saliency",
                                                       "(b) curvature")):
    """The softplus surrogate as beta grows: saliency distance to the ReLU network's and spectral norm.

    The spectral norm is that of its saliency Jacobian. ``table``: columns beta, relative_distance, sigma_max;
    ``titles``: the two panels' titles.
    """
    from .style import COLORS, plt
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax0.plot(table["beta"], table["relative_distance"], "o-", color=COLORS["worst"])
    ax0.set(xscale="log", yscale="log", xlabel=r"$\beta$",
            ylabel=r"$\|A_\beta(x) - A_{\mathrm{ReLU}}(x)\| / \|A_{\mathrm{ReLU}}(x)\|$",
            title=titles[0])
    ax1.plot(table["beta"], table["sigma_max"], "o-", color=COLORS["bound"])
    ax1.set(xscale="log", yscale="log", xlabel=r"$\beta$", ylabel=r"$\sigma_{\max}(H_\beta(x))$",
            title=titles[1])
    fig.tight_layout()
    return fig


def jacobian_heatmap_figure(jacobian, k: int = 100):
    """The paper's Figure 1(b): absolute values of the first ``k`` x ``k`` entries of an attribution Jacobian.

    The entries are shown on a log colour scale.
    """
    from matplotlib.colors import LogNorm

    from .style import _np, plt

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
