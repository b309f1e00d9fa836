"""The book's figures in one consistent style (matplotlib + seaborn), one function per figure.

Every function returns a ``matplotlib.figure.Figure`` and leaves displaying it to the caller (the book's
notebooks glue it with ``myst_nb.glue`` and close it). Call ``set_style()`` once per notebook
(``attrbound_lite.book.setup`` does). What a chapter claims (a benchmark's target, a panel title that states
a finding) is passed in by the chapter; the functions here only draw.

Needs the ``book`` extra (matplotlib, seaborn): ``pip install 'attrbound-lite[book]'``.
"""

from __future__ import annotations

import math

try:
    import matplotlib.pyplot as plt
    import seaborn as sns
except ImportError as err:  # the core package does not need them; the book does
    raise ImportError(f"attrbound_lite.book.figures needs matplotlib and seaborn ({err}): they come with the "
                      "`book` extra, pip install 'attrbound-lite[book]' (or `make venv-book`).") from err
import numpy as np
import torch

__all__ = ["set_style", "COLORS", "bounds_2d_figure", "worst_case_figure", "attribution_maps_figure",
           "surrogate_figure", "jacobian_heatmap_figure", "bound_cost_figure", "lanczos_iterations_figure",
           "training_cost_figure", "sweep_throughput_figure", "gpu_throughput_figure", "execution_times_figure",
           "accuracy_figure",
           "bound_distribution_figure", "relative_bound_figure", "cosine_bound_figure", "bound_vs_achieved_figure",
           "violation_rate_figure", "attack_examples_figure", "far_eps_figure", "ig_steps_figure", "METHOD_ORDER",
           "method_ratio_figure", "ratio_figure", "far_methods_figure", "region_example_figure", "region_rates_figure",
           "METHOD_COLORS", "method_color", "sampled_scatter_figure", "certified_radius_figure",
           "certified_methods_figure"]

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


def attribution_maps_figure(image, maps: dict):
    """An input image (C, H, W) in [0, 1] and its attribution maps (channel-summed absolute values)."""
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


def _model_labels(table) -> dict:
    return {m: f"{m}\nn = {int(n):,}" for m, n in dict(zip(table["model"], table["n"], strict=True)).items()}


def bound_cost_figure(table, target: tuple[float, str] | None = None):
    """Cost of the matrix-free bound by input size (log axes).

    ``table``: rows of ``bounds.json`` plus ``family`` (attribution without its step count) and ``exact_estimate_s``.
    (a) saliency: bound, exact Jacobian + SVD (measured; estimated where not run), 100-step IFIA, one forward +
    backward; (b) bound time over 100-step IFIA time, per attribution, with ``target`` = ``(ratio, label)`` as a dashed
    line.
    """
    sal = table[table["family"] == "saliency"].sort_values("n")
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax0.plot(sal["n"], sal["bound_s"], "o-", color=COLORS["bound"], label="bound (Lanczos)")
    measured = sal[sal["exact_s"].notna()]
    ax0.plot(measured["n"], measured["exact_s"], "s-", color=COLORS["worst"], label="exact Jacobian + SVD")
    est = sal[sal["exact_s"].isna() & sal["exact_estimate_s"].notna()]
    if len(est):  # dotted continuation of the measured curve, open markers
        ns = [*measured["n"].tail(1), *est["n"]]
        ts = [*measured["exact_s"].tail(1), *est["exact_estimate_s"]]
        ax0.plot(ns, ts, ":", color=COLORS["worst"])
        ax0.plot(est["n"], est["exact_estimate_s"], "s", color=COLORS["worst"], mfc="white",
                 label="exact, estimated ($n$ products, no SVD)")
    ax0.plot(sal["n"], sal["ifia100_s"], "^-", color=COLORS["linear"], label="IFIA, 100 steps")
    ax0.plot(sal["n"], sal["fwd_bwd_s"], "x--", color="0.5", label="one forward + backward")
    ax0.set(xscale="log", yscale="log", xlabel="input size $n$", ylabel="seconds per sample",
            title="(a) saliency: seconds per sample")
    ax0.legend(loc="upper left")
    for family, marker in zip(dict.fromkeys(table["family"]), "osD^v", strict=False):
        sub = table[table["family"] == family].sort_values("n")
        ax1.plot(sub["n"], sub["bound_over_ifia"], marker + "-", label=family)
    ax1.axhline(1.0, color="0.3", lw=1)
    if target is not None:
        ax1.axhline(target[0], color="0.3", lw=1, ls="--", label=target[1])
    ax1.set(xscale="log", yscale="log", xlabel="input size $n$", ylabel="bound time / IFIA-100 time",
            title="(b) bound against a 100-step attack")
    ticks = [t for t in (0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10, 20) if ax1.get_ylim()[0] <= t <= ax1.get_ylim()[1]]
    ax1.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax1.yaxis.set_minor_formatter(plt.NullFormatter())
    ax1.legend(loc="center left")
    fig.tight_layout()
    return fig


