"""The certified-bound chapter's numbers, computed once (``results/ch9_certified``) and read by the book.

Per reference model, test image, norm and radius: the certificate of ``attrbound_lite.certified.certified_bound``
(saliency), the first-order bound at ``x`` (its dense float64 limit, ``first_order``), the region bound
(``region.region_bound``) and the best deviation a label-keeping attribution PGD reached (a lower estimate of the
supremum that the three bounds bound from above). A certificate costs about 75 first-order bounds per MNIST image on
the 2-core CPU (chapter 11), too much for every CI build, so the sweep is run once, committed with its provenance,
and every CI run recomputes a sample of its rows (``attrbound_lite.results``).

``SETTINGS``: the seed-0 reference models of MNIST (all five methods) and Fashion-MNIST (natural and PGD-AT) on every
radius; the seed-1 and seed-2 MNIST reference models at ``COMPARE`` only and without region bound and attack (NaN
there), so that training methods are compared by their certificates over three training runs. CIFAR-10 is left out:
two certificates of the CIFAR CNN had not finished after three minutes on this CPU (its dense Jacobians have 3,072
columns per unit).

Reading the rows::

    rows = certified.load()
    certified.radius_table(rows)        # medians per data set, norm and radius, with intervals
    certified.trust_table(rows)         # per model: the largest radius where the certificate is within 2x, 10x
    certified.method_table(rows)        # certified relative deviation per method over seeds, against natural
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ..attacks import AttributionPGD
from ..bounds import attribution_bound
from ..certified import certified_bound
from ..region import region_bound
from ..results import ResultSpec, load_results
from ..stats import Interval, across_seeds, bootstrap, holm, sig
from ..zoo import REFERENCE, load_reference, reference_name
from .budget import METHODS
from .tables import DATASET_NAMES, METHOD_NAMES, NORM_NAMES, radius_label
from .validation import test_images

__all__ = ["SETTINGS", "COMPARE", "SPEC", "load", "radius_table", "target_table", "trust_table", "method_table",
           "vacuous_table", "example_table", "chapter_values", "trust_values", "cost_values",
           "format_radius_table", "format_trust_table", "format_method_table", "describe_target", "describe_methods"]

SETTINGS = {"datasets": {"mnist": list(METHODS), "fashion-mnist": ["natural", "pgd_at"]}, "n_images": 8,
            "seeds": [0, 1, 2], "eps_l2": [0.001, 0.01, 0.05, 0.25], "eps_linf": [1 / 255],
            "attack": {"steps": 20, "restarts": 2, "relative_alpha": 0.25, "seed": 0},
            "region": {"steps": 10, "restarts": 1, "seed": 0, "max_dense_n": 0}, "chunk_size": 8}
COMPARE = ("l2", 0.01)  # the radius at which the three seeds of every MNIST method are certified
TARGETS = (("l2", 0.05, 2.0), ("l2", 0.25, 10.0), ("linf", 1 / 255, 3.0))  # issue 21: median certificate / attack
KEYS = ("dataset", "model", "seed", "sample", "norm", "eps")
VALUES = ("log10_certified", "log10_first_order", "log10_region", "log10_attack")
EXTRAS = ("label", "predicted", "certified", "first_order", "region", "attack", "attribution_norm", "route",
          "label_kept", "certified_seconds", "region_seconds", "attack_seconds")
# The certificate is deterministic float64 and per image; the attack and the region ascent draw their random starts
# for the whole batch, so a recomputation reruns them on the build's batch (exact on this CPU). Another CPU may take
# another sign step: 0.03 in log10 is 7 % of a value.
TOLERANCE = 0.03


def _units() -> tuple[str, ...]:
    seed0 = [f"{ds}-{m}" for ds, methods in SETTINGS["datasets"].items() for m in methods]
    more = [f"mnist-{m}-seed{k}" for k in SETTINGS["seeds"][1:] for m in METHODS]
    return (*seed0, *more)


def _unit(unit: str) -> tuple[str, str, int]:
    seed = int(unit.rsplit("-seed", 1)[1]) if "-seed" in unit else 0
    base = unit.rsplit("-seed", 1)[0]
    dataset, method = next((ds, m) for ds, methods in SETTINGS["datasets"].items() for m in methods
                           if base == f"{ds}-{m}")
    return dataset, method, seed


def _radii(seed: int) -> list[tuple[str, float]]:
    if seed:
        return [COMPARE]
    return [("l2", e) for e in SETTINGS["eps_l2"]] + [("linf", e) for e in SETTINGS["eps_linf"]]


def _one_radius(model, x_all, label_all, samples: list[int], norm: str, eps: float,
                certificate_only: bool = False) -> dict:
    """The four quantities on the images ``x_all[samples]`` at one radius (numpy arrays of shape (n,)).

    The certificate is computed for ``samples`` only (it is per-image and deterministic); the region ascent and the
    attack run on the whole batch ``x_all`` as the build ran them, because their random starts are drawn for the
    batch: a recomputation on fewer images would start from other points. ``certificate_only``: the certificate, the
    first-order bound and ||A(x)|| only (region bound and attack NaN).
    """
    a = SETTINGS["attack"]
    x, label = x_all[samples], label_all[samples]
    clock = pd.Timestamp.now
    start = clock()
    cert = certified_bound(model, x, eps, norm, "saliency", target=label, chunk_size=SETTINGS["chunk_size"])
    t_cert = (clock() - start).total_seconds()
    n = x.shape[0]
    values = {"certified": cert.euclidean.cpu().numpy(), "first_order": cert.first_order.cpu().numpy(),
              "attribution_norm": cert.attribution_norm.cpu().numpy(), "route": np.array(cert.route),
              "certified_seconds": np.full(n, t_cert / n)}
    if certificate_only:
        nan = np.full(n, np.nan)
        return {**values, "region": nan, "attack": nan, "label_kept": np.zeros(n, dtype=bool), "region_seconds": nan,
                "attack_seconds": nan}
    start = clock()
    region = region_bound(model, x_all, eps, norm, "saliency", target=label_all, steps=SETTINGS["region"]["steps"],
                          restarts=SETTINGS["region"]["restarts"], seed=SETTINGS["region"]["seed"],
                          max_dense_n=SETTINGS["region"]["max_dense_n"])
    t_region = (clock() - start).total_seconds()
    start = clock()
    attack = AttributionPGD(model, "saliency", eps=eps, alpha=a["relative_alpha"] * eps, steps=a["steps"], norm=norm,
                            restarts=a["restarts"], seed=a["seed"])(x_all, label_all)
    t_attack = (clock() - start).total_seconds()
    m = x_all.shape[0]
    return {**values, "region": region.euclidean.detach().double().cpu().numpy()[samples],
            "attack": attack.deviation.euclidean.detach().double().cpu().numpy()[samples],
            "label_kept": attack.label_kept.cpu().numpy()[samples], "region_seconds": np.full(n, t_region / m),
            "attack_seconds": np.full(n, t_attack / m)}


def _run(unit: str, device, samples=None, radii=None, progress: bool = False) -> pd.DataFrame:
    dataset, method, seed = _unit(unit)
    model = load_reference(reference_name(dataset, method, seed=seed), device=device)[0]
    x_all = test_images(dataset, SETTINGS["n_images"]).to(device)
    samples = list(range(len(x_all))) if samples is None else sorted(samples)
    with torch.no_grad():
        predicted = model(x_all).argmax(1)
    labels = torch.as_tensor(_labels(dataset))[samples]
    frames = []
    for norm, eps in (radii or _radii(seed)):
        values = _one_radius(model, x_all, predicted, samples, norm, eps, certificate_only=seed > 0)
        frame = pd.DataFrame({"dataset": dataset, "model": method, "seed": seed, "sample": samples, "norm": norm,
                              "eps": float(eps), "label": labels.numpy(),
                              "predicted": predicted[samples].cpu().numpy(),
                              **values})
        for name in ("certified", "first_order", "region", "attack"):
            frame[f"log10_{name}"] = np.log10(frame[name].to_numpy())
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _labels(dataset: str) -> np.ndarray:
    from ..data import load_dataset

    return load_dataset(dataset, "test", subset=None).tensors()[1][:SETTINGS["n_images"]].numpy()


def _compute(unit: str, device, progress: bool) -> pd.DataFrame:
    return _run(unit, device, progress=progress)


def _recompute(rows: pd.DataFrame, device) -> pd.DataFrame:
    frames = [_run(str(rows["unit"].iloc[0]), device, samples=part["sample"].astype(int).tolist(),
                   radii=[(norm, float(eps))])
              for (norm, eps), part in rows.groupby(["norm", "eps"], sort=True)]
    return pd.concat(frames, ignore_index=True)


def _config() -> dict:
    models = {}
    for unit in _units():
        dataset, method, seed = _unit(unit)
        models[unit] = REFERENCE[reference_name(dataset, method, seed=seed)].key
    return {**SETTINGS, "compare": list(COMPARE), "attribution": "saliency", "models": models}


SPEC = ResultSpec(
    name="ch9_certified",
    title="Certified, first-order and region bounds and the best attribution PGD, saliency, MNIST and Fashion-MNIST",
    config=_config(), keys=KEYS, values=VALUES, extras=EXTRAS, digits=17, tolerance=TOLERANCE, units=_units(),
    compute=_compute, recompute=_recompute,
    modules=("attrbound_lite.book.certified", "attrbound_lite.certified", "attrbound_lite.certified_intervals",
             "attrbound_lite.region",
             "attrbound_lite.bounds", "attrbound_lite.attacks", "attrbound_lite.attributions", "attrbound_lite.models"))


def load(root=None) -> pd.DataFrame:
    """The committed rows (``results.load_results(SPEC)``), checked against their manifest, with ratio columns.

    Added columns: ``over_attack`` (certificate / best attack), ``over_first_order`` (certificate / first-order
    bound), ``region_over_attack``, ``relative`` (certificate / ||A(x)||) and ``vacuous`` (certificate >= ||A(x)||:
    the cosine bound it implies says nothing).
    """
    rows = load_results(SPEC, root)
    return rows.assign(over_attack=rows["certified"] / rows["attack"],
                       over_first_order=rows["certified"] / rows["first_order"],
                       region_over_attack=rows["region"] / rows["attack"],
                       first_over_attack=rows["first_order"] / rows["attack"],
                       relative=rows["certified"] / rows["attribution_norm"],
                       vacuous=rows["certified"] >= rows["attribution_norm"])


def _median(values, seed: int = 0) -> Interval:
    return bootstrap(np.median, np.asarray(values, dtype=float), seed=seed)


def _seed0_in_order(rows: pd.DataFrame) -> pd.DataFrame:
    """The seed-0 rows, data sets in ``SETTINGS``' order (MNIST first), then norm (l2 first) and radius."""
    order = {ds: i for i, ds in enumerate(SETTINGS["datasets"])}
    seed0 = rows[rows["seed"] == 0]
    return seed0.assign(_order=seed0["dataset"].map(order)).sort_values(["_order", "norm", "eps"], kind="stable")


