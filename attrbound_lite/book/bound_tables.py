"""Chapter 5 (computing the bounds): the reference models' bound tables, and the intervals and verdicts it quotes.

Per model and attribution, ``experiments.bound_table`` gives the bounds from ``sigma_max`` (l2: ``eps sigma_max``;
l-infinity: ``eps sqrt(n) sigma_max``); where the dense Jacobian is affordable, ``abs_rowsum`` adds
``eps || |J| 1 ||_2`` and the l-infinity rows take the minimum of the two. Methods are compared with natural training
on the same test images through the relative bound ``r / ||A(x)||_2`` (scale-free, unlike ``sigma_max``): the paired
bootstrap (``stats.paired_difference``) of ``log(r / ||A(x)||)``, reported as the ratio ``exp(.)`` of the two
models' relative bounds (geometric mean over images); the verdict is read off the interval (``stats.verdict``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from .._checks import eval_mode, full_precision
from ..attributions import get_explainer
from ..bounds import attribution_bound, cosine_bound
from ..data import load_dataset
from ..experiments import bound_seed, bound_table
from ..stats import Interval, bootstrap, paired_difference, sig, verdict
from .findings import comparison
from .tables import DATASET_NAMES, METHOD_NAMES, NORM_NAMES, glue_key, radius_label

__all__ = ["compute_bounds", "abs_rowsum", "overview_values", "scaling_check", "at_radii", "at_rar_radii",
           "relative_values", "linf_forms", "linf_values", "compare_methods", "comparison_values", "model_table",
           "cosine_rows", "cosine_values"]


def _spec(attribution) -> tuple[str, dict]:
    """``(name, options)`` of an attribution given as a name or as ``{"name": ..., **options}``."""
    if isinstance(attribution, str):
        return attribution, {}
    options = dict(attribution)
    return options.pop("name"), options


def abs_rowsum(model, x: torch.Tensor, attribution, budget: int = 2 ** 20) -> np.ndarray:
    """``|| |J(x)| 1 ||_2`` per image: the l-infinity Euclidean bound per unit of eps from the whole Jacobian.

    ``J = dA/dx`` of the predicted class (as in ``bound_table``), column by column through the attribution's
    matrix-free operator: ``J e_k`` for c columns at once on the batch repeated c times, and
    ``(|J| 1)_i = sum_k |(J e_k)_i|``. That is n operator products per image (each m Hessian-vector products for IG
    with m steps) against the few dozen Lanczos needs for ``sigma_max``; batched this way it runs about 20 times
    faster on a CPU than differentiating the attribution row by row (``bounds.dense_jacobian``).

    Args:
        model: the classifier (smooth: its own Jacobian is taken).
        x: (B, ...) the images, on the model's device.
        attribution: a name or ``{"name": ..., **options}``.
        budget: path points x input values held in one graph (sets c and the images per call).

    Returns:
        (B,) float64 array.
    """
    name, options = _spec(attribution)
    explainer = get_explainer(name, model, **options)
    n = x[0].numel()
    per_image = n * explainer.path_points
    out = []
    with eval_mode(model), full_precision():
        for xb in x.split(max(1, budget // (per_image * 8))):
            batch = len(xb)
            c = max(1, min(n, budget // (per_image * batch)))
            with torch.no_grad():
                target = model(xb).argmax(1)
            op = explainer.for_batch(xb, repeats=c).jacobian_operator(xb.repeat(c, *[1] * (xb.ndim - 1)),
                                                                       target.repeat(c))
            sums = xb.new_zeros(batch, n)
            copies = torch.arange(c, device=xb.device).repeat_interleave(batch)  # copy j of the batch: column start+j
            for start in range(0, n, c):
                columns = start + copies
                basis = torch.zeros(c * batch, n, dtype=xb.dtype, device=xb.device)
                keep = columns < n
                basis[keep.nonzero().flatten(), columns[keep]] = 1
                sums += op.matvec(basis).abs().view(c, batch, n).sum(0)
            out.append(sums.norm(dim=1).double().cpu())
    return torch.cat(out).numpy()


def _tighten_linf(table: pd.DataFrame, rowsum: np.ndarray, use: bool) -> pd.DataFrame:
    """``table`` with the l-infinity rows at ``min(eps sqrt(n) sigma_max, eps || |J| 1 ||_2)`` when ``use``.

    ``rowsum``: ``|| |J| 1 ||_2`` by the table's ``sample`` (NaN where not computed). Adds ``bound_spectral`` (the
    bound from sigma_max), ``bound_abs_rowsum`` (kept whether used or not), ``linf_form`` (the form the row uses:
    ``"abs_rowsum"`` or ``"sqrt_n"``, None in l2) and ``relative`` (``bound_euclidean / attribution_norm``); the
    cosine bound follows the radius used.
    """
    linf = (table["norm"] == "linf").to_numpy()
    spectral = table["bound_euclidean"].to_numpy()
    dense = np.where(linf, table["eps"].to_numpy() * rowsum[table["sample"].to_numpy()], np.nan)
    smaller = use & (dense < spectral)
    tight = np.where(smaller, dense, spectral)
    a = table["attribution_norm"].to_numpy()
    return table.assign(bound_spectral=spectral, bound_abs_rowsum=dense, bound_euclidean=tight,
                        bound_cosine=cosine_bound(torch.tensor(tight), torch.tensor(a)).numpy(),
                        linf_form=np.where(linf, np.where(smaller, "abs_rowsum", "sqrt_n"), None),
                        relative=tight / a)


def compute_bounds(s, methods, eps_grid: Mapping, attributions, tol: float, *, max_dense_n: int = 0,
                   dense_attributions=(), dense_images: int | None = None,
                   dense_probe: int = 0) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The bound table of every reference model of the chapter, its test sets and what each part cost.

    For ``dense_attributions``, ``|| |J| 1 ||_2`` (``abs_rowsum``) is computed where n <= ``max_dense_n``, on the first
    ``dense_images`` images of every model; the l-infinity rows take the minimum of the two forms only where it covers
    all of the model's images (else the row-sum values measure the gain and the cost). Where n > ``max_dense_n``,
    ``dense_probe`` images of the first method's model measure its cost alone. The other attributions keep
    ``sqrt(n) sigma_max``.

    Args:
        s: the chapter's settings (``s.datasets``, ``s.n_samples``, ``s.model``, ``s.seed``, ``s.device``).
        methods: the training methods; each data set's models are ``s.model(dataset, method)``.
        eps_grid: ``{"l2": [...], "linf": [...]}``.
        attributions: names or ``{"name": ..., **options}``.
        tol: Lanczos tolerance.
        max_dense_n: the largest n with the row-sum form (0: none).
        dense_attributions: the attributions with the row-sum form (or its probe).
        dense_images: images per model with the row-sum form (``None``: all).
        dense_probe: images timed where n > ``max_dense_n`` (on one model per data set and attribution).

    Returns:
        ``(bounds, tests, costs)``: the rows of ``bound_table`` for the first ``s.n_samples`` test images of each
        model, with ``dataset``, ``method`` and the columns of ``_tighten_linf``; ``{dataset: (images, labels)}``;
        one row per (data set, method, attribution): ``images``, ``dense_images`` (with the row-sum form),
        ``dense_used`` (whether the rows take the minimum), ``lanczos_s`` and ``dense_s`` (seconds per image; NaN
        where no row sum was computed).
    """
    frames, costs, tests = [], [], {}
    for ds in s.datasets:
        tests[ds] = load_dataset(ds, "test", subset=None).tensors()
        x, y = tests[ds][0][:s.n_samples], tests[ds][1][:s.n_samples]
        n = x[0].numel()
        for m in methods:
            model = s.model(ds, m)
            for spec in attributions:
                name = _spec(spec)[0]
                start = time.perf_counter()
                table = bound_table(model, (x, y), eps_grid, norms=("l2", "linf"), attributions=[spec],
                                    model_name=m, seed=s.seed,
                                    bound_options={"tol": tol, "max_dense_n": 0, "sign_iters": 1})  # no lower est.
                lanczos = (time.perf_counter() - start) / len(x)
                eligible = n <= max_dense_n and name in dense_attributions
                probe = n > max_dense_n and name in dense_attributions and m == methods[0]
                k = min(len(x), dense_images or len(x)) if eligible else dense_probe if probe else 0
                rowsum, dense = np.full(len(x), np.nan), np.nan
                if k:
                    start = time.perf_counter()
                    rowsum[:k] = abs_rowsum(model, x[:k].to(s.device), spec)
                    dense = (time.perf_counter() - start) / k
                use = eligible and k == len(x)
                frames.append(_tighten_linf(table, rowsum, use).assign(dataset=ds, method=m))
                costs.append(dict(dataset=ds, method=m, attribution=name, images=len(x), dense_images=k,
                                  dense_used=use, lanczos_s=lanczos, dense_s=dense))
    return pd.concat(frames, ignore_index=True), tests, pd.DataFrame(costs)