def lanczos_iterations_figure(table):
    """Lanczos iterations per sample and the bound's cost in forward + backward passes, per model and attribution.

    Bars: median; black ticks: slowest sample. ``table``: rows of ``bounds.json`` plus ``family``.
    """
    models = list(dict.fromkeys(table["model"]))
    families = list(dict.fromkeys(table["family"]))
    labels = _model_labels(table)
    width = 0.8 / len(families)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.0))
    for j, family in enumerate(families):
        sub = table[table["family"] == family].set_index("model").reindex(models)
        xs = np.arange(len(models)) + (j - (len(families) - 1) / 2) * width
        ax0.bar(xs, sub["iters_median"], width, label=family, color=_PALETTE[j])
        ax0.plot(xs, sub["iters_max"], "_", color="black", ms=14, mew=2, label="slowest sample" if j == 0 else None)
        ax1.bar(xs, sub["bound_per_fwd_bwd"], width, label=family, color=_PALETTE[j])
    for ax in (ax0, ax1):
        ax.set_xticks(np.arange(len(models)), [labels[m] for m in models])
        ax.grid(axis="x", visible=False)
    ax0.set(ylabel="Lanczos iterations per sample", title="(a) iterations (median; tick: slowest)")
    ax0.legend(loc="upper right")
    ax1.set(yscale="log", ylabel="bound time / one forward + backward", title="(b) cost in gradient evaluations")
    fig.tight_layout()
    return fig


def training_cost_figure(table):
    """Training cost per method and what it buys.

    ``table``: ``method``, ``train_seconds``, ``bound_l2_euclidean_mean`` (one row per method). (a) training wall time
    (log scale, labelled with the factor over the first method); (b) the mean Euclidean bound against the training time.
    """
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.9))
    base = float(table["train_seconds"].iloc[0])
    colors = [method_color(m, i) for i, m in enumerate(table["method"])]
    ax0.bar(table["method"], table["train_seconds"], color=colors)
    for i, t in enumerate(table["train_seconds"]):
        ax0.annotate(f"{t / base:.0f}x" if i else "1x", (i, t), ha="center", va="bottom", fontsize="small")
    ax0.set(yscale="log", ylabel="training wall time (s)", title="(a) training cost")
    ax0.grid(axis="x", visible=False)
    ax1.scatter(table["train_seconds"], table["bound_l2_euclidean_mean"], c=colors, s=50)
    for _, row in table.iterrows():
        ax1.annotate(row["method"], (row["train_seconds"], row["bound_l2_euclidean_mean"]),
                     textcoords="offset points", xytext=(5, 4), fontsize="small")
    ax1.set(xscale="log", xlabel="training wall time (s)", ylabel=r"mean Euclidean bound ($\ell_2$)",
            title="(b) what the cost buys: the bound")
    fig.tight_layout()
    return fig


def sweep_throughput_figure(table, projection):
    """Sweep throughput and the 10M-attack projection.

    ``table``: ``attack``, ``layout``, ``attacks_per_second``; ``projection``: ``attack``, ``hours_for_10M``. (a)
    attacks per second per layout and attack; (b) projected hours for 10 million attacks.
    """
    layouts = list(dict.fromkeys(table["layout"]))
    attacks = list(dict.fromkeys(table["attack"]))
    width = 0.8 / len(attacks)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.9), gridspec_kw={"width_ratios": [3, 2]})
    for j, attack in enumerate(attacks):
        sub = table[table["attack"] == attack].set_index("layout").reindex(layouts)
        xs = np.arange(len(layouts)) + (j - (len(attacks) - 1) / 2) * width
        bars = ax0.bar(xs, sub["attacks_per_second"], width, label=attack, color=_PALETTE[j])
        ax0.bar_label(bars, fmt="%.0f", fontsize="small")
    ax0.set_xticks(np.arange(len(layouts)), [lay.replace(" x ", " x\n") for lay in layouts])
    ax0.set(ylabel="attacks per second", title="(a) sweep throughput")
    ax0.grid(axis="x", visible=False)
    ax0.legend(loc="upper left")
    bars = ax1.barh(projection["attack"], projection["hours_for_10M"], color=COLORS["bound"])
    ax1.bar_label(bars, fmt="%.1f h", fontsize="small", padding=2)
    ax1.set(xlabel="hours for 10 million attacks", title="(b) projection, fastest layout",
            xlim=(0, 1.25 * float(projection["hours_for_10M"].max())))
    ax1.invert_yaxis()
    fig.tight_layout()
    return fig


