"""The region-bound chapter: the first-order bound and the curvature-aware region bound against the same attacks.

The chapter reuses the validation chapter's sweep (its attacks, bounds and images: ``validation_settings`` rebuilds
that chapter's settings, so a build that executed it reloads the sweep from disk) and computes the region bound
(``attrbound_lite.region.region_bound``) on a subset of its units::

    s6 = region.validation_settings(s)                          # chapter 6's settings, this build's device
    units = validation.unit_table(validation.run_validation(s6, s6.methods))
    both = region.region_units(s, s6, units)                    # one row per unit and radius, both bounds
    region.rates_table(both), region.onset_table(both), region.advice_values(both)
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import torch

from .. import _io
from ..experiments import Tolerance
from ..region import region_bound
from ..stats import Interval, bootstrap, sig, wilson
from .profiles import book_store, default_settings
from .tables import DATASET_NAMES, METHOD_NAMES, NORM_NAMES, radius_label
from .validation import UNIT, test_images

__all__ = ["validation_settings", "region_units", "rates_table", "tightness_table", "onset_table", "cost_values",
           "advice_values", "example_unit", "format_rates", "format_onset", "gain_values"]

CASE = ["norm", "eps"]
TOLERANCE = Tolerance()  # the violation tolerances of the sweep (Euclidean: 1 %, cosine: 1e-3)


def validation_settings(s, notebooks=None):
    """The validation chapter's settings in ``s.profile``, restricted to ``s.datasets``, on ``s.device``.

    ``profiles.default_settings("06_validation", s)``: chapter 6 runs one sweep per data set, so a build that executed
    it reloads them.
    """
    return default_settings("06_validation", s, notebooks)


def _cache_file(s, s6, dataset: str, method: str, norm: str, eps: float) -> str:
    """The file of one case, named by everything that determines its numbers."""
    from ..zoo import REFERENCE, reference_name

    identity = dict(weights=REFERENCE[reference_name(dataset, method)].key, dataset=dataset, norm=norm, eps=eps,
                    n_images=s.n_images, steps=s.steps, restarts=s.restarts, power_steps=s.power_steps,
                    max_dense_n=s6.max_dense_n, seed=s.seed, device=s.device.type)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return book_store("region", s.profile) / f"{dataset}-{method}-{norm}-{eps:.6g}-{digest}.parquet"


def region_units(s, s6, units: pd.DataFrame) -> pd.DataFrame:
    """Both bounds and the best label-keeping attack per unit (data set, model, image) and radius, saliency.

    For every data set of ``s.datasets``, method of ``s.methods``, norm and radius of ``s.eps_l2`` / ``s.eps_linf``
    (radii of chapter 6's grid), the first ``s.n_images`` images of chapter 6's sweep (``units``, from
    ``validation.unit_table``): the region bound of the model at that radius (``s.steps`` ascent steps, ``s.restarts``
    starts, ``s.power_steps``; chapter 6's ``max_dense_n``), computed once per case and kept as a Parquet file under
    the build folder (an interrupted build resumes with the missing cases).

    Returns:
        One row per unit and radius: ``dataset, model, sample, norm, eps``, the sweep's ``point`` bound and
        ``sigma_point``, ``region`` and ``sigma_region``, ``gain = sigma_region / sigma_point``, the best attack's
        ``achieved`` deviation and ``achieved_cosine`` (NaN where no attack kept the label), the two cosine bounds,
        whether each bound was exceeded (``exceeded_point``, the sweep's; ``exceeded_region``, by the same rule:
        ``achieved > 1.01 r`` or a cosine below the bound by 1e-3), and the seconds per image of both bounds.
    """
    missing = [(n, e) for n, radii in (("l2", s.eps_l2), ("linf", s.eps_linf)) for e in radii
               if not any(math.isclose(e, g) for g in (s6.eps_l2 if n == "l2" else s6.eps_linf))]
    if missing:
        raise ValueError(f"radii {missing} are not in the validation chapter's grid (ℓ2 {s6.eps_l2}, ℓ∞ "
                         f"{s6.eps_linf}); the region chapter attacks nothing itself, so pick radii of that grid.")
    sal = units[units["attribution"] == "saliency"]
    cases = [(ds, m, n, e) for ds in s.datasets for m in s.methods
             for n, radii in (("l2", s.eps_l2), ("linf", s.eps_linf)) for e in radii]
    from tqdm.auto import tqdm  # here: book.setup has silenced tqdm's IProgress warning by now

    frames = []
    for ds, method, norm, eps in tqdm(cases, desc="region bounds", disable=None):
        rows = sal[(sal["dataset"] == ds) & (sal["model"] == method) & (sal["norm"] == norm)
                   & np.isclose(sal["eps"], eps) & (sal["sample"] < s.n_images)].sort_values("sample")
        if len(rows) < s.n_images:
            raise ValueError(f"the validation sweep has {len(rows)} images of {ds} / {method} at {norm} eps {eps}, "
                             f"fewer than n_images = {s.n_images}.")
        path = _cache_file(s, s6, ds, method, norm, eps)
        if path.exists():
            bounds = pd.read_parquet(path)
        else:
            x = test_images(ds, s.n_images)[torch.tensor(rows["sample"].tolist())].to(s.device)
            model = s.model(ds, method)
            with torch.no_grad():
                target = model(x).argmax(1)
            r = region_bound(model, x, eps, norm, "saliency", target, steps=s.steps, restarts=s.restarts,
                             power_steps=s.power_steps, max_dense_n=s6.max_dense_n, seed=s.seed)
            bounds = pd.DataFrame({"sample": rows["sample"].to_numpy(),
                                   "region": r.euclidean.detach().cpu().double().numpy(),
                                   "sigma_region": r.sigma_max.detach().cpu().double().numpy(),
                                   "gain": r.gain.detach().cpu().double().numpy(),
                                   "point_seconds": r.point_seconds / len(x),
                                   "region_seconds": (r.point_seconds + r.seconds) / len(x)})
            with _io.atomic_path(path) as tmp:  # the region bounds only: the sweep's columns are read afresh
                bounds.to_parquet(tmp, index=False)
        frames.append(_case_frame(rows, bounds))
    return pd.concat(frames, ignore_index=True)


def _case_frame(rows: pd.DataFrame, bounds: pd.DataFrame) -> pd.DataFrame:
    """The rows of one case: the sweep's point bound and attacks beside the region bounds ``bounds`` (by sample).

    The region bound is at least the sweep's first-order bound (``region_bound`` never falls below its own
    first-order bound, which the sweep computed with another Lanczos start, equal to ``tol``); its cosine bound
    follows from it as in ``bounds.cosine_bound``.
    """
    bounds = rows[["sample"]].merge(bounds, on="sample", how="left", validate="one_to_one")
    achieved = (rows["relative_achieved"] * rows["attribution_norm"]).to_numpy()
    point = rows["bound_euclidean"].to_numpy()
    region = np.maximum(bounds["region"].to_numpy(), point)
    ratio = region / rows["attribution_norm"].to_numpy()
    region_cosine = np.where(ratio < 1, np.sqrt(np.clip(1 - ratio ** 2, 0, 1)), -1.0)
    cosine = rows["achieved_cosine"].to_numpy()
    exceeded = ((achieved > (1 + TOLERANCE.rtol) * region)
                | (cosine < region_cosine - TOLERANCE.cosine_atol)) & ~np.isnan(achieved)
    return pd.DataFrame({
        **{c: rows[c].to_numpy() for c in [*UNIT, *CASE]},
        "point": point, "sigma_point": rows["sigma_max"].to_numpy(),
        "region": region, "sigma_region": bounds["sigma_region"].to_numpy(), "gain": bounds["gain"].to_numpy(),
        "attribution_norm": rows["attribution_norm"].to_numpy(), "achieved": achieved,
        "achieved_cosine": cosine, "point_cosine": rows["bound_cosine"].to_numpy(), "region_cosine": region_cosine,
        "kept": rows["n_kept"].to_numpy() > 0, "exceeded_point": rows["exceeded"].to_numpy(),
        "exceeded_region": exceeded,
        "point_seconds": bounds["point_seconds"].to_numpy(), "region_seconds": bounds["region_seconds"].to_numpy(),
    })


def _rate(exceeded: pd.Series, kept: pd.Series) -> Interval:
    return wilson(int(exceeded[kept].sum()), int(kept.sum()))


def _median(values) -> Interval:
    return bootstrap(np.median, np.asarray(values, dtype=float))


def rates_table(both: pd.DataFrame, by=("norm", "eps")) -> pd.DataFrame:
    """Per group: the units with a label-keeping attack and the share of them that exceeded each bound (Wilson)."""
    rows = []
    for key, g in both.groupby(list(by), sort=True):
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                     "units": int(g["kept"].sum()), "point": _rate(g["exceeded_point"], g["kept"]),
                     "region": _rate(g["exceeded_region"], g["kept"])})
    return pd.DataFrame(rows)


def tightness_table(both: pd.DataFrame) -> pd.DataFrame:
    """Per norm and radius: the median of achieved / bound for each bound and the median gain (bootstrap)."""
    rows = []
    for (norm, eps), g in both[both["kept"]].groupby(["norm", "eps"], sort=True):
        rows.append({"norm": norm, "eps": eps, "achieved / point": _median(g["achieved"] / g["point"]),
                     "achieved / region": _median(g["achieved"] / g["region"]),
                     "region / point": _median(g["region"] / g["point"])})
    return pd.DataFrame(rows)


def gain_values(both: pd.DataFrame) -> dict:
    """``ch8_<norm>_gain``: the median of region / first-order bound (bootstrap) at the smallest and largest radius."""
    values = {}
    for norm, g in both.groupby("norm"):
        radii = sorted(g["eps"].unique())
        values[f"ch8_{norm}_gain"] = " and ".join(
            f"{_median(h['region'] / h['point'])} at ε = {radius_label(e)}"
            for e in dict.fromkeys((radii[0], radii[-1])) for h in [g[np.isclose(g["eps"], e)]])
    return values


def onset_table(both: pd.DataFrame) -> pd.DataFrame:
    """Per data set, model and norm: from which radius the first-order bound was exceeded, and the region bound then.

    ``first_exceeded``: the smallest radius with a unit that exceeded the point bound (NaN: none did);
    ``trusted_below``: the largest radius below it (NaN: it was exceeded already at the smallest radius, or never);
    the rates of both bounds at ``first_exceeded``, and the region bound's violations over every radius.
    """
    rows = []
    for (ds, model, norm), g in both.groupby(["dataset", "model", "norm"], sort=False):
        radii = sorted(g["eps"].unique())
        by_eps = {e: g[np.isclose(g["eps"], e)] for e in radii}
        bad = [e for e in radii if (by_eps[e]["exceeded_point"] & by_eps[e]["kept"]).any()]
        first = bad[0] if bad else float("nan")
        below = [e for e in radii if bad and e < first]
        at = by_eps[first] if bad else None
        rows.append(dict(dataset=ds, model=model, norm=norm, first_exceeded=first,
                         trusted_below=below[-1] if below else float("nan"),
                         point_rate=_rate(at["exceeded_point"], at["kept"]) if bad else wilson(0, 0),
                         region_rate=_rate(at["exceeded_region"], at["kept"]) if bad else wilson(0, 0),
                         region_violations=int((g["exceeded_region"] & g["kept"]).sum()),
                         units=int(g["kept"].sum())))
    order = {name: i for i, name in enumerate([*DATASET_NAMES, *METHOD_NAMES, *NORM_NAMES])}
    return pd.DataFrame(rows).sort_values(["dataset", "norm", "model"], key=lambda c: c.map(order),
                                          kind="mergesort", ignore_index=True)


def format_onset(onset: pd.DataFrame) -> pd.DataFrame:
    """``onset_table`` for readers: radii as written, "never" / "-" where the first-order bound held throughout."""
    out = onset.copy()
    out["first_exceeded"] = [radius_label(e) if not math.isnan(e) else "never" for e in out["first_exceeded"]]
    out["trusted_below"] = [radius_label(e) if not math.isnan(e) else "-" for e in out["trusted_below"]]
    for column in ("point_rate", "region_rate"):
        out[column] = [str(r) if r.n else "-" for r in out[column]]
    return out


def cost_values(both: pd.DataFrame) -> dict:
    """The region bound's cost per image in units of the point bound's (median over cases, bootstrap), per norm."""
    values = {}
    cases = both.drop_duplicates(["dataset", "model", "norm", "eps"])
    for norm, g in cases.groupby("norm"):
        values[f"ch8_{norm}_cost"] = str(_median(g["region_seconds"] / g["point_seconds"]))
    values["ch8_cost"] = str(_median(cases["region_seconds"] / cases["point_seconds"]))
    return values


def advice_values(both: pd.DataFrame, units: pd.DataFrame | None = None) -> dict:
    """The chapter's verdicts, per norm, computed from the counts and their Wilson intervals.

    ``units``: chapter 6's whole sweep (``validation.unit_table``), of which ``both`` holds the first images; the
    advice then quotes the first-order bound only below the smallest radius at which any of its saliency units
    exceeded it, so that it agrees with chapter 6.

    A bound counts as exceeded at a radius when a unit exceeded it there (its rate's interval then excludes 0).
    ``ch8_<norm>_point``: the smallest radius at which the first-order bound was first exceeded, up to which radius it
    held on every unit, and its rate at the largest radius; ``ch8_<norm>_reduction``: the violation rates of both bounds
    pooled over the (unit, radius) pairs (not tested against each other: the ascent starts at x, so the region bound
    is never below the first-order one and cannot be exceeded more often); ``ch8_<norm>_region``: the
    region bound's violations over all radii, with the Wilson interval of the pooled rate (a unit counts once per
    radius); ``ch8_<norm>_advice``: which bound to quote where, from those counts, with the upper end of the region
    bound's interval.
    """
    values = {}
    for norm, g in both.groupby("norm"):
        word = NORM_NAMES.get(norm, norm)
        radii = sorted(g["eps"].unique())
        rates = rates_table(g, by=("eps",)).set_index("eps")
        exceeded = [e for e in radii if rates.loc[e, "point"].estimate > 0]
        largest = rates.loc[radii[-1]]
        pooled = _rate(g["exceeded_region"], g["kept"])
        if not exceeded:
            values[f"ch8_{norm}_point"] = (f"in {word} no attack exceeded the first-order bound at any radius up to "
                                            f"ε = {radius_label(radii[-1])} (rate there {largest['point']})")
        else:
            held = [e for e in radii if e < exceeded[0]]
            values[f"ch8_{norm}_point"] = (
                f"in {word} the first-order bound was first exceeded at ε = {radius_label(exceeded[0])} (rate "
                f"{rates.loc[exceeded[0], 'point']} there" + (
                    f"; it held on every unit up to ε = {radius_label(held[-1])}" if held else
                    ", the smallest radius measured") + f"), and at ε = {radius_label(radii[-1])} the rate is "
                f"{largest['point']}")
        point_rate = _rate(g["exceeded_point"], g["kept"])
        values[f"ch8_{norm}_reduction"] = (
            f"in {word} the violation rate over every (unit, radius) pair is {point_rate} for the first-order bound "
            f"and {pooled} for the region bound")
        violations = int((g["exceeded_region"] & g["kept"]).sum())
        values[f"ch8_{norm}_region"] = (f"the region bound was exceeded on {violations} of {int(g['kept'].sum())} "
                                         f"(unit, radius) pairs, a rate of {pooled}")
        onset = exceeded[0] if exceeded else None
        if units is not None:
            sweep = units[(units["norm"] == norm) & (units["attribution"] == "saliency") & units["exceeded"]]
            if len(sweep) and (onset is None or sweep["eps"].min() < onset):
                onset = float(sweep["eps"].min())
        if pooled.estimate == 0 and onset is not None:
            advice = (f"in {word}, quote the first-order bound below ε = {radius_label(onset)} (the smallest radius at "
                      f"which an attack exceeded it{' in chapter 6' if units is not None else ''}) and the region "
                      f"bound from there on: no attack beat the region bound at any radius here (its violation rate "
                      f"is below {sig(pooled.high)} with 95 % confidence)")
        elif pooled.estimate == 0:
            advice = (f"in {word} both bounds held at every radius here; the first-order bound is the cheaper and the "
                      f"tighter one to quote (the region bound's violation rate is below {sig(pooled.high)} with 95 % "
                      "confidence)")
        else:
            advice = (f"in {word} the region bound was itself exceeded (its supremum is estimated by ascent, from "
                      "below): quote it as a practical bound with its measured violation rate, not as a guarantee")
        values[f"ch8_{norm}_advice"] = advice
    return values


def example_unit(both: pd.DataFrame, dataset: str, model: str = "natural", norm: str = "l2") -> pd.DataFrame:
    """The rows of the unit (image) of ``dataset``/``model`` whose point bound was exceeded most, across radii.

    The unit maximising ``achieved / point`` over the radii (every unit has the same radii), sorted by radius.
    """
    g = both[(both["dataset"] == dataset) & (both["model"] == model) & (both["norm"] == norm) & both["kept"]]
    if g.empty:
        raise ValueError(f"no unit of {dataset}/{model} in {norm} kept its label")
    worst = (g["achieved"] / g["point"]).idxmax()
    return both[(both["dataset"] == dataset) & (both["model"] == model) & (both["norm"] == norm)
                & (both["sample"] == both.loc[worst, "sample"])].sort_values("eps")


def format_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """``rates_table`` for readers: radii as written, the intervals as text."""
    out = rates.copy()
    out["eps"] = [radius_label(e) for e in out["eps"]]
    for column in ("point", "region"):
        out[column] = out[column].astype(str)
    return out


def region_example_figure(rows, title: str = ""):
    """One image against the radius: the best attack's deviation, the first-order bound and the region bound.

    ``rows``: ``book.region.example_unit`` (columns eps, achieved, point, region), one norm; log-log axes.
    """
    from .style import COLORS, plt
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
    from .style import _NORM_TEX, COLORS, plt
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
