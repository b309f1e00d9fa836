"""Chapter 6 (validating the bounds against PGD and IFIA): sweeps, unit tables, values and verdict sentences.

The unit of every statistic is one test image of one model of one data set (``UNIT``): rates count units (Wilson
intervals), medians and comparisons resample units (bootstrap, paired by image where two models or attacks saw the
same images). ``unit_table`` reduces the sweep's rows (one per attack and restart) to the best label-keeping attack per
unit and case (attribution, norm, radius); the other helpers read it and return the numbers and sentences the prose
quotes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..attacks import AttributionPGD
from ..attributions import get_explainer
from ..bounds import attribution_bound
from ..data import DATASET_INFO, load_dataset
from ..experiments import AttackSpec, summarize
from ..metrics import saliency_map
from ..protocols import rar_protocol
from ..stats import Interval, bootstrap, paired_difference, sig, verdict, wilson
from ..sweep import config_hash, config_identity, load_config, run_sweep
from .findings import comparison
from .tables import DATASET_NAMES, METHOD_NAMES, NORM_NAMES, glue_key, radius_label

__all__ = ["UNIT", "CASE", "COSINE_RESOLUTION", "rar_eps", "reference_radii", "sweep_config", "sweep_folder",
           "run_validation", "counts_table", "unit_table", "overview_values", "rates_by_eps", "rate_values",
           "float64_values", "ratio_quantiles", "ratio_values", "per_model_table", "model_comparisons",
           "comparison_tests", "disagreement_values", "bound_once_values", "comparison_figure", "attack_values",
           "dense_bound_check", "dense_values", "linf_form", "linf_gap_values", "test_images", "attack_examples"]

UNIT = ["dataset", "model", "sample"]      # one image of one model of one data set
CASE = ["attribution", "norm", "eps"]     # what a unit is attacked with


def rar_eps(dataset: str) -> float:
    """RAR's l-infinity evaluation radius of ``dataset`` (0.3, 0.1, 8/255)."""
    return float(rar_protocol(dataset, "evaluation")["eps"])