def gpu_throughput_figure(table, target: float | None = None, empty: str = "not measured"):
    """Attack throughput on a GPU, eager and compiled.

    ``table``: ``model``, ``attribution``, ``attack``, ``compile``, ``attacks_per_second``, ``tflops`` and optionally
    ``device`` and ``peak_fraction`` (rows without a rate are left out). (a) attacks per second per (model,
    attribution, attack), one bar per compile mode, log scale, with a dashed line at ``target``; (b) achieved TFLOP/s,
    labelled with the share of the FP32 peak where known. An empty table gives a figure with the text ``empty``.
    """
    rows = table if table.empty else table[table["attacks_per_second"].notna()]
    if rows.empty:
        fig, ax = plt.subplots(figsize=(7.0, 1.4))
        ax.text(0.5, 0.5, empty, ha="center", va="center", wrap=True)
        ax.axis("off")
        return fig
    keys = ["device", "model", "attribution", "attack"] if "device" in rows and rows["device"].nunique() > 1 else \
        ["model", "attribution", "attack"]
    groups = list(dict.fromkeys(map(tuple, rows[keys].itertuples(index=False))))
    modes = list(dict.fromkeys(rows["compile"]))
    width = 0.8 / len(modes)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.4))
    for j, mode in enumerate(modes):
        sub = rows[rows["compile"] == mode].set_index(keys).reindex(groups)
        xs = np.arange(len(groups)) + (j - (len(modes) - 1) / 2) * width
        ax0.bar(xs, sub["attacks_per_second"], width, label=f"compile: {mode}", color=_PALETTE[j])
        bars = ax1.bar(xs, sub["tflops"], width, label=f"compile: {mode}", color=_PALETTE[j])
        if "peak_fraction" in sub and sub["peak_fraction"].notna().any():
            ax1.bar_label(bars, labels=["" if _isna(v) else f"{v:.0%}" for v in sub["peak_fraction"]],
                          fontsize="x-small")
    short = {"mnist_cnn": "MNIST CNN", "cifar_cnn": "CIFAR CNN", "integrated_gradients(m=16)": "IG (m = 16)",
             "pgd": "PGD", "ifia": "IFIA"}
    names = ["\n".join(short.get(str(v), str(v)) for v in g) for g in groups]
    for ax in (ax0, ax1):
        ax.set_xticks(np.arange(len(groups)), names, fontsize="x-small")
        ax.grid(axis="x", visible=False)
    if target is not None:
        ax0.axhline(target, color="0.3", ls="--", lw=1, label=f"target {target:,.0f}")
    ax0.set(yscale="log", ylabel="attacks per second", title="(a) throughput, 100-step attacks")
    ax0.legend(loc="upper right", fontsize="x-small")
    ax1.set(ylabel="achieved TFLOP/s", title="(b) arithmetic (labels: share of the FP32 peak)")
    fig.tight_layout()
    return fig