def radius_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per data set, norm and radius (seed-0 models, all methods pooled): medians, with bootstrap intervals.

    Columns: the medians of the four quantities over ||A(x)||, the median certificate / best attack and certificate /
    first-order bound with their intervals, and the share of images whose certificate reaches ||A(x)||.
    """
    out = []
    for (ds, norm, eps), part in _seed0_in_order(rows).groupby(["dataset", "norm", "eps"], sort=False):
        a = part["attribution_norm"]
        over_attack, over_first = _median(part["over_attack"]), _median(part["over_first_order"])
        out.append({"dataset": ds, "norm": norm, "eps": eps, "n": len(part),
                    "attack": float(np.median(part["attack"] / a)),
                    "first_order": float(np.median(part["first_order"] / a)),
                    "region": float(np.median(part["region"] / a)),
                    "certified": float(np.median(part["certified"] / a)),
                    "over_attack": over_attack.estimate, "over_attack_low": over_attack.low,
                    "over_attack_high": over_attack.high, "over_first_order": over_first.estimate,
                    "over_first_order_low": over_first.low, "over_first_order_high": over_first.high,
                    "vacuous": float(part["vacuous"].mean())})
    return pd.DataFrame(out)


def target_table(rows: pd.DataFrame, dataset: str = "mnist") -> pd.DataFrame:
    """Issue 21's targets on ``dataset``'s seed-0 models: the median certificate / best attack at three radii.

    With its interval, the target, and whether the interval's upper end meets it (``met``) or its lower end misses it
    (``missed``); neither: the images cannot tell.
    """
    out = []
    for norm, eps, target in TARGETS:
        part = rows[(rows["dataset"] == dataset) & (rows["seed"] == 0) & (rows["norm"] == norm)
                    & np.isclose(rows["eps"], eps)]
        iv = _median(part["over_attack"])
        out.append({"norm": norm, "eps": eps, "target": target, "median": iv.estimate, "low": iv.low,
                    "high": iv.high, "n": len(part), "met": bool(iv.high <= target),
                    "missed": bool(iv.low > target)})
    return pd.DataFrame(out)


def _largest_within(part: pd.DataFrame, factor: float) -> float:
    """The largest radius of the grid up to which the median certificate / first-order stays within ``factor``.

    Every smaller radius of the grid must stay within it too; NaN where even the smallest radius exceeds it.
    """
    medians = part.groupby("eps")["over_first_order"].median().sort_index()
    within = medians <= factor
    if not within.iloc[0]:
        return math.nan
    first_out = (~within).to_numpy().argmax() if (~within).any() else len(within)
    return float(medians.index[first_out - 1])


def trust_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per seed-0 model and norm: the radii of the grid where the certificate stays within 2x and 10x of first order.

    ``within_2``, ``within_10``: the largest radius up to which the median certificate / first-order bound stays
    within the factor; ``beyond_2``, ``beyond_10``: the next radius of the grid (where it no longer does).
    """
    out = []
    for (ds, method, norm), part in rows[rows["seed"] == 0].groupby(["dataset", "model", "norm"], sort=False):
        grid = sorted(part["eps"].unique())
        row = {"dataset": ds, "model": method, "norm": norm}
        for factor in (2, 10):
            value = _largest_within(part, factor)
            row[f"within_{factor}"] = value
            later = [e for e in grid if math.isnan(value) or e > value]  # NaN: not even the smallest radius
            row[f"beyond_{factor}"] = later[0] if later else math.nan
        out.append(row)
    return pd.DataFrame(out)