def overview_values(bounds: pd.DataFrame) -> dict:
    """The overview values the chapter's prose quotes.

    Args:
        bounds: the bound table of ``compute_bounds``.

    Returns:
        ``{glue name: value}``: the numbers of rows, of models and of images per model, and the share of converged
        bounds.
    """
    per_model = bounds.groupby(["dataset", "method"])["sample"].nunique()
    return {"ch5_n_rows": f"{len(bounds):,}", "ch5_n_models": len(per_model), "ch5_n_images": int(per_model.min()),
            "ch5_converged": float(bounds["bound_converged"].mean())}


def scaling_check(model, x, bounds: pd.DataFrame, dataset: str, method: str, radii, tol: float, seed: int) -> float:
    """The largest relative difference between the saliency bounds computed directly and the table's rows.

    ``attribution_bound`` computes directly for ``x`` (the first batch of ``bound_table``: at most 64 samples), with the
    table's seed (``experiments.bound_seed``), at ``radii`` (``[(norm, eps), ...]``), in the sigma_max form; the rows
    are those of ``bounds`` for ``dataset`` and ``method`` (their ``bound_spectral``).
    """
    errors = []
    for norm, eps in radii:
        direct = attribution_bound(model, x, eps, norm, "saliency", tol=tol, max_dense_n=0,
                                   seed=bound_seed(seed, "saliency", 0))
        rows = bounds[(bounds["dataset"] == dataset) & (bounds["method"] == method)
                      & (bounds["attribution"] == "saliency") & (bounds["norm"] == norm) & (bounds["eps"] == eps)]
        rows = rows.sort_values("sample").head(len(x))
        errors.append(np.abs(direct.euclidean.cpu().double().numpy() - rows["bound_spectral"].to_numpy())
                      / rows["bound_spectral"].to_numpy())
    return float(np.max(np.concatenate(errors)))