def _isna(value) -> bool:
    """``value`` is None or NaN (without importing pandas here)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def execution_times_figure(table, empty: str = "no execution times"):
    """Execution time per notebook (horizontal bars, reading order top to bottom).

    ``table``: ``notebook``, ``seconds`` and ``this_build`` (bool: executed in this build, else reused from an earlier
    one). An empty table gives a figure with the text ``empty``.
    """
    if table.empty:
        fig, ax = plt.subplots(figsize=(7.0, 1.4))
        ax.text(0.5, 0.5, empty, ha="center", va="center", wrap=True)
        ax.axis("off")
        return fig
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(table) + 1.4))
    colors = [COLORS["bound"] if now else "0.7" for now in table["this_build"]]
    bars = ax.barh(table["notebook"], table["seconds"], color=colors)
    ax.bar_label(bars, fmt="%.1f s", fontsize="small", padding=2)
    ax.invert_yaxis()
    ax.set(xlabel="execution time (s)", xlim=(0, 1.2 * float(table["seconds"].max())))
    ax.grid(axis="y", visible=False)
    if not all(table["this_build"]):
        from matplotlib.patches import Patch
        ax.legend(handles=[Patch(color=COLORS["bound"], label="executed in this build"),
                           Patch(color="0.7", label="reused from an earlier build")], loc="lower right")
    fig.tight_layout()
    return fig




def _methods(values) -> list[str]:
    present = list(dict.fromkeys(values))
    return [m for m in METHOD_ORDER if m in present] + [m for m in present if m not in METHOD_ORDER]


def accuracy_figure(table):
    """Clean and PGD accuracy by training method, one panel per data set.

    ``table``: columns dataset, method, clean_accuracy, pgd_accuracy.
    """
    long = table.melt(id_vars=["dataset", "method"], value_vars=["clean_accuracy", "pgd_accuracy"],
                      var_name="accuracy", value_name="value")
    long["accuracy"] = long["accuracy"].map({"clean_accuracy": "clean", "pgd_accuracy": "PGD"})
    grid = sns.catplot(long, x="method", y="value", hue="accuracy", col="dataset", kind="bar",
                       order=_methods(table["method"]), height=3.2, aspect=1.15, sharey=True)
    grid.set(ylim=(0, 1), ylabel="accuracy", xlabel="")
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", rotation=30)
    return grid.figure


def bound_distribution_figure(table, value: str = "sigma_max", ylabel: str | None = None):
    """Per-sample ``value`` (log scale) by training method, one panel per data set, hue the attribution.

    Data sets, methods and attributions by their readable names (``tables``); ``ylabel`` defaults to ``value``.
    """
    from .tables import ATTRIBUTION_NAMES, DATASET_NAMES, METHOD_NAMES

    t = table.assign(method=table["method"].map(lambda m: METHOD_NAMES.get(m, m)),
                     dataset=table["dataset"].map(lambda d: DATASET_NAMES.get(d, d)),
                     attribution=table["attribution"].map(lambda a: ATTRIBUTION_NAMES.get(a, a)))
    grid = sns.catplot(t, x="method", y=value, hue="attribution", col="dataset", kind="box",
                       order=[METHOD_NAMES.get(m, m) for m in _methods(table["method"])], height=3.2, aspect=1.15,
                       sharey=False, log_scale=True, fliersize=2)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("", ylabel or value)
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", rotation=30)
    return grid.figure


def relative_bound_figure(table):
    """Median relative bound ``bound_euclidean / ||A(x)||`` against eps (log-log), one column per norm.

    Also the share of non-vacuous cosine bounds; lines per attribution. ``table``: a ``bound_table``.
    """
    from .tables import ATTRIBUTION_NAMES

    t = table.assign(relative=table["bound_euclidean"] / table["attribution_norm"],
                     informative=table["bound_cosine"] > -1,
                     attribution=table["attribution"].map(lambda a: ATTRIBUTION_NAMES.get(a, a)))
    norms, order = list(dict.fromkeys(t["norm"])), list(dict.fromkeys(t["attribution"]))
    fig, axes = plt.subplots(2, len(norms), figsize=(4.6 * len(norms), 6.2), squeeze=False, sharex="col")
    for j, norm in enumerate(norms):
        sub = t[t["norm"] == norm].groupby(["attribution", "eps"], as_index=False).agg(
            relative=("relative", "median"), informative=("informative", "mean"))
        sns.lineplot(sub, x="eps", y="relative", hue="attribution", hue_order=order, marker="o", ax=axes[0][j],
                     legend=j == 0)
        axes[0][j].axhline(1.0, color="0.4", lw=0.8, ls="--")
        axes[0][j].set(xscale="log", yscale="log", ylabel=r"median $\epsilon$-bound $/\ \|A(x)\|_2$",
                       title=rf"$\ell_{{{norm[1:] if norm != 'linf' else chr(92) + 'infty'}}}$ ball")
        sns.lineplot(sub, x="eps", y="informative", hue="attribution", hue_order=order, marker="o", ax=axes[1][j],
                     legend=False)
        axes[1][j].set(xscale="log", ylim=(-0.03, 1.03), xlabel=r"$\epsilon$", ylabel="share with cosine bound > -1")
    fig.tight_layout()
    return fig


def cosine_bound_figure(table):
    """The cosine bound against ``||A(x)||_2`` (log x), coloured by method, one panel per norm.

    With the curve ``sqrt(1 - r^2/a^2)`` for the median Euclidean bound r. ``table``: one eps per norm.
    """
    from .tables import METHOD_NAMES, NORM_NAMES, radius_label

    norms = list(dict.fromkeys(table["norm"]))
    fig, axes = plt.subplots(1, len(norms), figsize=(4.8 * len(norms), 3.8), squeeze=False, sharey=True)
    for ax, norm in zip(axes[0], norms, strict=True):
        sub = table[table["norm"] == norm]
        order = [METHOD_NAMES.get(m, m) for m in _methods(sub["method"])]
        sns.scatterplot(sub.assign(method=sub["method"].map(lambda m: METHOD_NAMES.get(m, m))), x="attribution_norm",
                        y="bound_cosine", hue="method", hue_order=order, s=14, alpha=0.7, ax=ax,
                        palette={METHOD_NAMES.get(m, m): method_color(m, i)
                                 for i, m in enumerate(_methods(sub["method"]))},
                        legend=ax is axes[0][-1])
        r = float(sub["bound_euclidean"].median())
        a = np.geomspace(sub["attribution_norm"].min(), sub["attribution_norm"].max(), 200)
        ax.plot(a, np.where(a > r, np.sqrt(np.clip(1 - (r / a) ** 2, 0, 1)), -1), color="0.3", lw=1,
                label=r"$\sqrt{1-r^2/a^2}$, median $r$")
        ax.set(xscale="log", xlabel=r"$\|A(x)\|_2$", ylabel=r"lower bound on $\cos(A(x), A(x'))$",
               title=f"{NORM_NAMES.get(norm, norm)} ball, ε = {radius_label(sub['eps'].iloc[0])}")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if axes[0][-1].get_legend() is not None:
        axes[0][-1].get_legend().remove()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def bound_vs_achieved_figure(units):
    """Relative achieved deviation against the relative bound (log-log), both divided by ``||A(x)||_2``.

    One point per (model, image, radius): the best label-keeping attack. With the identity line: points above it are
    violations. Rows: norms; columns: data sets; colour: eps. ``units``: ``validation.unit_table`` (one attribution).
    """
    from .tables import DATASET_NAMES, radius_label

    kept = units[(units["relative_achieved"] > 0) & (units["relative_bound"] > 0)]
    datasets, norms = _datasets(kept["dataset"]), list(dict.fromkeys(kept["norm"]))
    fig, axes = plt.subplots(len(norms), len(datasets), figsize=(3.6 * len(datasets), 3.4 * len(norms)),
                             squeeze=False)
    for i, norm in enumerate(norms):
        for j, ds in enumerate(datasets):
            ax = axes[i][j]
            sub = kept[(kept["norm"] == norm) & (kept["dataset"] == ds)]
            sns.scatterplot(sub, x="relative_bound", y="relative_achieved", hue="eps", palette="viridis",
                            hue_norm=_lognorm(sub["eps"]), s=8, alpha=0.6, linewidth=0, ax=ax,
                            legend="full" if j == len(datasets) - 1 else False)
            lo = float(min(sub["relative_bound"].min(), sub["relative_achieved"].min()))
            hi = float(max(sub["relative_bound"].max(), sub["relative_achieved"].max()))
            ax.plot([lo, hi], [lo, hi], color="0.2", lw=1, ls="--")
            ax.set(xscale="log", yscale="log", title=f"{DATASET_NAMES.get(ds, ds)}, {_NORM_TEX[norm]}",
                   xlabel=r"bound $r\,/\,\|A(x)\|$", ylabel=r"achieved $\|A(x')-A(x)\|\,/\,\|A(x)\|$")
    for row in axes:  # one legend per norm: the radii differ
        if row[-1].get_legend() is not None:
            sns.move_legend(row[-1], "upper left", bbox_to_anchor=(1.02, 1.0), title=r"$\epsilon$")
            for text in row[-1].get_legend().get_texts():
                text.set_text(radius_label(float(text.get_text().replace("\u2212", "-"))))
    fig.tight_layout()
    return fig


def _lognorm(values):
    from matplotlib.colors import LogNorm
    return LogNorm(float(np.min(values)), float(np.max(values)))


_NORM_TEX = {"l2": r"$\ell_2$", "linf": r"$\ell_\infty$"}


def _datasets(values) -> list[str]:
    """The data sets among ``values`` in the book's order (MNIST, Fashion-MNIST, CIFAR-10)."""
    from .tables import DATASET_NAMES

    present = list(dict.fromkeys(values))
    return [d for d in DATASET_NAMES if d in present] + [d for d in present if d not in DATASET_NAMES]