def method_table(rows: pd.DataFrame, dataset: str = "mnist") -> pd.DataFrame:
    """Training methods by certified relative deviation (certificate / ||A(x)||) at ``COMPARE``, over seeds.

    Per method: the per-seed medians over the images, their mean with Student's t interval over the seeds
    (``stats.across_seeds``), and against natural training the per-seed differences (seed k of the method minus seed
    k of natural, the same images) with their interval and Holm-adjusted p-value over the four comparisons.
    """
    norm, eps = COMPARE
    part = rows[(rows["dataset"] == dataset) & (rows["norm"] == norm) & np.isclose(rows["eps"], eps)]
    per_seed = part.groupby(["model", "seed"])["relative"].median().unstack("seed")
    out = []
    for method in METHODS:
        if method not in per_seed.index:
            continue
        values = per_seed.loc[method].to_numpy(dtype=float)
        level = across_seeds(values)
        row = {"model": method, "seeds": int(np.isfinite(values).sum()), "per_seed": values.tolist(),
               "mean": level.estimate, "low": level.low, "high": level.high, "spread": float(np.ptp(values))}
        if method != "natural":
            diff = across_seeds(values - per_seed.loc["natural"].to_numpy(dtype=float))
            row.update(diff=diff.estimate, diff_low=diff.low, diff_high=diff.high, p_value=diff.p_value)
        out.append(row)
    table = pd.DataFrame(out)
    tested = table["model"] != "natural"
    reject, adjusted = holm(table.loc[tested, "p_value"].to_numpy())
    table.loc[tested, "p_holm"] = adjusted
    table.loc[tested, "separated"] = reject
    return table


