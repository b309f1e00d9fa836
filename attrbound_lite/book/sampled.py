"""The sampled-metrics chapter: Captum's and Quantus's robustness metrics beside the attacks and both bounds.

The chapter reuses the region chapter's table (``book.region.region_units``: the validation sweep's best attacks and
first-order bounds, and the region bounds, per unit and radius) and runs the sampled metrics of
``attrbound_lite.interop`` on the same images, targets and radii::

    s8 = profiles.default_settings("08_region", s)                   # the region chapter's settings
    both = region.region_units(s8, s6, units)                        # reloaded when chapter 8 ran in this build
    frame = sampled.sampled_units(s, both)                           # one row per unit, radius and metric
    sampled.shortfall_table(frame), sampled.ranking_table(frame), sampled.time_table(frame)
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd
import torch
from scipy import stats as scipy_stats

from .. import _io
from ..interop import captum_sensitivity_max, quantus_sensitivity
from ..stats import Interval, bootstrap, sig, verdict, wilson
from .profiles import book_store
from .tables import DATASET_NAMES, METHOD_NAMES
from .validation import test_images

__all__ = ["METRICS", "sampled_units", "shortfall_table", "lipschitz_table", "time_table", "ranking_table",
           "ranking_values", "shortfall_values", "library_defaults"]

# name shown -> (function, keyword arguments); every metric keeps its library defaults but the radius (matched to the
# ball: interop's docstrings) and, for the Lipschitz estimate, normalise=False (its default divides each map by its
# largest value, which no bound is about).
METRICS = {
    "Captum sensitivity_max": ("captum", {}),
    "Quantus MaxSensitivity": ("quantus", {"kind": "max"}),
    "Quantus AvgSensitivity": ("quantus", {"kind": "avg"}),
    "Quantus LocalLipschitzEstimate": ("quantus", {"kind": "lipschitz", "normalise": False}),
}
RELATIVE = [m for m in METRICS if "Lipschitz" not in m]  # scores in units of ||A(x' ) - A(x)|| / ||A(x)||


def library_defaults() -> str:
    """The libraries' sample counts and normalisation that the chapter keeps, read from their signatures."""
    import inspect

    import quantus

    captum = inspect.signature(captum_sensitivity_max).parameters["n_perturb_samples"].default
    options = inspect.signature(quantus.MaxSensitivity.__init__).parameters
    normalised = "maps normalised" if options["normalise"].default else "maps not normalised"
    return (f"Captum: {captum} samples per image; Quantus: {options['nr_samples'].default} samples per image, "
            f"{normalised}")


def _score(metric: str, model, x, target, eps: float, norm: str, seed: int):
    library, options = METRICS[metric]
    if library == "captum":
        return captum_sensitivity_max(model, x, target, eps, norm, seed=seed)
    return quantus_sensitivity(model, x, target, eps, norm, seed=seed, **options)


def _cache_file(s, dataset: str, method: str, norm: str, eps: float):
    from ..zoo import REFERENCE, reference_name

    identity = dict(weights=REFERENCE[reference_name(dataset, method)].key, dataset=dataset, norm=norm, eps=eps,
                    n_images=s.n_images, metrics=sorted(METRICS), seed=s.seed, device=s.device.type)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return book_store("sampled", s.profile) / f"{dataset}-{method}-{norm}-{eps:.6g}-{digest}.parquet"