def violation_rate_figure(rates, marks=None):
    """Share of images with a violation against eps, with Wilson intervals: one panel per norm, a line per data set.

    ``rates``: columns dataset, norm, eps, rate (a ``stats.Interval``); ``marks``: optional ``{(dataset, norm): eps}``
    radii drawn as dotted vertical lines in the data set's colour (RAR's radii).
    """
    from .tables import DATASET_NAMES

    datasets, norms = _datasets(rates["dataset"]), list(dict.fromkeys(rates["norm"]))
    colors = dict(zip(datasets, _PALETTE, strict=False))
    fig, axes = plt.subplots(1, len(norms), figsize=(4.8 * len(norms), 3.6), squeeze=False, sharey=True)
    for ax, norm in zip(axes[0], norms, strict=True):
        for k, ds in enumerate(datasets):
            sub = rates[(rates["norm"] == norm) & (rates["dataset"] == ds)].sort_values("eps")
            est = np.array([r.estimate for r in sub["rate"]])
            err = np.abs(np.array([[r.low for r in sub["rate"]], [r.high for r in sub["rate"]]]) - est)
            shift = 1.0 + 0.04 * (k - (len(datasets) - 1) / 2)  # side by side, not on top of each other
            ax.errorbar(sub["eps"] * shift, est, yerr=err, marker="o", ms=4, capsize=2, color=colors[ds],
                        label=DATASET_NAMES.get(ds, ds))
            if marks and (ds, norm) in marks:
                ax.axvline(marks[(ds, norm)], color=colors[ds], ls=":", lw=1)
        ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel=r"$\epsilon$", title=f"{_NORM_TEX[norm]} ball")
    axes[0][0].set_ylabel("share of images with a violation")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def attack_examples_figure(examples):
    """Rows of (image, attacked image, attribution before, after, difference) for a few samples.

    ``examples``: dicts with image, adversarial (C, H, W), map, adversarial_map, difference (H, W) and a title. The
    two maps share one colour scale; the difference ``|A(x') - A(x)|`` has its own, with a colour bar.
    """
    fig, axes = plt.subplots(len(examples), 5, figsize=(12, 2.5 * len(examples)), squeeze=False)
    titles = ("image", "attacked image", "attribution", "attribution after attack", r"$|A(x') - A(x)|$")
    for k, (row, ex) in enumerate(zip(axes, examples, strict=True)):
        vmax = float(max(_np(ex["map"]).max(), _np(ex["adversarial_map"]).max()))
        for ax, key, title in zip(row, ("image", "adversarial", "map", "adversarial_map", "difference"), titles,
                                  strict=True):
            value = _np(ex[key])
            if value.ndim == 3:
                value = value[0] if value.shape[0] == 1 else value.transpose(1, 2, 0)
            if key in ("image", "adversarial"):
                ax.imshow(value, cmap="gray" if value.ndim == 2 else None, vmin=0, vmax=1)
            elif key == "difference":
                fig.colorbar(ax.imshow(value, cmap="magma", vmin=0), ax=ax, fraction=0.046, pad=0.04)
            else:
                ax.imshow(value, cmap="magma", vmin=0, vmax=vmax)
            ax.set(xticks=[], yticks=[], title=title if k == 0 else "")
        row[0].set_ylabel(ex["title"], fontsize="small")
    fig.tight_layout()
    return fig