def vacuous_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per data set, norm and radius (seed-0 models): the share of images whose certificate reaches ||A(x)||.

    The cosine bound such a certificate implies is vacuous; ``route`` is the route that gave most certificates.
    """
    out = []
    for (ds, norm, eps), part in _seed0_in_order(rows).groupby(["dataset", "norm", "eps"], sort=False):
        out.append({"dataset": ds, "norm": norm, "eps": eps, "vacuous": float(part["vacuous"].mean()),
                    "n": len(part), "route": part["route"].mode().iloc[0]})
    return pd.DataFrame(out)


def _interval(estimate, low, high) -> str:
    return f"{sig(estimate)} ({sig(low)} to {sig(high)})"


def example_table(rows: pd.DataFrame, dataset: str = "mnist", method: str = "natural", norm: str = "l2",
                  sample: int = 0) -> pd.DataFrame:
    """One image's four quantities over ||A(x)|| against the radius, in ``radius_table``'s columns."""
    part = rows[(rows["dataset"] == dataset) & (rows["model"] == method) & (rows["seed"] == 0)
                & (rows["norm"] == norm) & (rows["sample"] == sample)].sort_values("eps")
    a = part["attribution_norm"]
    return pd.DataFrame({"dataset": dataset, "norm": norm, "eps": part["eps"], "sample": sample,
                         **{c: part[c] / a for c in ("attack", "first_order", "region", "certified")},
                         "over_first_order": part["over_first_order"]})


def format_radius_table(table: pd.DataFrame) -> pd.DataFrame:
    """``radius_table`` for the page: intervals as text, shares in per cent."""
    return pd.DataFrame({
        "dataset": table["dataset"], "norm": table["norm"], "eps": table["eps"], "image-model pairs": table["n"],
        "certificate / best attack": [_interval(*r) for r in zip(table["over_attack"], table["over_attack_low"],
                                                                 table["over_attack_high"], strict=True)],
        "certificate / first-order bound": [_interval(*r) for r in zip(table["over_first_order"],
                                                                       table["over_first_order_low"],
                                                                       table["over_first_order_high"], strict=True)],
        "certificate ≥ ‖A(x)‖": [f"{100 * v:.0f} %" for v in table["vacuous"]]})


def format_trust_table(trust: pd.DataFrame) -> pd.DataFrame:
    """``trust_table`` for the page: radii as people write them, "below the grid" where even the smallest is out."""
    def label(value):
        return "below the grid" if pd.isna(value) else radius_label(value)

    def after(value):
        return "beyond the grid" if pd.isna(value) else radius_label(value)

    return pd.DataFrame({"dataset": trust["dataset"], "model": trust["model"], "norm": trust["norm"],
                         "within 2x up to ε": trust["within_2"].map(label),
                         "beyond 2x at ε": trust["beyond_2"].map(after),
                         "within 10x up to ε": trust["within_10"].map(label),
                         "beyond 10x at ε": trust["beyond_10"].map(after)})


def format_method_table(table: pd.DataFrame) -> pd.DataFrame:
    """``method_table`` for the page."""
    out = pd.DataFrame({"model": table["model"],
                        "per run": [", ".join(sig(v) for v in r) for r in table["per_seed"]],
                        "mean over runs": [_interval(*r) for r in zip(table["mean"], table["low"], table["high"],
                                                                      strict=True)]})
    diff = [("" if pd.isna(d) else _interval(d, lo, hi)) for d, lo, hi in
            zip(table["diff"], table["diff_low"], table["diff_high"], strict=True)]
    out["minus natural"] = diff
    out["Holm p"] = ["" if pd.isna(p) else sig(p) for p in table["p_holm"]]
    return out


def _span(low: float, high: float, factor: str, smallest: str) -> str:
    """Over the models, the largest radius within ``factor``: from ``low`` to ``high`` (NaN: not even the smallest)."""
    if pd.isna(low) and pd.isna(high):
        return f"within {factor} the first-order bound at no radius (not even {smallest})"
    if pd.isna(low):
        return f"within {factor} it up to ε = {radius_label(high)} for some models and at no radius for others"
    where = radius_label(low) if low == high else f"{radius_label(low)} to {radius_label(high)}, depending on the model"
    return f"within {factor} the first-order bound up to ε = {where}" if factor == "twice" else \
        f"within {factor} it up to ε = {where}"


def trust_values(trust: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """The trust radii in one sentence (glue name ``ch9_trust_sentence``), per data set and norm, over the models.

    A norm measured at one radius is summarised by the number of models within each factor there.

    Args:
        trust: ``trust_table(rows)``.
        rows: the rows it was computed from (for the smallest radius of each grid).
    """
    rows_eps = rows.groupby(["dataset", "norm"])["eps"].unique().to_dict()
    parts = []
    for (ds, norm), part in trust.groupby(["dataset", "norm"], sort=False):
        grid = sorted(rows_eps[(ds, norm)])
        where = f"{DATASET_NAMES[ds]} in {NORM_NAMES[norm]}"
        if len(grid) == 1:  # one radius: how many models are within each factor there
            counts = [int(part[f"within_{f}"].notna().sum()) for f in (2, 10)]
            parts.append(f"{where} (one radius, {radius_label(grid[0])}) within twice for {counts[0]} of {len(part)} "
                         f"models and within ten times for {counts[1]}")
            continue
        spans = [_span(part[f"within_{f}"].min(skipna=False), part[f"within_{f}"].max(), word,
                       radius_label(grid[0])) for f, word in ((2, "twice"), (10, "ten times"))]
        parts.append(f"{where} {spans[0]}, and {spans[1]}")
    return {"ch9_trust_sentence": "The median certificate stays: " + "; ".join(parts) + "."}


def _excess_slopes(rows: pd.DataFrame, dataset: str = "mnist", norm: str = "l2") -> list[tuple[float, float, float]]:
    """``(eps_a, eps_b, k)``: the growth of the certificate's excess between successive radii of the grid.

    ``k`` is the slope of log(median(certificate / first-order) - 1) against log(eps) (seed-0 models).
    """
    part = rows[(rows["dataset"] == dataset) & (rows["seed"] == 0) & (rows["norm"] == norm)]
    medians = list(part.groupby("eps")["over_first_order"].median().sort_index().items())
    return [(e0, e1, float(math.log((m1 - 1) / (m0 - 1)) / math.log(e1 / e0)))
            for (e0, m0), (e1, m1) in zip(medians[:-1], medians[1:], strict=True)]


def _spread_of_four(row: pd.Series) -> float:
    """The largest of the four quantities over the smallest."""
    values = [float(row[c]) for c in ("attack", "first_order", "region", "certified")]
    return max(values) / min(values)


def chapter_values(rows: pd.DataFrame, manifest: dict) -> dict:
    """The values the chapter's sentences quote (glue names ``ch9_*``), computed from the committed rows."""
    example = example_table(rows)
    targets = target_table(rows)
    vacuous = vacuous_table(rows)
    attack = SETTINGS["attack"]
    mnist = vacuous[vacuous["dataset"] == "mnist"]
    vac = "; ".join(f"{NORM_NAMES[n]}: " + ", ".join(f"{100 * v:.0f} % at {radius_label(e)}"
                                                      for e, v in zip(part["eps"], part["vacuous"], strict=True))
                    for n, part in mnist.groupby("norm", sort=False))
    seed0 = _seed0_in_order(rows)
    gradient = seed0.assign(g=seed0["route"] == "gradient_interval").groupby(["dataset", "norm", "eps"],
                                                                              sort=False)["g"].agg(["sum", "size"])
    switch = [f"{int(r['sum'])} of {int(r['size'])} {DATASET_NAMES[ds]} image-model pairs in {NORM_NAMES[norm]} at "
              f"ε = {radius_label(eps)}" for (ds, norm, eps), r in gradient.iterrows() if r["sum"] > 0]
    slopes = _excess_slopes(rows)
    seconds = rows[rows["seed"] == 0]
    l2 = seconds[seconds["norm"] == "l2"].groupby(["dataset", "eps"])
    practical = float(max(l2["region_over_attack"].median().max(), l2["first_over_attack"].median().max()))
    over = l2["over_attack"].median()
    return {
        "ch9_spread": (f"the median first-order and region bounds stay within {sig(practical)} times the best attack "
                       f"at every ℓ2 radius of every data set, while the median certificate reaches "
                       f"{sig(float(over.max()))} times it ({DATASET_NAMES[over.idxmax()[0]]}, ε = "
                       f"{radius_label(over.idxmax()[1])})"),
        "ch9_example_image": f"test image {int(example['sample'].iloc[0])}",
        "ch9_example_small": sig(float(example["over_first_order"].iloc[0])),
        "ch9_example_spread_small": sig(_spread_of_four(example.iloc[0])),
        "ch9_example_practical_large": sig(max(example["first_order"].iloc[-1], example["region"].iloc[-1])
                                           / example["attack"].iloc[-1]),
        "ch9_example_large": sig(float(example["over_first_order"].iloc[-1])),
        "ch9_example_large_eps": radius_label(float(example["eps"].iloc[-1])),
        "ch9_n_rows": f"{len(rows):,}", "ch9_n_images": SETTINGS["n_images"],
        "ch9_build_minutes": f"{manifest['seconds']['total'] / 60:.0f}",
        "ch9_build_cpu": manifest["hardware"]["cpu_count"],
        "ch9_eps_l2": ", ".join(radius_label(e) for e in SETTINGS["eps_l2"]),
        "ch9_eps_linf": ", ".join(radius_label(e) for e in SETTINGS["eps_linf"]),
        "ch9_region_steps": SETTINGS["region"]["steps"],
        "ch9_attack": f"{attack['steps']} steps from each of {attack['restarts']} starts",
        "ch9_compare_eps": radius_label(COMPARE[1]),
        "ch9_targets": " ".join(describe_target(t) for _, t in targets.iterrows()),
        "ch9_vacuous": f"on MNIST, {vac}",
        "ch9_excess_slope": ", ".join(f"{sig(k, 2)} from {radius_label(a)} to {radius_label(b)}" for a, b, k in slopes),
        "ch9_routes": ("the gradient-interval certificate is the smaller one on " + "; ".join(switch)
                       + "; the interval-Hessian certificate on every other pair") if switch else
                      "the interval-Hessian certificate is the smaller one on every image-model pair",
        "ch9_seconds_certified": sig(float(seconds["certified_seconds"].median())),
        "ch9_seconds_region": sig(float(seconds["region_seconds"].median())),
        "ch9_seconds_attack": sig(float(seconds["attack_seconds"].median())),
    }


