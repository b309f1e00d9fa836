"""Chapter 5 (computing the bounds): the bound tables, the check of their scaling and the values the prose quotes.

The tables are one ``experiments.bound_table`` per model; their scaling is checked against ``attribution_bound``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..bounds import attribution_bound
from ..data import load_dataset
from ..experiments import bound_seed, bound_table
from ..zoo import get_model

__all__ = ["compute_bounds", "overview_values", "scaling_check", "at_radii", "relative_values", "method_medians",
           "method_values", "cosine_rows", "cosine_values"]


def compute_bounds(s, methods, eps_grid: dict, attributions, tol: float) -> tuple[pd.DataFrame, dict]:
    """``(bounds, tests)``: the bound table of every model of the chapter, and its test sets by data set.

    The models are those of ``s.datasets`` x ``methods`` (``s``: the chapter's settings); ``bounds`` covers the first
    ``s.n_samples`` test images, with ``dataset`` and ``method`` columns; ``tests`` holds ``(images, labels)``.
    """
    frames, tests = [], {}
    for ds in s.datasets:
        tests[ds] = load_dataset(ds, "test", subset=None).tensors()
        x, y = tests[ds][0][:s.n_samples], tests[ds][1][:s.n_samples]
        for m in methods:
            model, _ = get_model(s.recipe(ds, m), s.model_dir, device=s.device, progress=False)
            table = bound_table(model, (x, y), eps_grid, norms=("l2", "linf"), attributions=attributions,
                                model_name=m, seed=s.seed, bound_options={"tol": tol, "max_dense_n": 0})
            frames.append(table.assign(dataset=ds, method=m))
    return pd.concat(frames, ignore_index=True), tests


def overview_values(bounds: pd.DataFrame) -> dict:
    """The overview values the chapter's prose quotes.

    Args:
        bounds: the bound table of ``compute_bounds``.

    Returns:
        ``{glue name: value}``: the number of rows and of models, and the share of converged bounds.
    """
    return {"ch5_n_rows": len(bounds), "ch5_n_models": bounds.groupby(["dataset", "method"]).ngroups,
            "ch5_converged": float(bounds["bound_converged"].mean())}


def scaling_check(model, x, bounds: pd.DataFrame, dataset: str, method: str, radii, tol: float, seed: int) -> float:
    """The largest relative difference between the saliency bounds computed directly and the table's rows.

    ``attribution_bound`` computes directly for ``x`` (the first batch of ``bound_table``: at most 64 samples), with the
    table's seed (``experiments.bound_seed``), at ``radii`` (``[(norm, eps), ...]``); the rows are those of ``bounds``
    for ``dataset`` and ``method``.
    """
    errors = []
    for norm, eps in radii:
        direct = attribution_bound(model, x, eps, norm, "saliency", tol=tol, max_dense_n=0,
                                   seed=bound_seed(seed, "saliency", 0))
        rows = bounds[(bounds["dataset"] == dataset) & (bounds["method"] == method)
                      & (bounds["attribution"] == "saliency") & (bounds["norm"] == norm) & (bounds["eps"] == eps)]
        rows = rows.sort_values("sample").head(len(x))
        errors.append(np.abs(direct.euclidean.cpu().double().numpy() - rows["bound_euclidean"].to_numpy())
                      / rows["bound_euclidean"].to_numpy())
    return float(np.max(np.concatenate(errors)))


def at_radii(bounds: pd.DataFrame, norm_eps: dict) -> pd.DataFrame:
    """Rows at one radius per norm, e.g. ``{"l2": 1.0, "linf": 0.1}``."""
    return bounds[np.logical_or.reduce([(bounds["norm"] == n) & (bounds["eps"] == e) for n, e in norm_eps.items()])]


def relative_values(bounds: pd.DataFrame, eps_l2, eps_linf) -> dict:
    """Where the cosine bound is vacuous (largest and smallest radii), and the l-infinity factor sqrt(n)."""
    largest = at_radii(bounds, {"l2": max(eps_l2), "linf": max(eps_linf)})
    vacuous = largest.groupby("norm")["bound_cosine"].apply(lambda b: float((b <= -1).mean()))
    smallest = at_radii(bounds, {"l2": min(eps_l2), "linf": min(eps_linf)})
    linf = bounds[bounds["norm"] == "linf"]
    sqrt_n = linf["bound_euclidean"].to_numpy() / linf["eps"].to_numpy() / linf["sigma_max"].to_numpy()
    return {"ch5_vacuous_l2": float(vacuous["l2"]), "ch5_vacuous_linf": float(vacuous["linf"]),
            "ch5_vacuous_small": float((smallest["bound_cosine"] <= -1).mean()),
            "ch5_eps_l2_max": max(eps_l2), "ch5_eps_linf_max": max(eps_linf),
            "ch5_sqrt_n": ", ".join(f"{int(round(v))}" for v in sorted(set(np.round(sqrt_n, 3))))}


def method_medians(bounds: pd.DataFrame, methods, eps: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows, medians)``: the l2 rows at ``eps`` and the median sigma_max per data set, attribution and method.

    ``medians`` has a row per data set and attribution and a column per method, in the order of ``methods``.
    """
    one = bounds[(bounds["norm"] == "l2") & (bounds["eps"] == eps)]
    median = one.groupby(["dataset", "attribution", "method"])["sigma_max"].median().unstack("method")[list(methods)]
    return one, median


def method_values(median: pd.DataFrame) -> dict:
    """With saliency: AdvAAT's median sigma_max relative to natural training's, and the method of smallest median.

    Both per data set; ``median``: ``method_medians``' table (needs natural and advaat).
    """
    ratio = (median["advaat"] / median["natural"]).xs("saliency", level="attribution")
    smallest = median.idxmin(axis=1).xs("saliency", level="attribution")
    return {"ch5_advaat_ratio": ", ".join(f"{ds}: {v:.2f}" for ds, v in ratio.items()),
            "ch5_smallest_method": ", ".join(f"{ds}: {m}" for ds, m in smallest.items())}


def cosine_rows(bounds: pd.DataFrame, dataset: str, eps_l2, eps_linf) -> pd.DataFrame:
    """Saliency rows of ``dataset`` at the middle radius of each norm."""
    return bounds[(bounds["attribution"] == "saliency")
                  & (((bounds["norm"] == "l2") & (bounds["eps"] == eps_l2[len(eps_l2) // 2]))
                     | ((bounds["norm"] == "linf") & (bounds["eps"] == eps_linf[len(eps_linf) // 2])))
                  & (bounds["dataset"] == dataset)]


def cosine_values(mid: pd.DataFrame, dataset: str) -> dict:
    """The Spearman correlation between the attribution norm and the cosine bound in l2 (``mid``: ``cosine_rows``)."""
    corr = mid[mid["norm"] == "l2"][["attribution_norm", "bound_cosine"]].corr(method="spearman").iloc[0, 1]
    return {"ch5_cosine_corr": float(corr), "ch5_first_dataset": dataset}