def far_eps_figure(summary, natural=None):
    """IFIA top-k intersection and Kendall's tau against the training radius, one line per method, with 95% intervals.

    ``summary``: ``far.level_summary(..., "train_eps", ...)`` (columns method, train_eps and ``Interval`` columns
    topk_intersection, kendall_tau). ``natural``: the same ``Interval`` columns of the naturally trained model (a
    dict), drawn as a horizontal band.
    """
    return _far_level_figure(summary, "train_eps", r"training radius $\epsilon$ ($\ell_\infty$)", natural=natural)


def ig_steps_figure(summary, levels=None):
    """IFIA top-k intersection and Kendall's tau against the IG steps used in training, per method, with 95% intervals.

    ``summary``: ``far.level_summary(..., "train_ig_steps", ...)``; ``levels``: the steps whose models are compared
    (joined by lines); other points (models trained on other data) are drawn as open markers.
    """
    return _far_level_figure(summary, "train_ig_steps", "IG steps used in training", levels=levels)


# ---------------------------------------------------------------------------------------------- chapter 5 (bounds)

def method_ratio_figure(comparison):
    """Each method's relative bound over natural training's: the ratio with its 95% interval (log x), per data set.

    ``comparison``: ``bound_tables.compare_methods`` (columns dataset, attribution, method, ratio_estimate,
    ratio_low, ratio_high); one marker per attribution; the dashed line at 1 is "no difference".
    """
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    from .tables import ATTRIBUTION_NAMES, DATASET_NAMES, METHOD_NAMES

    datasets, attributions = list(dict.fromkeys(comparison["dataset"])), list(dict.fromkeys(comparison["attribution"]))
    methods = _methods(comparison["method"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.9 * len(datasets), 1.0 + 0.6 * len(methods)),
                             squeeze=False, sharey=True)
    offsets = np.linspace(-0.2, 0.2, len(attributions)) if len(attributions) > 1 else [0.0]
    for ax, ds in zip(axes[0], datasets, strict=True):
        for k, (attribution, offset) in enumerate(zip(attributions, offsets, strict=True)):
            sub = comparison[(comparison["dataset"] == ds) & (comparison["attribution"] == attribution)]
            sub = sub.set_index("method").reindex(methods)
            ax.errorbar(sub["ratio_estimate"], np.arange(len(methods)) + offset, fmt="o", ms=4, capsize=2,
                        xerr=[sub["ratio_estimate"] - sub["ratio_low"], sub["ratio_high"] - sub["ratio_estimate"]],
                        color=_PALETTE[k], label=ATTRIBUTION_NAMES.get(attribution, attribution))
        ax.axvline(1.0, color="0.4", lw=0.8, ls="--")
        ax.set(xscale="log", title=DATASET_NAMES.get(ds, ds), xlabel="relative bound / natural training's")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[0][0].set(yticks=range(len(methods)), yticklabels=[METHOD_NAMES.get(m, m) for m in methods])
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- chapter 6 (validation)