def sampled_units(s, both: pd.DataFrame) -> pd.DataFrame:
    """Every metric of ``METRICS`` per unit at the chapter's radii, beside the attack and both bounds.

    For every data set of ``s.datasets`` and method of ``s.methods``, the first ``s.n_images`` images at ``eps_linf``
    (l-infinity) and ``eps_l2`` (l2, where not None), with the class the sweep explained (the prediction): each
    metric's score and its seconds per image. Computed once per case, kept as a Parquet file in the build folder.

    Args:
        s: the chapter's settings.
        both: ``region.region_units`` at those radii and images (its rows supply the attack and the bounds).

    Returns:
        One row per unit and metric: ``dataset, model, sample, norm, eps, metric, score, seconds``, and from ``both``:
        ``achieved``, ``attribution_norm``, ``point``, ``region``, ``sigma_point``, ``sigma_region``, ``kept`` and the
        relative values ``attack = achieved / ||A||``, ``point_relative``, ``region_relative``.
    """
    cases = [(n, e) for n, e in (("linf", s.eps_linf), ("l2", s.eps_l2)) if e is not None]
    from tqdm.auto import tqdm  # here: book.setup has silenced tqdm's IProgress warning by now

    frames = []
    for ds, method, (norm, eps) in tqdm([(d, m, c) for d in s.datasets for m in s.methods for c in cases],
                                        desc="sampled metrics", disable=None):
        rows = both[(both["dataset"] == ds) & (both["model"] == method) & (both["norm"] == norm)
                    & np.isclose(both["eps"], eps) & (both["sample"] < s.n_images)].sort_values("sample")
        if len(rows) < s.n_images:
            raise ValueError(f"the region chapter's table has {len(rows)} images of {ds} / {method} at {norm} eps "
                             f"{eps}, fewer than n_images = {s.n_images}: pick radii and a number of images it has.")
        path = _cache_file(s, ds, method, norm, eps)
        if path.exists():
            scores = pd.read_parquet(path)
        else:
            model = s.model(ds, method)
            x = test_images(ds, s.n_images)[torch.tensor(rows["sample"].tolist())].to(s.device)
            with torch.no_grad():
                target = model(x).argmax(1)
            parts = []
            for metric in METRICS:
                started = time.perf_counter()
                result = _score(metric, model, x, target, eps, norm, s.seed)
                parts.append(pd.DataFrame({"sample": rows["sample"].to_numpy(), "metric": metric,
                                           "score": result.scores,
                                           "seconds": (time.perf_counter() - started) / len(x)}))
            scores = pd.concat(parts, ignore_index=True)
            with _io.atomic_path(path) as tmp:
                scores.to_parquet(tmp, index=False)
        frames.append(rows.merge(scores, on="sample"))
    out = pd.concat(frames, ignore_index=True)
    return out.assign(attack=out["achieved"] / out["attribution_norm"],
                      point_relative=out["point"] / out["attribution_norm"],
                      region_relative=out["region"] / out["attribution_norm"])


def _median(values) -> Interval:
    return bootstrap(np.median, np.asarray(values, dtype=float))


def shortfall_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per norm and relative metric: how far sampling falls short of the attack, and where the bounds lie.

    ``attack / sampled``: the median factor (bootstrap) by which the attack's relative deviation exceeds the metric's
    score, on the units where an attack kept the label; ``sampled below attack``: the share of those units (Wilson);
    ``sampled / first-order`` and ``sampled / region``: the medians of the score over each relative bound.
    """
    rows = []
    for (norm, eps, metric), g in frame[frame["metric"].isin(RELATIVE)].groupby(["norm", "eps", "metric"],
                                                                               sort=False):
        kept = g[g["kept"]]
        rows.append({"norm": norm, "eps": eps, "metric": metric, "units": len(kept),
                     "attack / sampled": _median(kept["attack"] / kept["score"]),
                     "sampled below attack": wilson(int((kept["score"] < kept["attack"]).sum()), len(kept)),
                     "sampled / first-order": _median(g["score"] / g["point_relative"]),
                     "sampled / region": _median(g["score"] / g["region_relative"])})
    return pd.DataFrame(rows)


def lipschitz_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per norm: the sampled local Lipschitz estimate against sigma_max at x and over the ball (medians, bootstrap).

    For perturbations inside the ball, ``sigma_region`` (its supremum reached) bounds ``||A(x') - A(x)|| / ||x' - x||``
    and ``sigma_point`` does so to first order. The estimate's Gaussian noise is not confined to the ball (std
    ``eps / sqrt(3)`` per coordinate in l-infinity), so an estimate above ``sigma_region`` may come from points outside
    it rather than from an ascent that fell short.
    """
    rows = []
    lip = frame[~frame["metric"].isin(RELATIVE)]
    for (norm, eps), g in lip.groupby(["norm", "eps"], sort=False):
        rows.append({"norm": norm, "eps": eps, "units": len(g),
                     "sigma at x / sampled": _median(g["sigma_point"] / g["score"]),
                     "sigma over ball / sampled": _median(g["sigma_region"] / g["score"]),
                     "sampled above sigma over ball": wilson(int((g["score"] > g["sigma_region"] * 1.01).sum()),
                                                             len(g))})
    return pd.DataFrame(rows)


def time_table(frame: pd.DataFrame, both: pd.DataFrame, attack_seconds: pd.Series | None = None) -> pd.DataFrame:
    """Seconds per image of every metric and of both bounds (medians over the cases), as measured when computed.

    ``attack_seconds``: optional per-image seconds of the validation sweep's attacks at the same cases (every attack
    and restart of a unit summed), added as a row.
    """
    rows = [{"what": m, "seconds per image": float(g.drop_duplicates(["dataset", "model", "norm", "eps"])["seconds"]
                                                   .median())} for m, g in frame.groupby("metric", sort=False)]
    cases = both.drop_duplicates(["dataset", "model", "norm", "eps"])
    rows += [{"what": "first-order bound", "seconds per image": float(cases["point_seconds"].median())},
             {"what": "region bound (first-order included)",
              "seconds per image": float(cases["region_seconds"].median())}]
    if attack_seconds is not None:
        rows.append({"what": "the validation sweep's attacks", "seconds per image": float(attack_seconds.median())})
    return pd.DataFrame(rows)