def reference_radii(datasets, eps_l2, eps_linf, l2_radius: float = 1.0) -> dict:
    """The radii of the per-model tables and comparisons: ``{(dataset, norm): eps}``.

    l-infinity: RAR's evaluation radius of each data set (``rar_eps``), where the grid has it; l2: ``l2_radius`` where
    the grid has it, else the grid's middle radius.
    """
    l2 = next((e for e in eps_l2 if math.isclose(e, l2_radius)), sorted(eps_l2)[len(eps_l2) // 2])
    radii = {}
    for ds in datasets:
        linf = next((e for e in eps_linf if math.isclose(e, rar_eps(ds), rel_tol=1e-6)), None)
        if linf is not None:
            radii[(ds, "linf")] = linf
        radii[(ds, "l2")] = l2
    return radii


def sweep_config(dataset: str, checkpoints: dict, *, n_samples: int, eps_l2, eps_linf, attributions, restarts: int,
                 steps: int, max_dense_n: int, shard_size: int, seed: int, norms=("l2", "linf")) -> dict:
    """The chapter's sweep of one data set and attribution.

    The models ``checkpoints`` (``{name: model.safetensors}``) on the first ``n_samples`` test images, the ``norms``
    (both by default), the ``attributions`` (sweep entries), attribution PGD and IFIA with ``AttackSpec``'s defaults
    (steps of 0.25 eps and 0.125 eps; IFIA's top-k over 10 % of the pixels), Lanczos at ``BoundOptions``' tolerance.
    The l-infinity bound is ``min(sqrt(n) sigma_max, || |J| 1 ||_2)`` where ``n <= max_dense_n`` (0: ``sqrt(n)
    sigma_max`` alone).
    """
    grids = {"l2": list(eps_l2), "linf": list(eps_linf)}
    return {
        "seed": seed, "shard_size": shard_size, "device": "auto",
        "data": {"name": dataset, "split": "test", "n_samples": n_samples},
        "models": [{"name": name, "checkpoint": str(path)} for name, path in checkpoints.items()],
        "norms": list(norms), "eps": {norm: grids[norm] for norm in norms},
        "attributions": list(attributions), "restarts": restarts,
        "attacks": [{"type": "pgd", "steps": steps}, {"type": "ifia", "steps": steps}],
        "bound": {"max_dense_n": max_dense_n},
    }


def sweep_folder(sweep_dir: str | Path, dataset: str, config: dict, device_type: str) -> Path:
    """The sweep's folder: ``sweep_dir/<dataset>-<the first 12 hex digits of the sweep's config hash>``.

    One folder per config (a sweep folder refuses another config), so rerunning with other parameters starts a new sweep
    and rerunning with the same ones resumes or reloads it. The hash is the one the sweep records in its manifest
    (``attrbound_lite.sweep.config_identity``: checkpoints by the sha256 of their weights, and the device type
    ``device_type``, "cpu" or "cuda").
    """
    digest = config_hash(config_identity(load_config(config), device_type))
    return Path(sweep_dir) / f"{dataset}-{digest[:12]}"


def run_validation(s, methods) -> pd.DataFrame:
    """Every sweep of the chapter (``s``: its settings), with a ``dataset`` column.

    Per data set: saliency on the reference models of every method in ``methods`` (``s.n_samples`` images, every
    radius), and integrated gradients (``s.ig_steps`` points) on those of ``s.ig_methods`` (``s.ig_samples`` images;
    every radius if ``s.ig_all_radii``, else the smallest of each norm and the data set's ``reference_radii``); two
    sweeps, each resumable in its own folder. With ``s.committed``, the saliency sweep's l-infinity rows come from
    the committed result (``linf_sweep``: the row-sum bound on every image) and only its l2 rows run now.
    """
    from ..experiments import KEY_COLUMNS
    from . import linf_sweep

    committed = getattr(s, "committed", False)
    tables = []
    for ds in s.datasets:
        weights = {m: s.weights(ds, m) for m in dict.fromkeys([*methods, *s.ig_methods])}
        grid = {"l2": list(s.eps_l2), "linf": list(s.eps_linf)}
        reference = reference_radii([ds], s.eps_l2, s.eps_linf)
        ig_grid = grid if s.ig_all_radii else {
            norm: sorted({min(radii), *(e for (_, n), e in reference.items() if n == norm)})
            for norm, radii in grid.items()}
        for attribution, models, n_samples, eps in (
                ("saliency", methods, s.n_samples, grid),
                ({"name": "integrated_gradients", "n_steps": s.ig_steps}, s.ig_methods, s.ig_samples, ig_grid)):
            if not models:
                continue
            from_result = committed and attribution == "saliency"
            config = sweep_config(ds, {m: weights[m] for m in models}, n_samples=n_samples, eps_l2=eps["l2"],
                                  eps_linf=eps["linf"], attributions=[attribution], restarts=s.restarts,
                                  steps=s.steps, max_dense_n=s.max_dense_n, shard_size=s.shard_size, seed=s.seed,
                                  norms=("l2",) if from_result else ("l2", "linf"))
            folder = sweep_folder(s.sweep_dir, ds, config, s.device.type)
            table = run_sweep(config, folder, progress=False).assign(dataset=ds)
            if from_result:
                table = pd.concat([table, linf_sweep.rows_for(s, ds, models)], ignore_index=True).sort_values(
                    list(KEY_COLUMNS), kind="stable", ignore_index=True)
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def counts_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per data set and attribution: models, images, attacks, label-keeping share, measured seconds.

    The seconds: per image, the bound and one attack run of all its steps; in all, every attack.
    """
    per_image = table.drop_duplicates([*UNIT, "attribution"])
    bound = per_image.groupby(["dataset", "attribution"], sort=False)["bound_seconds"].mean()
    out = table.groupby(["dataset", "attribution"], sort=False).agg(
        models=("model", "nunique"), images=("sample", "nunique"), attacks=("sample", "size"),
        label_kept=("label_kept", "mean"), attack_seconds=("attack_seconds", "mean"),
        attack_seconds_total=("attack_seconds", "sum"))
    out.insert(4, "bound_seconds", bound)
    return out.reset_index()


def unit_table(table: pd.DataFrame) -> pd.DataFrame:
    """The best label-keeping attack per unit and case: one row per (data set, model, image, attribution, norm, eps).

    Columns: the bound (``bound_euclidean``, its lower estimate ``bound_lower``, ``bound_cosine``,
    ``attribution_norm``, ``sigma_max``, ``relative_bound = bound_euclidean / ||A(x)||``), ``n_kept`` (label-keeping
    attacks), and over those attacks and
    their restarts: the largest ``ratio_euclidean`` (achieved / bound) and ``relative_achieved`` (``||A(x') - A(x)|| /
    ||A(x)||``), the smallest ``achieved_cosine``, the largest ``ratio_cosine``, whether any exceeded a bound
    (``exceeded``, ``exceeded_euclidean``, ``exceeded_cosine``), and per attack the largest ratio (``ratio_<attack>``)
    and relative deviation (``relative_<attack>``); NaN (or False) where no attack kept the label.
    """
    keys = [*UNIT, *CASE]
    t = table.assign(relative_bound=table["bound_euclidean"] / table["attribution_norm"],
                     relative_achieved=table["achieved_euclidean"] / table["attribution_norm"])
    kept = t[t["label_kept"]]
    out = t.groupby(keys, sort=True).agg(
        bound_euclidean=("bound_euclidean", "first"), bound_lower=("bound_euclidean_lower", "first"),
        bound_cosine=("bound_cosine", "first"),
        attribution_norm=("attribution_norm", "first"), sigma_max=("sigma_max", "first"),
        relative_bound=("relative_bound", "first"), n_kept=("label_kept", "sum"))
    best = kept.groupby(keys, sort=True).agg(
        ratio_euclidean=("ratio_euclidean", "max"), relative_achieved=("relative_achieved", "max"),
        achieved_cosine=("achieved_cosine", "min"), ratio_cosine=("ratio_cosine", "max"),
        exceeded=("exceeded", "any"), exceeded_euclidean=("exceeded_euclidean", "any"),
        exceeded_cosine=("exceeded_cosine", "any"))
    per_attack = kept.groupby([*keys, "attack"], sort=True)[["ratio_euclidean", "relative_achieved"]].max().unstack()
    per_attack.columns = [f"{'ratio' if v == 'ratio_euclidean' else 'relative'}_{a}" for v, a in per_attack.columns]
    out = out.join(best).join(per_attack)
    for column in ("exceeded", "exceeded_euclidean", "exceeded_cosine"):
        out[column] = out[column].astype("boolean").fillna(False).astype(bool)
    return out.reset_index()


def overview_values(table: pd.DataFrame, units: pd.DataFrame, steps: int, restarts: int) -> dict:
    """The overview the prose quotes: attacks, units, images per data set, the share of attacks that kept the label.

    The share's interval resamples units (images): the attacks on one image are not independent trials.
    ``ch6_scale`` states the scale of the evidence in one phrase (``steps``, ``restarts``: the attacks').
    """
    per_unit = table.groupby(UNIT)["label_kept"].mean()
    kept = bootstrap(np.mean, per_unit.to_numpy())
    images = table.groupby("dataset")["sample"].nunique()
    n_images = (f"{images.iloc[0]}" if images.nunique() == 1 else
                ", ".join(f"{n} ({DATASET_NAMES.get(d, d)})" for d, n in images.items()))
    n_models = int(table[["dataset", "model"]].drop_duplicates().shape[0])
    radii = table.groupby("norm")["eps"].nunique()
    return {"ch6_n_attacks": f"{len(table):,}", "ch6_n_units": f"{len(per_unit):,}", "ch6_n_models": n_models,
            "ch6_n_images": n_images, "ch6_n_cases": f"{units[CASE].drop_duplicates().shape[0]}",
            "ch6_label_kept": str(kept),
            "ch6_scale": (f"{len(per_unit):,} (model, image) units ({n_images} test images per data set, {n_models} "
                          f"models), {' and '.join(f'{n} {NORM_NAMES[m]} radii' for m, n in radii.items())}, "
                          f"attribution PGD and IFIA of {steps} steps, {restarts} "
                          f"restart{'s' if restarts != 1 else ''}")}


def _rate(k, n) -> Interval:
    return wilson(int(k), int(n))


def rates_by_eps(table: pd.DataFrame, by=("attribution", "norm", "eps")) -> pd.DataFrame:
    """Per group: the share of units with a violation, overall and per bound, with Wilson intervals.

    From ``summarize`` (its per-unit columns): ``images`` (units with a label-keeping attack), ``violating``, ``rate``
    (an ``Interval``), ``rate_euclidean``, ``rate_cosine``, the attack-level ``violation_rate`` and the share of vacuous
    cosine bounds.
    """
    by = list(by)
    out = summarize(table, by)
    for name, column in (("euclidean", "exceeded_euclidean"), ("cosine", "exceeded_cosine")):
        part = summarize(table.assign(exceeded=table[column]), by)
        out[f"rate_{name}"] = [_rate(k, n) for k, n in zip(part["sample_violations"], part["n_samples_kept"],
                                                            strict=True)]
    out["rate"] = [_rate(k, n) for k, n in zip(out["sample_violations"], out["n_samples_kept"], strict=True)]
    return out.rename(columns={"n_samples_kept": "images", "sample_violations": "violating"})[
        [*by, "images", "violating", "rate", "rate_euclidean", "rate_cosine", "violation_rate",
         "cosine_bound_vacuous"]]


def _norm_words(norm: str) -> str:
    return {"l2": "ℓ2", "linf": "ℓ∞"}[norm]


def rate_values(rates: pd.DataFrame) -> dict:
    """The verdicts on the violation rates of saliency by radius (``rates_by_eps``), per norm.

    ``ch6_<norm>_smallest``: "the rate at the smallest radius, eps = 0.01, is 0.000 (0.000 to 0.0119)";
    ``ch6_<norm>_onset``: where violations begin (the smallest radius with a violating unit, "already at the smallest
    radius" when that is the grid's first, and the smallest whose Wilson interval lies above 0.05) or that no unit
    violated; ``ch6_<norm>_largest``: the rate at the largest radius.
    """
    values = {}
    sal = rates[rates["attribution"] == "saliency"]
    for norm, rows in sal.sort_values("eps").groupby("norm", sort=False):
        norm_word = _norm_words(norm)
        first, last = rows.iloc[0], rows.iloc[-1]
        values[f"ch6_{norm}_smallest"] = (f"in {norm_word} the violation rate at the smallest radius, ε = "
                                          f"{radius_label(first['eps'])}, is {first['rate']}")
        values[f"ch6_{norm}_largest"] = (f"{last['rate']} at ε = {radius_label(last['eps'])}")
        any_violation = rows[rows["violating"] > 0]
        if any_violation.empty:
            values[f"ch6_{norm}_onset"] = (f"in {norm_word} no image violated a bound at any radius up to ε = "
                                           f"{radius_label(last['eps'])}")
            continue
        onset = any_violation.iloc[0]
        clear = rows[[r.low > 0.05 for r in rows["rate"]]]
        sentence = (f"in {norm_word} violations occur already at the smallest radius, ε = "
                    f"{radius_label(onset['eps'])}, where the rate is {onset['rate']}" if onset["eps"] == first["eps"]
                    else f"in {norm_word} violations begin at ε = {radius_label(onset['eps'])}, where the rate is "
                    f"{onset['rate']}")
        sentence += (f"; the rate is above 0.05 with 95 % confidence from ε = {radius_label(clear.iloc[0]['eps'])}"
                     if len(clear) else "; at no radius is the rate above 0.05 with 95 % confidence")
        values[f"ch6_{norm}_onset"] = sentence
    return values


def float64_values(table: pd.DataFrame) -> dict:
    """How many violations counted in the models' precision survive their recomputation in float64.

    ``experiments.validate_bounds`` recomputes every attack that counted a violation (``exceeded_model_dtype``) in
    float64, label, deviation and bound, and keeps it only if it holds there (``exceeded``); every rate of the chapter
    counts the confirmed ones. ``ch6_float64``: "412 of the 415 (unit, attribution, norm, radius) cases with a
    violation ..." (attacks in brackets); ``ch6_float64_survive`` the confirmed cases, ``ch6_float64_counted`` those
    counted first.
    """
    kept = table[table["label_kept"]]
    cases = kept.groupby([*UNIT, *CASE], sort=False)[["exceeded_model_dtype", "exceeded"]].any()
    counted, confirmed = int(cases["exceeded_model_dtype"].sum()), int(cases["exceeded"].sum())
    rows_counted, rows_confirmed = int(kept["exceeded_model_dtype"].sum()), int(kept["exceeded"].sum())
    sentence = (f"{confirmed:,} of the {counted:,} cases (unit, attribution, norm and radius) with a violation in "
                f"float32 still have one when the label, the deviation and the bound at the attack's point are "
                f"recomputed in float64 ({rows_confirmed:,} of {rows_counted:,} attacks)")
    return {"ch6_float64": sentence, "ch6_float64_survive": f"{confirmed:,}", "ch6_float64_counted": f"{counted:,}"}


# The smallest cosine distance 1 - c of the bound at which the cosine ratio is read: float32 cosines carry rounding
# errors of about 1e-7, so below this the ratio (1 - achieved cosine) / (1 - c) is rounding noise.
COSINE_RESOLUTION = 1e-4


def ratio_quantiles(units: pd.DataFrame, quantiles=(0.5, 0.95, 1.0)) -> pd.DataFrame:
    """Quantiles of achieved / bound across units per (data set, attribution, norm, eps), Euclidean and cosine.

    The cosine ratio counts the units whose bound has a cosine distance ``1 - c >= COSINE_RESOLUTION`` (and is not
    vacuous). Long format: ``dataset, attribution, norm, eps, bound ("Euclidean"/"cosine"), quantile, ratio``.
    """
    units = units.assign(ratio_cosine=units["ratio_cosine"].where(1 - units["bound_cosine"] >= COSINE_RESOLUTION))
    frames = []
    for bound, column in (("Euclidean", "ratio_euclidean"), ("cosine", "ratio_cosine")):
        q = (units.groupby(["dataset", *CASE])[column].quantile(list(quantiles)).rename("ratio")
             .reset_index().rename(columns={"level_4": "quantile"}))
        frames.append(q.assign(bound=bound))
    return pd.concat(frames, ignore_index=True).dropna(subset=["ratio"])


def _median(values) -> Interval:
    return bootstrap(np.median, np.asarray(values, dtype=float))


def ratio_values(units: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The median achieved / bound per (attribution, norm, eps) with bootstrap intervals, and the verdicts on them.

    Returns:
        ``(frame, values)``: the frame has ``attribution, norm, eps, images, median`` (an ``Interval``), ``p95``,
        ``max``; the values (saliency, per norm): the largest ratio at every radius (``ch6_<norm>_ratio_max``), the
        median ratio at the smallest and at the largest radius, and the
        paired differences of the ratio (by unit) from the smallest to the second radius (``ch6_<norm>_ratio_first``)
        and to the largest (``ch6_<norm>_ratio_change``) with their verdicts ("grows", "shrinks" or "not
        distinguishable with N images").
    """
    rows = []
    for (attribution, norm, eps), g in units.groupby(CASE, sort=True):
        r = g["ratio_euclidean"].dropna()
        rows.append(dict(attribution=attribution, norm=norm, eps=eps, images=len(r), median=_median(r),
                         p95=float(r.quantile(0.95)) if len(r) else math.nan, max=float(r.max())))
    frame = pd.DataFrame(rows)
    values = {}
    sal = units[units["attribution"] == "saliency"]
    for norm, g in sal.groupby("norm"):
        radii = sorted(g["eps"].unique())
        wide = g.pivot_table(index=UNIT, columns="eps", values="ratio_euclidean")
        fr = frame[(frame["attribution"] == "saliency") & (frame["norm"] == norm)].set_index("eps")
        values[f"ch6_{norm}_ratio_max"] = ", ".join(f"{sig(fr.loc[e, 'max'])} at ε = {radius_label(e)}" for e in radii)
        values[f"ch6_{norm}_ratio_small"] = f"{fr.loc[radii[0], 'median']} at ε = {radius_label(radii[0])}"
        values[f"ch6_{norm}_ratio_large"] = f"{fr.loc[radii[-1], 'median']} at ε = {radius_label(radii[-1])}"
        for name, (low, high) in (("first", radii[:2]), ("change", (radii[0], radii[-1]))):
            change = paired_difference(wide[high], wide[low]) if len(radii) > 1 else Interval(*[math.nan] * 3, 0)
            values[f"ch6_{norm}_ratio_{name}"] = (
                f"from ε = {radius_label(low)} to ε = {radius_label(high)} the ratio changes by {change} on average "
                f"over the same images: {verdict(change, 'it grows', 'it shrinks')}")
    return frame, values


def _unit_rate(g: pd.DataFrame) -> Interval:
    kept = g[g["n_kept"] > 0]
    return wilson(int(kept["exceeded"].sum()), len(kept))


def per_model_table(units: pd.DataFrame, radii: dict) -> pd.DataFrame:
    """Per (data set, model) at one radius per (data set, norm), saliency: scale-free quantities with intervals.

    Args:
        units: ``unit_table``.
        radii: ``{(dataset, norm): eps}``.

    Returns:
        Columns ``dataset, method, norm, eps, images``, the violation rate (Wilson), the medians (bootstrap) of the
        relative bound ``r / ||A(x)||``, of the relative achieved deviation and of achieved / bound, the median
        cosine bound and achieved cosine, and the share of vacuous cosine bounds (Wilson).
    """
    rows = []
    sal = units[units["attribution"] == "saliency"]
    for (ds, norm), eps in radii.items():
        at = sal[(sal["dataset"] == ds) & (sal["norm"] == norm) & np.isclose(sal["eps"], eps)]
        for model, g in at.groupby("model", sort=False):
            kept = g[g["n_kept"] > 0]
            rows.append(dict(dataset=ds, method=model, norm=norm, eps=eps, images=len(kept),
                             violation_rate=_unit_rate(g), relative_bound=_median(g["relative_bound"]),
                             relative_achieved=_median(kept["relative_achieved"]),
                             achieved_over_bound=_median(kept["ratio_euclidean"]),
                             cosine_bound=float(g["bound_cosine"].median()),
                             achieved_cosine=float(kept["achieved_cosine"].median()),
                             cosine_vacuous=wilson(int((g["bound_cosine"] <= -1).sum()), len(g))))
    order = {name: i for i, name in enumerate([*DATASET_NAMES, *NORM_NAMES, *METHOD_NAMES])}
    return pd.DataFrame(rows).sort_values(["dataset", "norm", "method"], key=lambda c: c.map(order),
                                          kind="mergesort", ignore_index=True)


def model_comparisons(units: pd.DataFrame, radii: dict, baseline: str = "natural") -> pd.DataFrame:
    """Each model against ``baseline`` on the same images, saliency, at one radius per (data set, norm).

    Paired differences (model - baseline, by image; images where either model's attacks all changed the label drop
    out) of the lowest cosine similarity the attacks reached between the clean and the attacked map (higher: the map
    turned less; scale-free), of the relative achieved deviation ``||A(x') - A(x)|| / ||A(x)||`` (which a map of
    larger norm lowers, and which saturates as the attacked map turns away) and of log10 of the relative bound. No
    verdict words: the Findings page reads the cosine comparisons as part of its family (``comparison_tests``).

    Returns:
        Columns ``dataset, method, norm, eps, cosine_difference, relative_achieved_difference,
        log10_relative_bound_difference``.
    """
    rows = []
    sal = units[units["attribution"] == "saliency"]
    for (ds, norm), eps in radii.items():
        at = sal[(sal["dataset"] == ds) & (sal["norm"] == norm) & np.isclose(sal["eps"], eps)]
        cosine = at.pivot_table(index="sample", columns="model", values="achieved_cosine")
        achieved = at.pivot_table(index="sample", columns="model", values="relative_achieved")
        bound = np.log10(at.pivot_table(index="sample", columns="model", values="relative_bound"))
        if baseline not in achieved:
            continue
        for model in [m for m in METHOD_NAMES if m in achieved and m != baseline]:
            rows.append(dict(dataset=ds, method=model, norm=norm, eps=eps,
                             cosine_difference=paired_difference(cosine[model], cosine[baseline]),
                             relative_achieved_difference=paired_difference(achieved[model], achieved[baseline]),
                             log10_relative_bound_difference=paired_difference(bound[model], bound[baseline])))
    return pd.DataFrame(rows)


def comparison_tests(comparisons: pd.DataFrame) -> dict:
    """The cosine comparisons of ``model_comparisons`` for the Findings page's family.

    ``ch6_test_cosine_<ds>_<norm>_<method>`` (``findings.comparison``: the paired difference of the lowest cosine the
    attacks reached, method minus natural; above zero the method's map turns less) and ``ch6_radius_<ds>_<norm>``
    ("ℓ∞ ε = 0.3"), ``<ds>`` with ``_``.
    """
    values = {}
    for r in comparisons.itertuples():
        ds = glue_key(r.dataset)
        values[f"ch6_radius_{ds}_{r.norm}"] = f"{NORM_NAMES[r.norm]} ε = {radius_label(r.eps)}"
        values[f"ch6_test_cosine_{ds}_{r.norm}_{r.method}"] = comparison(
            r.cosine_difference, METHOD_NAMES.get(r.method, r.method), "turns less", "turns more",
            f"{r.cosine_difference} in cosine", unit="images",
            where=f"{DATASET_NAMES.get(r.dataset, r.dataset)}, {NORM_NAMES[r.norm]} ε = {radius_label(r.eps)}")
    return values


def _same_bound(part: pd.DataFrame) -> bool:
    """Whether a model's relative-bound differences are one and the same interval at all its radii (and norms).

    Two models' relative bounds differ by ``sigma_max / ||A||``, whatever the radius, when both bounds are
    ``eps sigma_max`` (or ``eps sqrt(n) sigma_max``) on the same images: then one interval says it all.
    """
    first = part["log10_relative_bound_difference"].iloc[0]
    return all(np.allclose([i.estimate, i.low, i.high], [first.estimate, first.low, first.high])
               for i in part["log10_relative_bound_difference"])


def disagreement_values(comparisons: pd.DataFrame) -> dict:
    """``ch6_disagree``: where the attacks and the bound rank a method against natural training in opposite ways.

    ``ch6_disagree_short``: the same models, named only, for the Findings page.

    The attacks rank a method as more robust when the lowest cosine they reach is higher than natural training's
    (interval above zero), the bound when its relative bound is smaller (interval below zero); a (data set, method)
    disagrees at a radius when both intervals exclude zero and point opposite ways. One sentence per model, its
    radii together; the bound's difference said once where it is the same at every radius (``_same_bound``). Per
    comparison, not corrected for the family: the Findings page reads the attacks' comparisons under Holm.
    """
    cases, names = [], []
    for (ds, method), part in comparisons.groupby(["dataset", "method"], sort=False):
        opposite = part[[c.sign != 0 and b.sign != 0 and c.sign == b.sign for c, b in
                         zip(part["cosine_difference"], part["log10_relative_bound_difference"], strict=True)]]
        if opposite.empty:
            continue
        name = f"{METHOD_NAMES.get(method, method)} on {DATASET_NAMES.get(ds, ds)}"
        names.append(name)
        at = " and ".join(f"{r.cosine_difference} at {NORM_NAMES[r.norm]} ε = {radius_label(r.eps)}"
                          for r in opposite.itertuples())
        higher = opposite["cosine_difference"].iloc[0].sign > 0
        said = (f"{name}: the attacks leave a {'higher' if higher else 'lower'} cosine, {at}, while its relative "
                f"bound is {'larger' if higher else 'smaller'}")
        if len(part) > 1 and _same_bound(part):
            said += f" by {opposite['log10_relative_bound_difference'].iloc[0]} in log10, the same at every radius"
        else:
            said += ", " + " and ".join(f"by {r.log10_relative_bound_difference} in log10 at {NORM_NAMES[r.norm]}"
                                        for r in opposite.itertuples())
        cases.append(said)
    if not cases:
        return {"ch6_disagree": "on no model do the two intervals lie on opposite sides of zero",
                "ch6_disagree_short": "the bound never points the other way with both intervals excluding zero"}
    return {"ch6_disagree": f"they disagree, each interval on its own side of zero, for {len(cases)} "
                            f"model{'s' if len(cases) > 1 else ''}: " + "; ".join(cases),
            "ch6_disagree_short": f"the relative bound points the other way for {', '.join(names)}"}


def bound_once_values(comparisons: pd.DataFrame) -> dict:
    """``ch6_bound_once``: whether figure ``comparison_figure`` draws the relative bound once, and why, in words."""
    norms = comparisons["norm"].nunique()
    if norms > 1 and all(_same_bound(part) for _, part in comparisons.groupby(["dataset", "method"])):
        return {"ch6_bound_once": "with the bounds of this build the ratio is the same at both radii and norms, so "
                                  "the figure draws it once"}
    return {"ch6_bound_once": "where the bounds differ by more than that factor (the tighter ℓ∞ form, below), "
                              "the figure draws it per norm"}


def comparison_figure(comparisons: pd.DataFrame):
    """Each method minus natural training: the attacks' lowest cosine, their relative deviation, the relative bound.

    One row of panels per norm, one point per (data set, method) with its 95 % paired-bootstrap interval. Where the
    relative bound's differences are the same at every radius (``_same_bound`` for every model) the bound is drawn
    once, in the first row.
    """
    import matplotlib.pyplot as plt

    from .style import method_color

    norms = sorted(dict.fromkeys(comparisons["norm"]), key=lambda n: n != "linf")  # l-infinity (RAR's radius) first
    columns = (("cosine_difference", "lowest cosine the attacks reach"),
               ("relative_achieved_difference", "relative deviation they reach"),
               ("log10_relative_bound_difference", "log10 relative bound"))
    once = all(_same_bound(part) for _, part in comparisons.groupby(["dataset", "method"]))
    fig, axes = plt.subplots(len(norms), 3, figsize=(13, 1.1 + 2.6 * len(norms)), squeeze=False, sharey="row")
    for i, (row, norm) in enumerate(zip(axes, norms, strict=True)):
        part = comparisons[comparisons["norm"] == norm].reset_index(drop=True)
        labels = [f"{DATASET_NAMES.get(d, d)}, {METHOD_NAMES.get(m, m)}" for d, m in zip(part["dataset"],
                                                                                      part["method"], strict=True)]
        y = np.arange(len(part))[::-1]
        for ax, (column, title) in zip(row, columns, strict=True):
            ax.set_yticks(y, labels)
            if once and i > 0 and column == "log10_relative_bound_difference":
                ax.axis("off")
                ax.text(0.5, 0.5, "the same as above:\nthe ratio of two models'\nrelative bounds does not\n"
                        "depend on the radius", ha="center", va="center", transform=ax.transAxes, fontsize=10)
                continue
            for yi, method, iv in zip(y, part["method"], part[column], strict=True):
                ax.errorbar(iv.estimate, yi, xerr=[[iv.estimate - iv.low], [iv.high - iv.estimate]], fmt="o", ms=4,
                            color=method_color(method), capsize=2)
            ax.axvline(0, color="0.4", lw=0.8)
            where = "every radius" if once and column == "log10_relative_bound_difference" else NORM_NAMES[norm]
            ax.set_title(f"{title},\nminus natural's ({where})", fontsize=11)
    fig.tight_layout()
    return fig


def attack_values(units: pd.DataFrame, radii: dict) -> tuple[pd.DataFrame, dict]:
    """Attribution PGD against IFIA, and integrated gradients against saliency, on the same images.

    Paired differences of achieved / bound per (data set, norm) at ``radii``: PGD - IFIA (saliency, every model), and
    IG - saliency (the models attacked with both, same images and attacks' best).

    Returns:
        ``(frame, values)``: the frame has ``dataset, norm, eps, comparison, difference, verdict``; the values are one
        sentence per comparison (``ch6_pgd_vs_ifia``, ``ch6_ig_vs_saliency``).
    """
    rows = []
    for (ds, norm), eps in radii.items():
        at = units[(units["dataset"] == ds) & (units["norm"] == norm) & np.isclose(units["eps"], eps)]
        sal = at[at["attribution"] == "saliency"]
        if {"ratio_pgd", "ratio_ifia"} <= set(sal.columns):
            d = paired_difference(sal["ratio_pgd"], sal["ratio_ifia"])
            rows.append(dict(dataset=ds, norm=norm, eps=eps, comparison="PGD - IFIA", difference=d,
                             verdict=verdict(d, "PGD closer to the bound", "IFIA closer to the bound")))
        wide = at.pivot_table(index=["model", "sample"], columns="attribution", values="ratio_euclidean")
        if {"saliency", "integrated_gradients"} <= set(wide.columns):
            d = paired_difference(wide["integrated_gradients"], wide["saliency"])
            rows.append(dict(dataset=ds, norm=norm, eps=eps, comparison="IG - saliency", difference=d,
                             verdict=verdict(d, "IG closer to its bound", "saliency closer to its bound")))
    frame = pd.DataFrame(rows)
    values = {}
    for which, name in (("PGD - IFIA", "ch6_pgd_vs_ifia"), ("IG - saliency", "ch6_ig_vs_saliency")):
        sub = frame[frame["comparison"] == which] if len(frame) else frame
        values[name] = "; ".join(
            f"{DATASET_NAMES.get(r.dataset, r.dataset)} ({NORM_NAMES[r.norm]}, ε = {radius_label(r.eps)}): "
            f"{r.difference}, {r.verdict}" for r in sub.itertuples()) or "not measured"
    return frame, values


def dense_bound_check(s, n_images: int, method: str = "natural") -> pd.DataFrame:
    """The two l-infinity bounds, and what each costs, on the first ``n_images`` test images per data set.

    Saliency of the reference model ``method``: ``sqrt(n) sigma_max`` (Lanczos) and ``|| |J| 1 ||_2`` (n Hessian-vector
    products per image). Returns per image: ``dataset, n, sqrt_n, abs_rowsum, factor = min(both) / sqrt_n`` and the
    seconds per image of the bound without and with the row sums (``seconds_sqrt_n``, ``seconds_rowsum``).
    """
    frames = []
    for ds in s.datasets:
        model = s.model(ds, method)
        x = test_images(ds, n_images).to(s.device)
        timed = {}
        for dense in (0, x[0].numel()):
            t0 = time.perf_counter()
            bound = attribution_bound(model, x, 1.0, "linf", "saliency", max_dense_n=dense, seed=s.seed)
            timed[dense] = ((time.perf_counter() - t0) / len(x), bound)
        (sec0, _), (sec1, full) = timed.values()
        sqrt_n, rowsum = full.linf_sqrt_n.double().cpu(), full.linf_abs_rowsum.double().cpu()
        frames.append(pd.DataFrame(dict(dataset=ds, n=x[0].numel(), sqrt_n=sqrt_n.numpy(), abs_rowsum=rowsum.numpy(),
                                        factor=(torch.minimum(sqrt_n, rowsum) / sqrt_n).numpy(),
                                        seconds_sqrt_n=sec0, seconds_rowsum=sec1)))
    return pd.concat(frames, ignore_index=True)


def dense_values(dense: pd.DataFrame, n_units: dict, budget_seconds: float,
                 max_dense_n: int, committed: bool = False) -> tuple[pd.DataFrame, dict]:
    """The tightening of the l-infinity bound by ``|| |J| 1 ||_2`` and its cost, per data set.

    Args:
        dense: ``dense_bound_check``.
        n_units: ``{dataset: images x models}`` of the sweep (the bounds it would have to form).
        budget_seconds: the chapter's time budget, against which the cost is set.
        max_dense_n: the sweep's ``max_dense_n`` (the row sums are formed where ``n <= max_dense_n``).
        committed: the l-infinity rows come from the committed sweep (``linf_form``).

    Returns:
        ``(frame, values)``: per data set the median factor ``min / (sqrt(n) sigma_max)`` (bootstrap), the share of
        images where the row sums are smaller (Wilson), seconds per image of both forms and the extra seconds for the
        sweep; the values: a sentence on the factor, one on the cost and one on what this build's sweep used.
    """
    rows = []
    for ds, g in dense.groupby("dataset", sort=False):
        extra = float(g["seconds_rowsum"].iloc[0] - g["seconds_sqrt_n"].iloc[0]) * n_units.get(ds, 0)
        rows.append(dict(dataset=ds, n=int(g["n"].iloc[0]), images=len(g), factor=_median(g["factor"]),
                         rowsum_smaller=wilson(int((g["factor"] < 1).sum()), len(g)),
                         seconds_sqrt_n=float(g["seconds_sqrt_n"].iloc[0]),
                         seconds_rowsum=float(g["seconds_rowsum"].iloc[0]), sweep_extra_seconds=extra))
    frame = pd.DataFrame(rows)
    values = {
        "ch6_dense_factor": "; ".join(f"{DATASET_NAMES.get(r.dataset, r.dataset)} (n = {r.n}) {r.factor}, the row "
                                      f"sums smaller on a share {r.rowsum_smaller} of images"
                                      for r in frame.itertuples()),
        "ch6_dense_cost": "; ".join(f"{DATASET_NAMES.get(r.dataset, r.dataset)} {sig(r.seconds_rowsum)} s instead of "
                                    f"{sig(r.seconds_sqrt_n)} s per image, {sig(r.sweep_extra_seconds / 60)} extra "
                                    "minutes for this chapter's sweep" for r in frame.itertuples()),
        "ch6_dense_total": f"{sig(frame['sweep_extra_seconds'].sum() / 60)} extra minutes in all, against a budget of "
                           f"{sig(budget_seconds / 60)} minutes for the whole chapter",
        "ch6_dense_decision": linf_form(max_dense_n, frame["dataset"], committed),
    }
    return frame, values


def linf_form(max_dense_n: int, datasets, committed: bool = False) -> str:
    """Which l-infinity bound the chapter's saliency sweep uses on ``datasets``, as a clause.

    Args:
        max_dense_n: the live sweep's ``max_dense_n`` (the row sums are formed where ``n <= max_dense_n``).
        datasets: the data sets swept.
        committed: the l-infinity rows come from the committed sweep (``linf_sweep``: row sums on every image).
    """
    if committed:
        return ("the chapter's ℓ∞ saliency sweep, computed once and committed, forms the row sums on every image: its "
                "ℓ∞ bound is ε min(√n σ_max, ‖|J| 1‖₂), and every saliency ratio and violation in ℓ∞ is against it "
                "(the integrated-gradients sweep, run now, keeps ε √n σ_max)")
    sizes = [math.prod(DATASET_INFO[ds]["shape"]) for ds in datasets]
    formed = sorted({n for n in sizes if n <= max_dense_n})
    if formed and len(formed) == len(set(sizes)):
        return "this build's sweep forms the row sums on every image: its ℓ∞ bound is ε min(√n σ_max, ‖|J| 1‖₂)"
    where = (f"forms the row sums where n ≤ {max_dense_n} (n = {', '.join(map(str, formed))}) and keeps ε √n σ_max "
             "elsewhere" if formed else "keeps ε √n σ_max")
    return (f"this build's sweep {where}; where the minimum is smaller, its ℓ∞ ratios are lower than they would be "
            "against the tighter bound by that factor, and an attack that came within it of the bound would violate "
            "the tighter one")


def linf_gap_values(units: pd.DataFrame) -> dict:
    """How much of the l-infinity gap is the bound's: the sign-iteration lower estimate against the bound and attacks.

    At the smallest l-infinity radius, saliency, per unit: ``bound_lower / bound_euclidean`` (the linearised deviation
    ``eps ||J s||_2`` the sign iteration finds, as a share of the bound) and ``achieved / bound_lower``; medians with
    bootstrap intervals (``ch6_linf_lower``, ``ch6_linf_attack_vs_lower``).
    """
    sal = units[(units["attribution"] == "saliency") & (units["norm"] == "linf")]
    if sal.empty:
        return {"ch6_linf_lower": "not measured", "ch6_linf_attack_vs_lower": "not measured"}
    eps = sal["eps"].min()
    at = sal[sal["eps"] == eps]
    lower = at["bound_lower"] / at["bound_euclidean"]
    return {"ch6_linf_lower": f"{_median(lower)} at ε = {radius_label(eps)}",
            "ch6_linf_attack_vs_lower": str(_median(at["ratio_euclidean"] / lower))}


def test_images(dataset: str, n: int) -> torch.Tensor:
    """The first ``n`` test images of ``dataset``, (n, C, H, W) in [0, 1]."""
    return load_dataset(dataset, "test", subset=None).tensors()[0][:n]


def attack_examples(model, x, eps: float, norm: str, steps: int, seed: int, restarts: int = 2) -> list[dict]:
    """Attribution PGD (``norm`` ball of radius ``eps``) on the images ``x``, with the saliency maps before and after.

    Per image: the image, the attacked image, the two maps (``saliency_map``: channel-summed absolute values, normalised
    to sum 1), the difference map ``|A(x') - A(x)|`` summed over channels and divided by ``max |A(x)|`` (so its scale
    reads as a share of the clean map's largest value), and a title with the relative deviation ``||A(x') - A(x)|| /
    ||A(x)||`` and the relative bound ``r / ||A(x)||``.
    """
    with torch.no_grad():
        label = model(x).argmax(1)
    explainer = get_explainer("saliency", model)
    attack = AttributionPGD(model, explainer, eps=eps, alpha=AttackSpec.RELATIVE_ALPHA["pgd"] * eps, steps=steps,
                            norm=norm, restarts=restarts, seed=seed)
    result = attack(x, label)
    bound = attribution_bound(model, x, eps, norm, "saliency", target=label, seed=seed, max_dense_n=0)
    clean = explainer.attribute(x, target=label).detach()
    attacked = explainer.attribute(result.x_adv, target=label).detach()
    diff = (attacked - clean).abs().sum(1)
    diff = diff / clean.abs().sum(1).flatten(1).max(1).values[:, None, None]
    a_norm = clean.flatten(1).norm(dim=1)
    relative = (attacked - clean).flatten(1).norm(dim=1) / a_norm
    relative_bound = bound.euclidean / a_norm
    return [{"image": x[i], "adversarial": result.x_adv[i], "map": saliency_map(clean)[i],
             "adversarial_map": saliency_map(attacked)[i], "difference": diff[i],
             "relative": float(relative[i]), "relative_bound": float(relative_bound[i]),
             "label_kept": bool(result.label_kept[i]),
             "title": f"deviation {sig(float(relative[i]))} ‖A‖\nbound {sig(float(relative_bound[i]))} ‖A‖"}
            for i in range(len(x))]