def at_radii(bounds: pd.DataFrame, norm_eps: dict) -> pd.DataFrame:
    """Rows at one radius per norm, e.g. ``{"l2": 1.0, "linf": 0.1}``."""
    return bounds[np.logical_or.reduce([(bounds["norm"] == n) & np.isclose(bounds["eps"], e)
                                        for n, e in norm_eps.items()])]


def relative_values(bounds: pd.DataFrame, eps_l2, eps_linf) -> dict:
    """Where the cosine bound is vacuous (largest and smallest radii), and the l-infinity factor sqrt(n).

    The shares count (image, model, attribution) rows of the table: descriptions of these models, not estimates.
    """
    largest = at_radii(bounds, {"l2": max(eps_l2), "linf": max(eps_linf)})
    vacuous = largest.groupby("norm")["bound_cosine"].apply(lambda b: float((b <= -1).mean()))
    smallest = at_radii(bounds, {"l2": min(eps_l2), "linf": min(eps_linf)})
    linf = bounds[bounds["norm"] == "linf"]
    sqrt_n = linf["bound_spectral"].to_numpy() / linf["eps"].to_numpy() / linf["sigma_max"].to_numpy()
    return {"ch5_vacuous_l2": float(vacuous["l2"]), "ch5_vacuous_linf": float(vacuous["linf"]),
            "ch5_vacuous_small": float((smallest["bound_cosine"] <= -1).mean()),
            "ch5_eps_l2_max": radius_label(max(eps_l2)), "ch5_eps_linf_max": radius_label(max(eps_linf)),
            "ch5_eps_l2_min": radius_label(min(eps_l2)), "ch5_eps_linf_min": radius_label(min(eps_linf)),
            "ch5_sqrt_n": ", ".join(f"{int(round(v))}" for v in sorted(set(np.round(sqrt_n, 3))))}