def cost_values(model, images: torch.Tensor, eps: float = 0.01) -> dict:
    """The certificate's cost in first-order bounds, timed now on ``images`` (glue name ``ch9_cost``).

    One warm-up call of each (the certificate's operator norms are cached per model), then one timed call of each on
    the same batch.
    """
    import time

    certified_bound(model, images[:1], eps, "l2")
    attribution_bound(model, images[:1], eps, "l2")
    start = time.perf_counter()
    certified_bound(model, images, eps, "l2")
    t_cert = time.perf_counter() - start
    start = time.perf_counter()
    attribution_bound(model, images, eps, "l2")
    t_first = time.perf_counter() - start
    ratio = t_cert / t_first
    verdict = "within" if ratio <= COST_TARGET else "above"
    return {"ch9_cost": f"a certificate took {sig(t_cert / len(images))} seconds per image, "
                        f"{sig(ratio)} times the first-order bound on the same batch, {verdict} the target of "
                        f"{COST_TARGET}"}


def describe_target(t: pd.Series) -> str:
    """One sentence on one target row, computed from its interval."""
    where = f"{NORM_NAMES[t['norm']]} ε = {radius_label(t['eps'])}"
    number = _interval(t["median"], t["low"], t["high"])
    if t["met"]:
        return (f"At {where} the median certificate is {number} times the best attack: within the target of "
                f"{t['target']:g}.")
    if t["missed"]:
        return (f"At {where} the median certificate is {number} times the best attack: the target of "
                f"{t['target']:g} is missed.")
    return (f"At {where} the median certificate is {number} times the best attack: the interval contains the target "
            f"of {t['target']:g}, so these images cannot tell.")