def _spearman(a, b) -> float:
    rho = scipy_stats.spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def ranking_table(frame: pd.DataFrame, reference: str = "point_relative", n_resamples: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Does ranking the training methods by a metric agree with ranking them by the bound?

    Per data set, norm and relative metric: the methods' medians of the metric's score and of ``reference`` (the
    relative first-order bound by default) over the same images, and Spearman's rho between the two orders, with a
    percentile bootstrap interval that resamples images (the same images under every method: paired).
    """
    rows = []
    rng = np.random.default_rng(seed)
    for (ds, norm, eps, metric), g in frame[frame["metric"].isin(RELATIVE)].groupby(
            ["dataset", "norm", "eps", "metric"], sort=False):
        score = g.pivot_table(index="sample", columns="model", values="score")
        bound = g.pivot_table(index="sample", columns="model", values=reference)[score.columns]
        methods = list(score.columns)
        rho = _spearman(score.median().to_numpy(), bound.median().to_numpy())
        draws = []
        for _ in range(n_resamples):
            idx = rng.integers(0, len(score), len(score))
            draws.append(_spearman(np.median(score.to_numpy()[idx], 0), np.median(bound.to_numpy()[idx], 0)))
        low, high = np.percentile(draws, [2.5, 97.5])
        interval = Interval(rho, min(float(low), rho), max(float(high), rho), len(score))  # holds rho (at +-1)
        rows.append({"dataset": ds, "norm": norm, "eps": eps, "metric": metric, "methods": len(methods),
                     "rank correlation": interval,
                     "verdict": verdict(interval, "positive", "negative", "images"),
                     "by metric, smallest first": ", ".join(METHOD_NAMES.get(m, m)
                                                             for m in score.median().sort_values().index),
                     "by bound, smallest first": ", ".join(METHOD_NAMES.get(m, m)
                                                            for m in bound.median().sort_values().index)})
    order = {name: i for i, name in enumerate(DATASET_NAMES)}
    return pd.DataFrame(rows).sort_values("dataset", key=lambda c: c.map(order), kind="mergesort", ignore_index=True)


def shortfall_values(short: pd.DataFrame, lipschitz: pd.DataFrame) -> dict:
    """The sentences the prose quotes, from ``shortfall_table`` and ``lipschitz_table``."""
    values = {}
    for norm, g in short.groupby("norm", sort=False):
        values[f"ch9_{norm}_shortfall"] = "; ".join(
            f"{r['metric']}: {r['attack / sampled']} (below the attack on {r['sampled below attack']} of the units)"
            for _, r in g.iterrows())
        values[f"ch9_{norm}_bounds"] = "; ".join(
            f"{r['metric']}: {r['sampled / first-order']} of the first-order bound, {r['sampled / region']} of the "
            "region bound" for _, r in g.iterrows())
    for _, r in lipschitz.iterrows():
        values[f"ch9_{r['norm']}_lipschitz"] = (
            f"σmax at x is {r['sigma at x / sampled']} times the sampled estimate, σmax over the ball "
            f"{r['sigma over ball / sampled']} times it, and the estimate exceeds σmax over the ball on "
            f"{r['sampled above sigma over ball']} of the units")
    return values


def ranking_values(ranking: pd.DataFrame) -> dict:
    """How many (data set, metric) rankings correlate positively with the bound's, negatively, or undecidedly, per norm.

    A verdict is the sign of the whole 95 % interval of Spearman's rho; a positive one says the orders agree more than
    chance, not that they are equal: the lowest lower end among the positive ones is quoted as well.
    """
    values = {}
    for norm, g in ranking.groupby("norm", sort=False):
        counts = g["verdict"].map(lambda v: v if v in ("positive", "negative") else "undecided").value_counts()
        positive = g[g["verdict"] == "positive"]["rank correlation"]
        lowest = f" (the lowest lower end of their intervals is {sig(min(i.low for i in positive))})" if len(
            positive) else ""
        values[f"ch9_{norm}_ranking"] = (
            f"of {len(g)} rankings (data set × metric), {counts.get('positive', 0)} correlate positively with the "
            f"bound's with 95 % confidence{lowest}, {counts.get('negative', 0)} negatively, and "
            f"{counts.get('undecided', 0)} cannot be told apart from no correlation with "
            f"{int(g['rank correlation'].map(lambda i: i.n).min())} images per model")
    return values


def sampled_scatter_figure(frame):
    """Sampled relative sensitivity against the attack's relative deviation per unit, one panel per metric.

    ``frame``: ``book.sampled.sampled_units`` rows of the relative metrics (columns metric, model, attack, score);
    colour: the training method (``METHOD_COLORS``); dashed: equality. Log-log.
    """
    from .style import _methods, method_color, plt
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