def _by_image(rows: pd.DataFrame, value: str) -> list[np.ndarray]:
    """``value`` per image, one array per method (the images in one order): the units of a bootstrap by image."""
    wide = rows.pivot(index="sample", columns="method", values=value)
    return [wide[m].to_numpy() for m in dict.fromkeys(rows["method"])]


def linf_forms(bounds: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """Per data set and attribution: the l-infinity form the rows use, how much the minimum gains, what it cost.

    The ratio ``|| |J| 1 ||_2 / (sqrt(n) sigma_max)`` does not depend on eps; its median over the images and models
    where the row sum was computed gets a bootstrap interval by image (an image's models resampled together).

    Returns:
        Columns ``dataset, attribution, n`` (input values), ``form`` (the one the rows use), ``dense_images`` (images
        per model with the row sum; on one model where it is a probe), ``probe``, ``abs_smaller`` (share of those
        (image, model) pairs where the row-sum form is the smaller), ``median_ratio`` (an ``Interval`` string, "-"
        where not computed), ``lanczos_s`` and ``dense_s`` (seconds per image, mean over the models), ``images``
        and ``models``.
    """
    linf = bounds[bounds["norm"] == "linf"]
    linf = linf[linf["eps"] == linf["eps"].min()].assign(ratio=lambda t: t["bound_abs_rowsum"] / t["bound_spectral"])
    cost = costs.groupby(["dataset", "attribution"], sort=False).agg(
        lanczos_s=("lanczos_s", "mean"), dense_s=("dense_s", "mean"), used=("dense_used", "all"),
        k_min=("dense_images", "min"), k_max=("dense_images", "max"))
    rows = []
    for (ds, attr), sub in linf.groupby(["dataset", "attribution"], sort=False):
        c = cost.loc[(ds, attr)]
        done = sub[sub["ratio"].notna()]
        median = bootstrap(lambda *cols: np.median(np.concatenate(cols)), *_by_image(done, "ratio")) if len(done) \
            else None
        n = sub["bound_spectral"].iloc[0] / sub["eps"].iloc[0] / sub["sigma_max"].iloc[0]
        rows.append(dict(dataset=ds, attribution=attr, n=int(round(n ** 2)),
                         form="min(√n σmax, ‖|J|1‖₂)" if c["used"] else "√n σmax", dense_images=int(c["k_max"]),
                         probe=bool(c["k_min"] == 0 and c["k_max"] > 0),
                         abs_smaller=float((done["ratio"] < 1).mean()) if len(done) else np.nan,
                         median_ratio=str(median) if median is not None else "-", lanczos_s=c["lanczos_s"],
                         dense_s=c["dense_s"], images=sub["sample"].nunique(), models=sub["method"].nunique()))
    return pd.DataFrame(rows)


def linf_values(forms: pd.DataFrame, attribution: str = "saliency") -> dict:
    """The glue values of the l-infinity section from ``linf_forms``.

    ``ch5_linf_forms``: where each form is used (every attribution); for ``attribution``: ``ch5_linf_ratio_<ds>``
    (the median ratio with its interval, or "not computed"), ``ch5_linf_dense_s_<ds>`` and ``ch5_linf_lanczos_s_<ds>``
    (seconds per image), and ``ch5_linf_sentence``, one clause per data set: the form used, the gain where the row
    sum was computed, and the measured cost.
    """
    values, used, unused, clauses = {}, [], [], []
    for _, row in forms.iterrows():
        name = DATASET_NAMES.get(row.dataset, row.dataset)
        min_form = row.form.startswith("min")
        (used if min_form else unused).append(f"{name} ({_ATTRIBUTION_WORDS.get(row.attribution, row.attribution)})")
        if row.attribution != attribution:
            continue
        key = glue_key(row.dataset)
        values[f"ch5_linf_ratio_{key}"] = row.median_ratio if row.median_ratio != "-" else "not computed"
        values[f"ch5_linf_dense_s_{key}"] = float(row.dense_s)
        values[f"ch5_linf_lanczos_s_{key}"] = float(row.lanczos_s)
        cost = (f"the dense Jacobian cost {sig(row.dense_s)} s per image against {sig(row.lanczos_s)} s for σmax "
                f"({row.dense_s / row.lanczos_s:.0f} times as much)")
        extra = f"about {sig(row.dense_s * row.images * row.models / 60, 2)} more minutes for all {row.images} " \
                f"images of the {row.models} models"
        gain = (f"the median ratio is {row.median_ratio} and the row-sum form is the smaller for a share "
                f"{sig(row.abs_smaller)} of the (image, model) pairs")
        if min_form:
            clauses.append(f"on {name} (n = {row.n}) the rows use the minimum: {gain}; {cost}")
        elif row.median_ratio != "-" and not row.probe:
            clauses.append(f"on {name} (n = {row.n}) the rows use √n σmax; on the first {row.dense_images} images of "
                           f"each model {gain}, but {cost}, {extra}")
        elif np.isfinite(row.dense_s):
            clauses.append(f"on {name} (n = {row.n}) the rows use √n σmax: measured on {row.dense_images} "
                           f"image{'s' if row.dense_images > 1 else ''} of one model, {cost}, {extra}")
        else:
            clauses.append(f"on {name} (n = {row.n}) only √n σmax was computed")
    values["ch5_linf_forms"] = ("√n σmax in every row (no attribution has the row-sum form on all the images of "
                                "every model)" if not used else "the minimum in every row" if not unused else
                                f"the minimum for {_join(used)}; √n σmax alone for {_join(unused)}")
    values["ch5_linf_sentence"] = "; ".join(clauses)
    return values


_ATTRIBUTION_WORDS = {"saliency": "saliency", "input_x_gradient": "input × gradient",
                      "integrated_gradients": "IG"}


def _join(items) -> str:
    items = list(items)
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + (items[-1] if items else "")


def _cosine_verdict(gap: Interval, method_cos: np.ndarray, base_cos: np.ndarray) -> str:
    if np.all(method_cos <= -1) and np.all(base_cos <= -1):
        return "vacuous for both"
    return verdict(gap, above="higher", below="lower")


def compare_methods(bounds: pd.DataFrame, radii: Mapping[str, tuple[str, float]],
                    baseline: str = "natural") -> pd.DataFrame:
    """Every method against ``baseline`` on the same test images, per data set and attribution, at one radius each.

    Relative bound: ``paired_difference(log rel_method, log rel_baseline)`` by image, ``rel = r / ||A(x)||_2``, shown
    as the ratio ``exp(.)`` (the geometric mean over images of the per-image ratio; below 1: smaller relative
    bound); as both are linear in eps, the ratio is the same at every radius of the norm. Cosine bound: the paired
    difference ``cos_method - cos_baseline`` at the radius (positive: the method keeps attributions closer).

    Args:
        bounds: the table of ``compute_bounds``.
        radii: ``{dataset: (norm, eps)}``.
        baseline: the method the others are compared with.

    Returns:
        One row per (data set, attribution, method): ``norm, eps, images, ratio`` (an ``Interval`` string),
        ``relative`` (the verdict: smaller / larger / not distinguishable), ``cosine_gain`` (an ``Interval`` string),
        ``cosine`` (higher / lower / not distinguishable / vacuous for both), ``vacuous`` and ``baseline_vacuous``
        (shares of the images with a vacuous cosine bound), ``row_sum_share`` (share of the two models' rows that use
        the row-sum form), ``ratio_estimate, ratio_low, ratio_high`` (numbers) and ``test`` (the comparison of the log
        ratio with 0 for the Findings family, ``findings.comparison``).
    """
    rows = []
    for ds, (norm, eps) in radii.items():
        sel = bounds[(bounds["dataset"] == ds) & (bounds["norm"] == norm) & np.isclose(bounds["eps"], eps)]
        for attr, sub in sel.groupby("attribution", sort=False):
            methods = list(dict.fromkeys(sub["method"]))
            rel = dict(zip(methods, _by_image(sub, "relative"), strict=True))
            cos = dict(zip(methods, _by_image(sub, "bound_cosine"), strict=True))
            for m in methods:
                if m == baseline:
                    continue
                log_gap = paired_difference(np.log(rel[m]), np.log(rel[baseline]))
                ratio = Interval(*np.exp([log_gap.estimate, log_gap.low, log_gap.high]), log_gap.n)
                cos_gap = paired_difference(cos[m], cos[baseline])
                rows.append(dict(dataset=ds, attribution=attr, method=m, norm=norm, eps=eps, images=log_gap.n,
                                 ratio=str(ratio), relative=verdict(log_gap),
                                 cosine_gain=str(cos_gap), cosine=_cosine_verdict(cos_gap, cos[m], cos[baseline]),
                                 vacuous=float(np.mean(cos[m] <= -1)),
                                 baseline_vacuous=float(np.mean(cos[baseline] <= -1)),
                                 row_sum_share=float(sub.loc[sub["method"].isin([m, baseline]), "linf_form"]
                                                     .eq("abs_rowsum").mean()),
                                 ratio_estimate=ratio.estimate, ratio_low=ratio.low, ratio_high=ratio.high,
                                 test=comparison(log_gap, METHOD_NAMES.get(m, m), "larger", "smaller",
                                                 f"ratio {ratio} to natural training", unit="images",
                                                 where=f"{DATASET_NAMES.get(ds, ds)}, {NORM_NAMES.get(norm, norm)} "
                                                       f"ε = {radius_label(eps)}")))
    return pd.DataFrame(rows)


def comparison_values(comparison: pd.DataFrame, prefix: str, attribution: str = "saliency") -> dict:
    """Glue values of ``compare_methods`` for ``attribution``, with stable names.

    Per data set ``<ds>`` (``-`` as ``_``) and method ``<m>``: ``<prefix>_<ds>_<m>`` (the ratio with its interval),
    ``<prefix>_<ds>_<m>_verdict`` (smaller / larger / not distinguishable with N images), ``<prefix>_<ds>_<m>_test``
    (the comparison for the Findings family), ``<prefix>_<ds>_cos_<m>``
    and ``<prefix>_<ds>_cos_<m>_verdict`` (the cosine bound's paired difference and verdict); per data set
    ``<prefix>_<ds>_eps`` (the ball and radius as people write them), ``<prefix>_<ds>_images``, and
    ``<prefix>_<ds>_summary`` and ``<prefix>_<ds>_cos_summary`` (sentences grouping the methods by verdict); and
    ``<prefix>_form_note``, which l-infinity form the compared rows use.
    """
    rows = comparison[comparison["attribution"] == attribution]
    share = float(rows["row_sum_share"].mean())
    values = {f"{prefix}_form_note": (
        "the rows compared are in ℓ2" if (rows["norm"] == "l2").all() else
        "every ℓ∞ row compared uses √n σmax, whose factor √n cancels in the ratio, so the ratios are also those of the "
        "ℓ2 bound" if share == 0 else
        f"the rows compared use min(√n σmax, ‖|J|1‖₂), the row-sum form for a share {sig(share)} of them")}
    for ds, sub in rows.groupby("dataset", sort=False):
        key = f"{prefix}_{glue_key(ds)}"
        relative: dict[str, list[str]] = {}
        cosine: dict[str, list[str]] = {}
        for _, row in sub.iterrows():
            values[f"{key}_{row.method}"] = row.ratio
            values[f"{key}_{row.method}_verdict"] = row.relative
            values[f"{key}_{row.method}_test"] = row.test
            values[f"{key}_cos_{row.method}"] = row.cosine_gain
            values[f"{key}_cos_{row.method}_verdict"] = row.cosine
            relative.setdefault(row.relative, []).append(METHOD_NAMES.get(row.method, row.method))
            cosine.setdefault(row.cosine, []).append(METHOD_NAMES.get(row.method, row.method))
        row = sub.iloc[0]
        values[f"{key}_eps"] = f"{'ℓ∞' if row.norm == 'linf' else 'ℓ2'} ε = {radius_label(row.eps)}"
        values[f"{key}_images"] = int(sub["images"].min())
        values[f"{key}_summary"] = "; ".join(f"{word} for {_join(ms)}" for word, ms in relative.items())
        values[f"{key}_cos_summary"] = "; ".join(f"{word} for {_join(ms)}" for word, ms in cosine.items())
    return values


def model_table(bounds: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """One row per model: images, the share it predicts right, Lanczos convergence, and the seconds each form took."""
    per_model = bounds.groupby(["dataset", "method"], sort=False).agg(
        images=("sample", "nunique"), correct=("correct", "mean"), converged=("bound_converged", "mean"))
    seconds = costs.assign(lanczos_s=costs["lanczos_s"] * costs["images"],
                           dense_s=costs["dense_s"] * costs["dense_images"]).groupby(
        ["dataset", "method"], sort=False)[["lanczos_s", "dense_s"]].sum(min_count=1)
    return per_model.join(seconds).reset_index()


def cosine_rows(bounds: pd.DataFrame, dataset: str, eps_l2: float, eps_linf: float) -> pd.DataFrame:
    """Saliency rows of ``dataset`` at one radius per norm."""
    return at_radii(bounds[(bounds["attribution"] == "saliency") & (bounds["dataset"] == dataset)],
                    {"l2": eps_l2, "linf": eps_linf})


def cosine_values(mid: pd.DataFrame, dataset: str) -> dict:
    """The Spearman correlation between ``||A(x)||_2`` and the l2 cosine bound, over the images and models of ``mid``.

    ``mid``: ``cosine_rows``. The interval resamples images (an image's models together); the verdict reads the sign
    only when the interval excludes 0.
    """
    l2 = mid[mid["norm"] == "l2"]
    norms, cosines = _by_image(l2, "attribution_norm"), _by_image(l2, "bound_cosine")
    k = len(norms)

    def spearman(*cols):
        return spearmanr(np.concatenate(cols[:k]), np.concatenate(cols[k:])).statistic

    corr = bootstrap(spearman, *norms, *cosines)
    return {"ch5_cosine_corr": str(corr), "ch5_cosine_corr_verdict": verdict(corr, "positive", "negative"),
            "ch5_cosine_eps": radius_label(float(l2["eps"].iloc[0])),
            "ch5_first_dataset": DATASET_NAMES.get(dataset, dataset)}


def at_rar_radii(bounds: pd.DataFrame, radii: Mapping[str, float]) -> pd.DataFrame:
    """The l-infinity rows of each data set at its radius in ``radii`` (``{dataset: eps}``, e.g. RAR's)."""
    return pd.concat([at_radii(bounds[bounds["dataset"] == ds], {"linf": eps}) for ds, eps in radii.items()],
                     ignore_index=True)


def bound_distribution_figure(table, value: str = "sigma_max", ylabel: str | None = None):
    """Per-sample ``value`` (log scale) by training method, one panel per data set, hue the attribution.

    Data sets, methods and attributions by their readable names (``tables``); ``ylabel`` defaults to ``value``.
    """
    from .style import _methods, sns
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
    from .style import plt, sns
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
    from .style import _methods, method_color, plt, sns
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


def method_ratio_figure(comparison):
    """Each method's relative bound over natural training's: the ratio with its 95% interval (log x), per data set.

    ``comparison``: ``bound_tables.compare_methods`` (columns dataset, attribution, method, ratio_estimate,
    ratio_low, ratio_high); one marker per attribution; the dashed line at 1 is "no difference".
    """
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    from .style import _PALETTE, _methods, plt
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