def below_in_every_run(table: pd.DataFrame) -> str:
    """The robust methods whose per-run value is below natural training's in every run (run k against run k)."""
    natural = np.asarray(table.set_index("model").loc["natural", "per_seed"], dtype=float)
    below = [METHOD_NAMES[r.model] for r in table.itertuples()
             if r.model != "natural" and (np.asarray(r.per_seed, dtype=float) < natural).all()]
    n = len(table) - 1
    if not below:
        return "No robust method is below natural training in every run"
    who = "every robust method" if len(below) == n else _join(below)
    return f"In every one of the three runs, {who} certified a smaller relative deviation than natural training did"


def describe_methods(table: pd.DataFrame) -> str:
    """The comparison of training methods against natural training, from the Holm-adjusted intervals."""
    smaller = [METHOD_NAMES[m] for m in table.loc[table["separated"].fillna(False).astype(bool)
                                                   & (table["diff"] < 0), "model"]]
    larger = [METHOD_NAMES[m] for m in table.loc[table["separated"].fillna(False).astype(bool)
                                                  & (table["diff"] > 0), "model"]]
    if not smaller and not larger:
        return ("Over three training runs no robust method's certified relative deviation is separated from natural "
                "training's after Holm's correction: the seed-to-seed spread is as large as the differences.")
    parts = []
    if smaller:
        parts.append(f"{_join(smaller)} certified smaller relative deviations than natural training")
    if larger:
        parts.append(f"{_join(larger)} certified larger ones")
    rest = [METHOD_NAMES[m] for m in table["model"] if m != "natural" and METHOD_NAMES[m] not in smaller + larger]
    tail = f"; {_join(rest)} cannot be told from natural training over three runs" if rest else ""
    return "Over three training runs, " + " and ".join(parts) + tail + " (Holm-corrected, 95 %)."