def ratio_figure(quantiles):
    """Achieved / bound against eps: the median and upper quantiles across images, per data set, with the line at 1.

    Rows: the Euclidean bound (``||A(x') - A(x)|| / r``) and the cosine bound (achieved cosine distance over the
    bound's); columns: norms; colour: data set; line style: quantile. ``quantiles``: ``validation.ratio_quantiles``
    (columns dataset, norm, eps, bound, quantile, ratio). Above 1: the attack exceeded the bound.
    """
    from matplotlib.ticker import FuncFormatter

    from .tables import DATASET_NAMES

    bounds, norms = list(dict.fromkeys(quantiles["bound"])), list(dict.fromkeys(quantiles["norm"]))
    datasets, levels = _datasets(quantiles["dataset"]), sorted(quantiles["quantile"].unique())
    colors = dict(zip(datasets, _PALETTE, strict=False))
    styles = dict(zip(levels, ("-", "--", ":", "-."), strict=False))
    fig, axes = plt.subplots(len(bounds), len(norms), figsize=(4.8 * len(norms), 3.3 * len(bounds)), squeeze=False,
                             sharex="col")
    for i, bound in enumerate(bounds):
        for j, norm in enumerate(norms):
            ax = axes[i][j]
            for ds in datasets:
                for q in levels:
                    sub = quantiles[(quantiles["bound"] == bound) & (quantiles["norm"] == norm)
                                    & (quantiles["dataset"] == ds) & (quantiles["quantile"] == q)].sort_values("eps")
                    sub = sub[sub["ratio"] > 0]
                    ax.plot(sub["eps"], sub["ratio"], ls=styles[q], marker="o" if q == 0.5 else None, ms=3,
                            color=colors[ds])
            ax.axhline(1.0, color="0.1", lw=1.2)
            ax.set(xscale="log", yscale="log", title=f"{bound} bound, {_NORM_TEX[norm]} ball",
                   ylabel="achieved / bound" if j == 0 else None,
                   xlabel=r"$\epsilon$" if i == len(bounds) - 1 else None)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=colors[ds], label=DATASET_NAMES.get(ds, ds)) for ds in datasets]
    handles += [Line2D([], [], color="0.3", ls=styles[q], label="median" if q == 0.5 else "max" if q == 1 else
                       f"{q:.0%} quantile") for q in levels]
    handles.append(Line2D([], [], color="0.1", lw=1.2, label="bound (violation above)"))
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- chapter 7 (FAR)

_FAR_METRICS = (("topk_intersection", "IFIA top-k intersection"), ("kendall_tau", "IFIA Kendall's tau"))


def _errorbar(ax, xs, intervals, **kwargs):
    est = np.array([i.estimate for i in intervals])
    err = np.array([[i.estimate - i.low for i in intervals], [i.high - i.estimate for i in intervals]])
    return ax.errorbar(xs, est, yerr=err, capsize=3, **kwargs)


