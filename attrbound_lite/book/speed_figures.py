"""Chapter 11's figures: the benchmarks' costs, Lanczos iterations, training cost, sweep and GPU throughput.

The chapter's tables and sentences are in ``speed`` (and ``speed_gpu`` for the GPU session). Needs the ``book``
extra (matplotlib, seaborn), as every figure of the book (``style``).
"""

from __future__ import annotations

import numpy as np

from .style import _PALETTE, COLORS, _isna, _model_labels, method_color, plt

__all__ = ["bound_cost_figure", "lanczos_iterations_figure", "training_cost_figure", "sweep_throughput_figure",
           "gpu_throughput_figure"]


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