COST_TARGET = 20  # issue 21: a certificate at most this many first-order bounds per MNIST image, the same batch


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def certified_radius_figure(table, ylabel: str = r"median over images, $/ \|A(x)\|_2$"):
    """Medians of the best attack, the first-order, region and certified bounds over ||A(x)||, against the radius.

    ``table``: ``book.certified.radius_table`` (columns dataset, norm, eps, attack, first_order, region, certified);
    one panel per data set and norm measured at two radii or more, log-log axes; the dotted line at 1 is ||A(x)||,
    above which a Euclidean bound's cosine bound is vacuous.
    """
    from .style import _NORM_TEX, COLORS, plt
    from .tables import DATASET_NAMES

    bound_lines = (("attack", "best attack", COLORS["worst"], "--^"),
                   ("first_order", "first-order bound", COLORS["bound"], "-o"),
                   ("region", "region bound", COLORS["mean_value"], "-s"),
                   ("certified", "certificate", "black", "-D"))
    counts = table.groupby(["dataset", "norm"], sort=False)["eps"].nunique()
    panels = [key for key, n in counts.items() if n >= 2]  # a norm measured at one radius has no curve
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.0 * columns, 3.4 * rows), squeeze=False)
    for ax, (ds, norm) in zip(axes.flat, panels, strict=False):
        sub = table[(table["dataset"] == ds) & (table["norm"] == norm)].sort_values("eps")
        for column, label, color, style in bound_lines:
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
    from .style import method_color, plt
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