def far_methods_figure(summary):
    """IFIA top-k intersection and Kendall's tau per training method and data set, with 95% bootstrap intervals.

    ``summary``: ``far.method_summary`` (columns dataset, method and ``Interval`` columns topk_intersection,
    kendall_tau).
    """
    from .tables import DATASET_NAMES, METHOD_NAMES

    order, datasets = _methods(summary["method"]), list(dict.fromkeys(summary["dataset"]))
    width = 0.8 / max(len(datasets), 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (metric, label) in zip(axes, _FAR_METRICS, strict=True):
        for j, ds in enumerate(datasets):
            sub = summary[summary["dataset"] == ds].set_index("method").reindex(order).dropna(subset=[metric])
            xs = [order.index(m) + (j - (len(datasets) - 1) / 2) * width for m in sub.index]
            _errorbar(ax, xs, sub[metric], fmt="o", color=_PALETTE[j], label=DATASET_NAMES.get(ds, ds))
        ax.set_xticks(range(len(order)), [METHOD_NAMES.get(m, m) for m in order])
        ax.set(ylabel=label, ylim=(min(0, ax.get_ylim()[0]), 1.02))
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _far_level_figure(summary, level, xlabel, natural=None, levels=None):
    from .tables import METHOD_NAMES

    order = _methods(summary["method"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (metric, label) in zip(axes, _FAR_METRICS, strict=True):
        for j, method in enumerate(order):
            sub = summary[summary["method"] == method].sort_values(level)
            color = method_color(method, j)
            joined = sub if levels is None else sub[sub[level].isin(levels)]
            _errorbar(ax, joined[level], joined[metric], fmt="-o", color=color, label=METHOD_NAMES.get(method, method))
            others = sub.drop(joined.index)
            if len(others):
                _errorbar(ax, others[level], others[metric], fmt="o", mfc="white", color=color)
        if natural is not None:
            i = natural[metric]
            ax.axhspan(i.low, i.high, color="0.85", zorder=0)
            ax.axhline(i.estimate, color="0.4", ls="--", lw=1, label="natural")
        ax.set(xlabel=xlabel, ylabel=label, xticks=sorted(summary[level].unique()))
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def region_example_figure(rows, title: str = ""):
    """One image against the radius: the best attack's deviation, the first-order bound and the region bound.

    ``rows``: ``book.region.example_unit`` (columns eps, achieved, point, region), one norm; log-log axes.
    """
    rows = rows.sort_values("eps")
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    ax.plot(rows["eps"], rows["point"], "-o", ms=4, color=COLORS["bound"], label=r"first-order bound $r(x)$")
    ax.plot(rows["eps"], rows["region"], "-s", ms=4, color=COLORS["mean_value"], label="region bound")
    ax.plot(rows["eps"], rows["achieved"], "--^", ms=5, color=COLORS["worst"], label="best attack")
    ax.set(xscale="log", yscale="log", xlabel=r"$\epsilon$", ylabel=r"$\|A(x') - A(x)\|_2$", title=title)
    ax.legend(loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def region_rates_figure(rates):
    """The share of units whose best attack exceeded each bound, against the radius, one panel per norm.

    ``rates``: ``book.region.rates_table`` (columns norm, eps, point and region, ``stats.Interval`` rates); bars: the
    Wilson intervals.
    """
    norms = list(dict.fromkeys(rates["norm"]))
    fig, axes = plt.subplots(1, len(norms), figsize=(4.8 * len(norms), 3.6), squeeze=False, sharey=True)
    for ax, norm in zip(axes[0], norms, strict=True):
        sub = rates[rates["norm"] == norm].sort_values("eps")
        for k, (column, label, color) in enumerate((("point", "first-order bound", COLORS["bound"]),
                                                    ("region", "region bound", COLORS["mean_value"]))):
            est = np.array([r.estimate for r in sub[column]])
            err = np.abs(np.array([[r.low for r in sub[column]], [r.high for r in sub[column]]]) - est)
            ax.errorbar(sub["eps"] * (0.97 if k == 0 else 1.03), est, yerr=err, marker="o", ms=4, capsize=2,
                        color=color, label=label)
        ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel=r"$\epsilon$", title=f"{_NORM_TEX[norm]} ball")
    axes[0][0].set_ylabel("share of units exceeding the bound")
    axes[0][-1].legend(loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def sampled_scatter_figure(frame):
    """Sampled relative sensitivity against the attack's relative deviation per unit, one panel per metric.

    ``frame``: ``book.sampled.sampled_units`` rows of the relative metrics (columns metric, model, attack, score);
    colour: the training method (``METHOD_COLORS``); dashed: equality. Log-log.
    """
    from .tables import METHOD_NAMES

    metrics = list(dict.fromkeys(frame["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.6), squeeze=False, sharex=True,
                             sharey=True)
    values = frame[["attack", "score"]].to_numpy(dtype=float)
    finite = values[np.isfinite(values).all(1) & (values > 0).all(1)]
    low, high = (finite.min() * 0.8, finite.max() * 1.25) if len(finite) else (1e-3, 1.0)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = frame[frame["metric"] == metric]
        for method in _methods(sub["model"]):
            part = sub[sub["model"] == method]
            ax.scatter(part["attack"], part["score"], s=10, alpha=0.7, color=method_color(method),
                       label=METHOD_NAMES.get(method, method))
        ax.plot([low, high], [low, high], "k--", lw=1)
        ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), title=metric,
               xlabel=r"attack $\|A(x') - A(x)\| / \|A(x)\|$")
    axes[0][0].set_ylabel("sampled score")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


_BOUND_LINES = (("attack", "best attack", COLORS["worst"], "--^"),
                ("first_order", "first-order bound", COLORS["bound"], "-o"),
                ("region", "region bound", COLORS["mean_value"], "-s"), ("certified", "certificate", "black", "-D"))


def certified_radius_figure(table, ylabel: str = r"median over images, $/ \|A(x)\|_2$"):
    """Medians of the best attack, the first-order, region and certified bounds over ||A(x)||, against the radius.

    ``table``: ``book.certified.radius_table`` (columns dataset, norm, eps, attack, first_order, region, certified);
    one panel per data set and norm measured at two radii or more, log-log axes; the dotted line at 1 is ||A(x)||,
    above which a Euclidean bound's cosine bound is vacuous.
    """
    from .tables import DATASET_NAMES

    counts = table.groupby(["dataset", "norm"], sort=False)["eps"].nunique()
    panels = [key for key, n in counts.items() if n >= 2]  # a norm measured at one radius has no curve
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.0 * columns, 3.4 * rows), squeeze=False)
    for ax, (ds, norm) in zip(axes.flat, panels, strict=False):
        sub = table[(table["dataset"] == ds) & (table["norm"] == norm)].sort_values("eps")
        for column, label, color, style in _BOUND_LINES:
            ax.plot(sub["eps"], sub[column], style, ms=4, color=color, label=label)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", xlabel=r"$\epsilon$", ylabel=ylabel,
               title=f"{DATASET_NAMES.get(ds, ds)}, {_NORM_TEX[norm]} ball")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes[0][0].legend(loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def certified_methods_figure(table):
    """Certified relative deviation per training method, per seed and as a mean over seeds.

    Crosses: the per-seed medians over images; dot and bar: the mean over seeds with Student's t interval.

    ``table``: ``book.certified.method_table`` (columns model, per_seed, mean, low, high).
    """
    from .tables import METHOD_NAMES

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    floor = 0.5 * min(min(r) for r in table["per_seed"])  # a t interval reaching below 0 is drawn to here
    for i, row in enumerate(table.itertuples()):
        color = method_color(row.model)
        low = max(row.low, floor)
        ax.errorbar([row.mean], [i], xerr=[[row.mean - low], [row.high - row.mean]], fmt="o", ms=6, capsize=3,
                    color=color)
        ax.plot(row.per_seed, [i + 0.18] * len(row.per_seed), "x", ms=5, color=color, alpha=0.8)
    ax.set_yticks(range(len(table)), [METHOD_NAMES.get(m, m) for m in table["model"]])
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel=r"certificate $/ \|A(x)\|_2$ (median over images; x: one training run)")
    fig.tight_layout()
    return fig
