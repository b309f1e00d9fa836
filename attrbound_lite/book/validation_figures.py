"""Chapter 6's figures: achieved deviations against the bounds, their ratio, violation rates and attack examples.

The chapter's computations and sentences are in ``validation``; chapter 7 draws its attack examples with
``attack_examples_figure`` too. Needs the ``book`` extra (matplotlib, seaborn), as every figure of the book
(``style``).
"""

from __future__ import annotations

import numpy as np

from .style import _NORM_TEX, _PALETTE, _datasets, _lognorm, _np, plt, sns

__all__ = ["bound_vs_achieved_figure", "ratio_figure", "violation_rate_figure", "attack_examples_figure"]


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
