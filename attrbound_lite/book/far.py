"""Chapter 7 (FAR): does robust-attribution training shrink the worst case?

IFIA in RAR's protocol (``evaluation.ifia_per_image``) on the reference models and on the MNIST study models, one
row per (model, image); every comparison is a bootstrap interval over images (``attrbound_lite.stats``), paired where
the images are shared, and every verdict sentence is read off an interval:

- across training methods: each method against natural training on the same data set, on the first ``n`` test
  images that all the data set's models classify correctly (``method_summary``, ``method_values``);
- against chance: IFIA against random sign noise of the same radius on the same images (``noise_per_image``), so
  that "fragile" means "moved more than noise moves it";
- FAR's claim: the spread (max - min) of the mean top-k intersection over the training radii, or over the IG steps
  used in training, of FAR's methods against the earlier ones' (``spread_comparison``, ``spread_values``), on images
  every study model classifies correctly, resampled jointly across the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .. import metrics
from ..attacks import IFIA
from ..attributions import get_explainer
from ..bounds import attribution_bound
from ..data import load_dataset
from ..evaluation import ifia_per_image, noise_per_image
from ..protocols import rar_protocol
from ..stats import Interval, bootstrap, bootstrap_mean, paired_difference, sig, verdict
from ..zoo import REFERENCE, ROBUST_METHODS, STUDY_IG_STEPS, STUDY_RADII, reference_name
from .tables import DATASET_NAMES, METHOD_NAMES, radius_label

__all__ = ["FAR_METHODS", "EARLIER_METHODS", "STUDY_DATASET", "METRICS", "attack_settings", "study_models", "Study",
           "method_summary", "method_values", "best_method", "level_summary", "spread_comparison", "spread_values",
           "spread_table", "steps_study_values", "radius_study_values",
           "text_table", "glue_key", "settings_values"]

FAR_METHODS = ("aat", "advaat")
EARLIER_METHODS = ("pgd_at", "ig_norm")
STUDY_DATASET = "mnist"
METRICS = ("topk_intersection", "kendall_tau")
ATTACK_ATTRIBUTION = "saliency"  # steers IFIA (measured stronger than IG of 2 or 4 steps on the MNIST models)
BATCH = 128


def glue_key(name: str) -> str:
    """``name`` as it appears in glue names: ``"fashion-mnist"`` -> ``"fashion_mnist"``."""
    return name.replace("-", "_")


def attack_settings(dataset: str, steps: int | None = None, restarts: int | None = None) -> dict:
    """RAR's evaluation settings of ``dataset`` with ``steps`` IFIA steps of the same total length.

    With fewer steps than RAR's, the step size grows so that ``steps * alpha`` stays RAR's (MNIST: 100 x 0.01 ->
    20 x 0.05).

    Args:
        dataset: a data set of ``protocols.RAR``.
        steps: IFIA steps; ``None``: RAR's.
        restarts: IFIA restarts; ``None``: RAR's (3).

    Returns:
        The settings dict of ``evaluation.protocol`` (``eps, ifia_k, eval_k, ifia_steps, ifia_alpha, restarts``, ...).
    """
    cfg = rar_protocol(dataset, "evaluation")
    if steps is not None:
        cfg.update(ifia_alpha=cfg["ifia_alpha"] * cfg["ifia_steps"] / steps, ifia_steps=int(steps))
    if restarts is not None:
        cfg["restarts"] = int(restarts)
    return cfg


def _training(name: str) -> dict:
    """What distinguishes a study model: its method, training radius, IG steps in training and training images."""
    recipe = REFERENCE[name]
    options = recipe.options
    uses_ig = recipe.method == "ig_norm" or options.get("attribution") == "integrated_gradients"
    return {"method": recipe.method, "train_eps": recipe.eps if recipe.method != "natural" else 0.0,
            "train_ig_steps": options.get("ig_steps") if uses_ig else None, "n_train": recipe.n_train}


def study_models() -> pd.DataFrame:
    """The MNIST study models: the natural one, every robust method at each radius, IG-NORM and AAT at each IG steps.

    Returns:
        One row per model: ``name`` (``zoo.REFERENCE``), ``spec`` (the arguments of ``Settings.model``), ``method``,
        ``train_eps`` (0 for natural training), ``train_ig_steps`` (NaN where the method uses no IG), ``n_train``,
        and the studies a model belongs to: ``radius_study`` (the robust models of ``STUDY_RADII``) and
        ``steps_study`` (the models that use IG, at the largest radius: the IG-steps models and IG-NORM's radius model).
    """
    specs = [dict(method="natural", eps=STUDY_RADII[0])]  # any radius names the one natural study model
    specs += [dict(method=m, eps=e) for e in STUDY_RADII for m in ROBUST_METHODS]
    specs += [dict(method=m, ig_steps=k) for k in STUDY_IG_STEPS for m in ("ig_norm", "aat")]
    rows = []
    for spec in specs:
        name = reference_name(STUDY_DATASET, **spec)
        rows.append({"name": name, "spec": spec, **_training(name),
                     "radius_study": spec["method"] != "natural" and "eps" in spec})
    frame = pd.DataFrame(rows).astype({"train_ig_steps": float})
    frame["steps_study"] = frame["train_ig_steps"].notna() & (frame["train_eps"] == max(STUDY_RADII))
    return frame


class Study:
    """The chapter's measurements with its settings ``s``; test sets are loaded once.

    The settings used: ``n_ifia``, ``ifia_steps``, ``restarts``, ``eval_ig_steps``, ``n_bound``, ``bound_ig_steps``,
    ``seed``, ``device``.
    """

    def __init__(self, s):
        self.s = s
        self._tests = {}

    def test_data(self, ds: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The test split of ``ds`` as ``(images, labels)``, loaded on first use."""
        if ds not in self._tests:
            self._tests[ds] = load_dataset(ds, "test", subset=None).tensors()
        return self._tests[ds]

    def shared_images(self, ds: str, models: Sequence[torch.nn.Module], n: int):
        """The first ``n`` test images of ``ds`` that every model classifies correctly (fewer if the split runs out).

        Returns:
            ``(x, y, index)``: the images, their labels and their positions in the test split.
        """
        x, y = self.test_data(ds)
        found = []
        with torch.no_grad():
            for start in range(0, len(y), 1000):  # in order, until n are found
                part = slice(start, start + 1000)
                correct = torch.ones(len(y[part]), dtype=torch.bool)
                for model in models:
                    correct &= model(x[part].to(self.s.device)).argmax(1).cpu() == y[part]
                found.append(correct.nonzero().flatten() + start)
                if sum(map(len, found)) >= n:
                    break
        index = torch.cat(found)[:n]
        return x[index], y[index], index.numpy()

    def ifia(self, model, x, y, ds: str) -> pd.DataFrame:
        """IFIA in RAR's protocol (``attack_settings``), steered by saliency, on IG maps of ``eval_ig_steps`` points."""
        s = self.s
        return ifia_per_image(model, x, y, None, ig_steps=s.eval_ig_steps, attack_attribution=ATTACK_ATTRIBUTION,
                              attack_batch_size=BATCH, seed=s.seed, device=s.device,
                              **attack_settings(ds, s.ifia_steps, s.restarts))

    def noise(self, model, x, y, ds: str) -> pd.DataFrame:
        """The random baseline of ``ifia``: sign noise of IFIA's radius, scored on the same IG maps."""
        s = self.s
        return noise_per_image(model, x, y, None, ig_steps=s.eval_ig_steps, batch_size=BATCH, seed=s.seed,
                               device=s.device, **attack_settings(ds, s.ifia_steps, s.restarts))

    def relative_bound(self, model, x, y, ds: str) -> np.ndarray:
        """``r / ||A(x)||_2`` of the IG map (``bound_ig_steps`` points) on the l2 ball of the IFIA radius.

        ``r = eps sigma_max(J)``, the first-order Euclidean bound (chapter 2); the l2 ball of radius eps is the largest
        l2 ball inside IFIA's l-infinity ball.
        """
        eps = rar_protocol(ds, "evaluation")["eps"]
        device = self.s.device
        out = attribution_bound(model, x.to(device), eps, "l2", "integrated_gradients", target=y.to(device),
                                n_steps=self.s.bound_ig_steps, seed=self.s.seed)
        return (out.euclidean / out.attribution_norm).detach().cpu().double().numpy()

    def measure(self, ds: str, models: pd.DataFrame, bound: bool = False, noise: bool = False) -> pd.DataFrame:
        """IFIA (and the relative bound on the first ``n_bound`` images) of every model in ``models`` on shared images.

        Args:
            ds: the data set.
            models: one row per model with a ``spec`` column (the arguments of ``Settings.model``); the other columns
                are copied to the result.
            bound: also compute ``relative_bound`` (NaN beyond the first ``n_bound`` images).
            noise: also score random sign noise of the same radius (``noise_topk_intersection``,
                ``noise_kendall_tau``, ``noise_label_kept``).

        Returns:
            One row per (model, image): the model's columns, ``image`` (position in the test split),
            ``topk_intersection``, ``kendall_tau``, ``spearman``, ``label_kept``, ``relative_bound`` and, with
            ``noise``, the noise columns.
        """
        loaded = [self.s.model(ds, **spec) for spec in models["spec"]]
        x, y, index = self.shared_images(ds, loaded, self.s.n_ifia)
        frames = []
        for model, row in zip(loaded, models.drop(columns="spec").to_dict("records"), strict=True):
            frame = self.ifia(model, x, y, ds).assign(image=index, **row)
            frame["relative_bound"] = np.nan
            if bound:
                nb = min(self.s.n_bound, len(y))
                frame.loc[: nb - 1, "relative_bound"] = self.relative_bound(model, x[:nb], y[:nb], ds)
            if noise:
                base = self.noise(model, x, y, ds)
                for name in ("topk_intersection", "kendall_tau", "label_kept"):
                    frame[f"noise_{name}"] = base[name].to_numpy()
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def by_method(self, datasets: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
        """``measure`` of the reference models of every data set and method, with the relative bound and noise."""
        return pd.concat([self.measure(ds, pd.DataFrame({"dataset": ds, "method": list(methods),
                                                         "spec": [dict(method=m) for m in methods]}), bound=True,
                                       noise=True)
                          for ds in datasets], ignore_index=True)

    def studies(self) -> pd.DataFrame:
        """``measure`` of the MNIST study models (``study_models``), all on the same images."""
        return self.measure(STUDY_DATASET, study_models())

    def example(self, ds: str, method: str, image: int) -> dict:
        """One IFIA attack on test image ``image`` of ``ds`` for the reference model of ``method``, for a figure.

        Returns:
            A dict for ``figures.attack_examples_figure``: the image, the attacked image, the IG saliency maps before
            and after, their absolute difference, and a title with the top-k intersection.
        """
        s = self.s
        model = s.model(ds, method)
        x, y = (t[image:image + 1].to(s.device) for t in self.test_data(ds))
        cfg = attack_settings(ds, s.ifia_steps, s.restarts)
        attack = IFIA(model, get_explainer(ATTACK_ATTRIBUTION, model), eps=cfg["eps"], alpha=cfg["ifia_alpha"],
                      steps=cfg["ifia_steps"], k=cfg["ifia_k"], restarts=cfg["restarts"], seed=s.seed)
        x_adv = attack(x, y).x_adv
        ig = get_explainer("integrated_gradients", model, n_steps=s.eval_ig_steps)
        before, after = (metrics.saliency_map(ig.attribute(z, target=y)) for z in (x, x_adv))
        topk = metrics.topk_intersection(before, after, cfg["eval_k"]).item()
        title = f"{DATASET_NAMES.get(ds, ds)}, {METHOD_NAMES.get(method, method)}\ntop-k kept: {topk:.2f}"
        return {"image": x[0], "adversarial": x_adv[0], "map": before[0], "adversarial_map": after[0],
                "difference": (after[0] - before[0]).abs(), "title": title}


# ------------------------------------------------------------------------------------- across training methods

def _by_image(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    return frame.pivot(index="image", columns=column, values=value)


def _check_per_image(per_image, columns: Sequence[str], keys: Sequence[str] = ("dataset", "method", "image")):
    """Refuse a per-image table that lacks ``columns``, has no ``keys`` value in a row, or repeats a key."""
    if not isinstance(per_image, pd.DataFrame):
        raise TypeError(f"per_image must be a DataFrame (Study.by_method or Study.measure), got "
                        f"{type(per_image).__name__}.")
    missing = [c for c in (*keys, *columns) if c not in per_image.columns]
    if missing:
        raise ValueError(f"per_image lacks the columns {missing}; it needs {[*keys, *columns]} (Study.by_method).")
    empty = per_image[list(keys)].isna().any(axis=1)
    if empty.any():
        raise ValueError(f"{int(empty.sum())} rows of per_image have no {'/'.join(keys)} (a concatenation of tables "
                         "with other columns?); fill or drop them.")
    repeated = per_image.duplicated(subset=list(keys))
    if repeated.any():
        first = per_image.loc[repeated, list(keys)].iloc[0].to_dict()
        raise ValueError(f"per_image holds {int(repeated.sum())} repeated rows, e.g. {first}; one row per "
                         f"{', '.join(keys)}.")


def _check_values(given: Sequence[str] | str, present, what: str) -> None:
    unknown = [v for v in ([given] if isinstance(given, str) else given) if v not in set(present)]
    if unknown:
        raise ValueError(f"{what} {unknown} not in per_image, which holds {sorted(map(str, set(present)))}.")


def method_summary(per_image: pd.DataFrame, reference: str = "natural") -> pd.DataFrame:
    """Per (data set, method): the IFIA metrics and the relative bound, each against ``reference`` with a verdict.

    The means of the top-k intersection and Kendall's tau and their differences to ``reference`` (paired by image);
    the median relative bound and its difference to ``reference``'s (images resampled jointly).

    Args:
        per_image: ``Study.by_method`` (columns dataset, method, image, topk_intersection, kendall_tau,
            relative_bound).
        reference: the method every other is compared with.

    With a ``noise_topk_intersection`` column (``Study.measure(noise=True)``), also IFIA against random sign noise of
    the same radius on the same images: ``noise_topk`` (mean under noise), ``beyond_noise`` (noise minus IFIA, paired
    by image: how much more of the top-k the attack removes than noise does) and ``noise_verdict`` ("larger": the
    attack moves the map more than noise).

    Returns:
        One row per (data set, method) with ``Interval`` values: ``topk_intersection``, ``kendall_tau``,
        ``topk_gain``, ``kendall_gain``, ``relative_bound`` (median), ``bound_change`` (difference of medians), the
        verdict words ``topk_verdict``, ``kendall_verdict``, ``bound_verdict`` (empty for ``reference``) and ``n``;
        and the noise columns above when measured.
    """
    _check_per_image(per_image, (*METRICS, "relative_bound"))
    rows = []
    noise = "noise_topk_intersection" in per_image.columns
    for ds, frame in per_image.groupby("dataset", sort=False):
        _check_values(reference, frame["method"], f"the reference method on {ds}:")
        tables = {v: _by_image(frame, "method", v) for v in (*METRICS, "relative_bound")}
        if noise:
            tables["noise"] = _by_image(frame, "method", "noise_topk_intersection")
        for method in frame["method"].unique():
            row = {"dataset": ds, "method": method, "n": int(tables["topk_intersection"][method].notna().sum())}
            for v in METRICS:
                row[v] = bootstrap_mean(tables[v][method])
            if noise:
                beyond = paired_difference(tables["noise"][method], tables["topk_intersection"][method])
                row.update(noise_topk=bootstrap_mean(tables["noise"][method]), beyond_noise=beyond,
                           noise_verdict=verdict(beyond))
            bound = tables["relative_bound"]
            row["relative_bound"] = bootstrap(np.median, bound[method])
            if method != reference:
                for v, name in zip(METRICS, ("topk", "kendall"), strict=True):
                    gain = paired_difference(tables[v][method], tables[v][reference])
                    row.update({f"{name}_gain": gain, f"{name}_verdict": verdict(gain)})
                change = bootstrap(lambda a, b: np.median(a) - np.median(b), bound[method], bound[reference])
                row.update(bound_change=change, bound_verdict=verdict(change))
            rows.append(row)
    return pd.DataFrame(rows)


def best_method(per_image: pd.DataFrame, dataset: str, metric: str = "topk_intersection") -> str | None:
    """The method whose mean ``metric`` on ``dataset`` is larger than every other's by a paired interval above zero.

    Returns:
        The method, or ``None`` when no method's intervals separate it from every other.

    Raises:
        ValueError: ``dataset`` or ``metric`` not in ``per_image``.
    """
    _check_per_image(per_image, ())
    _check_values(dataset, per_image["dataset"], "the data set")
    if metric not in per_image.columns or metric in ("dataset", "method", "image"):
        raise ValueError(f"unknown metric {metric!r}; choose a column of per_image such as {METRICS}.")
    table = _by_image(per_image[per_image["dataset"] == dataset], "method", metric)
    for method in table.columns:
        if all(paired_difference(table[method], table[other]).sign > 0 for other in table.columns if other != method):
            return method
    return None


def _on(dataset: str) -> str:
    """``"MNIST"``, ``"the CIFAR-10 subset"``: a data set's name after "on"."""
    name = DATASET_NAMES.get(dataset, dataset)
    return f"the {name}" if name.endswith("subset") else name


def _gain_sentence(row, metric_words: str = "of the top-k pixels") -> str:
    """``"AdvAAT keeps 0.12 (0.08 to 0.16) more of the top-k pixels than natural training on MNIST"``."""
    who, where = METHOD_NAMES.get(row["method"], row["method"]), _on(row["dataset"])
    gain = row["topk_gain"]
    if gain.sign > 0:
        return f"{who} keeps {gain} more {metric_words} than natural training on {where}"
    if gain.sign < 0:
        return f"{who} keeps fewer {metric_words} than natural training on {where} (difference {gain})"
    return (f"{who} and natural training on {where} are {verdict(gain)} (difference {gain})")


def _noise_sentence(row) -> str:
    """IFIA against random sign noise for one model, read off the paired interval ``beyond_noise``."""
    ifia, noise, beyond = row["topk_intersection"], row["noise_topk"], row["beyond_noise"]
    kept = f"IFIA keeps {ifia} of the top-k pixels, random sign noise of the same radius {noise}"
    if beyond.sign > 0:
        return f"{kept}: the attack removes {beyond} more than noise"
    if beyond.sign < 0:
        return f"{kept}: the attack removes fewer than noise (difference {beyond}), too weak to show fragility"
    return f"{kept}: {verdict(beyond)} (difference {beyond}), so no fragility beyond noise is shown"


def method_values(summary: pd.DataFrame, per_image: pd.DataFrame, reference: str = "natural") -> dict:
    """The glued values of the comparison across methods.

    Per data set ``<ds>`` (``glue_key``) and method ``<m>``: ``ch7_natural_topk_<ds>``, ``ch7_natural_kendall_<ds>``
    (the natural model's intervals), ``ch7_topk_<ds>_<m>``, ``ch7_gain_<ds>_<m>`` (top-k minus natural),
    ``ch7_verdict_<ds>_<m>`` ("larger", "smaller", "not distinguishable with N images"), ``ch7_sentence_<ds>_<m>``,
    ``ch7_kendall_gain_<ds>_<m>``, ``ch7_bound_<ds>_<m>`` (median relative bound), ``ch7_bound_change_<ds>_<m>``,
    ``ch7_bound_verdict_<ds>_<m>``; with noise measured, ``ch7_noise_topk_<ds>_<m>`` and ``ch7_fragile_<ds>_<m>``
    (IFIA against random sign noise, a sentence); ``ch7_n_<ds>`` (images), ``ch7_best_<ds>`` (a sentence that names
    a method only when its intervals against every other method are above zero) and ``ch7_disagree`` (the models
    whose top-k and relative-bound verdicts against natural training point opposite ways: more robust by one, less
    by the other).
    """
    values = {}
    opposite = summary[((summary["topk_verdict"] == "larger") & (summary["bound_verdict"] == "larger"))
                       | ((summary["topk_verdict"] == "smaller") & (summary["bound_verdict"] == "smaller"))]
    values["ch7_disagree"] = ", ".join(f"{METHOD_NAMES.get(r.method, r.method)} on {_on(r.dataset)}"
                                       for r in opposite.itertuples()) or "none"
    for row in summary.to_dict("records"):
        ds, m = glue_key(row["dataset"]), row["method"]
        values[f"ch7_n_{ds}"] = row["n"]
        values[f"ch7_topk_{ds}_{m}"] = str(row["topk_intersection"])
        values[f"ch7_bound_{ds}_{m}"] = str(row["relative_bound"])
        if "beyond_noise" in row:
            values[f"ch7_noise_topk_{ds}_{m}"] = str(row["noise_topk"])
            values[f"ch7_fragile_{ds}_{m}"] = _noise_sentence(row)
        if m == reference:
            values[f"ch7_natural_topk_{ds}"] = str(row["topk_intersection"])
            values[f"ch7_natural_kendall_{ds}"] = str(row["kendall_tau"])
            continue
        values.update({f"ch7_gain_{ds}_{m}": str(row["topk_gain"]), f"ch7_verdict_{ds}_{m}": row["topk_verdict"],
                       f"ch7_sentence_{ds}_{m}": _gain_sentence(row),
                       f"ch7_kendall_gain_{ds}_{m}": str(row["kendall_gain"]),
                       f"ch7_bound_change_{ds}_{m}": str(row["bound_change"]),
                       f"ch7_bound_verdict_{ds}_{m}": row["bound_verdict"]})
    for ds in summary["dataset"].unique():
        best, where = best_method(per_image, ds), _on(ds)
        values[f"ch7_best_{glue_key(ds)}"] = (
            f"on {where}, {METHOD_NAMES.get(best, best)} keeps more of the top-k pixels than every other method"
            if best else f"on {where}, no method keeps more of the top-k pixels than every other one (the paired "
                         "intervals do not separate them)")
    return values


# --------------------------------------------------------------------------------------------- FAR's claim

def level_summary(per_image: pd.DataFrame, level: str, methods: Sequence[str]) -> pd.DataFrame:
    """Per (method, ``level``): the mean top-k intersection and Kendall's tau with their bootstrap intervals.

    Methods in the order of ``methods``, levels ascending; rows whose ``level`` is missing are left out.

    Raises:
        ValueError: a method or ``level`` that ``per_image`` does not hold.
    """
    if not isinstance(per_image, pd.DataFrame) or any(c not in per_image.columns for c in ("method", *METRICS, level)):
        raise ValueError(f"per_image must be a DataFrame with the columns method, {', '.join(METRICS)} and {level!r} "
                         "(Study.studies).")
    _check_values(methods, per_image["method"], "the methods")
    frame = per_image.dropna(subset=[level])
    rows = [{"method": m, level: v, **{name: bootstrap_mean(g[name]) for name in METRICS}, "n": len(g)}
            for m in methods for v, g in frame[frame["method"] == m].groupby(level, sort=True)]
    return pd.DataFrame(rows)


def spread_comparison(per_image: pd.DataFrame, level: str, far: Sequence[str], earlier: Sequence[str],
                      metric: str = "topk_intersection") -> tuple[dict[str, Interval], list]:
    """The spread of each method over ``level`` and FAR's mean spread against the earlier methods', with intervals.

    A method's spread is ``max - min`` over the levels of its mean ``metric``; the levels are those every method of
    ``far`` and ``earlier`` has. The images (shared by all models) are resampled jointly across all models.

    Returns:
        ``(intervals, levels)``: intervals per method and ``"far"``, ``"earlier"``, ``"difference"`` (far - earlier),
        and the levels used.
    """
    methods = [*far, *earlier]
    frame = per_image[per_image["method"].isin(methods)].dropna(subset=[level])
    levels = sorted(set.intersection(*(set(g[level]) for _, g in frame.groupby("method"))))
    table = frame.pivot(index="image", columns=["method", level], values=metric)
    columns = [table[(m, v)].to_numpy() for m in methods for v in levels]

    def spreads(*cols):
        return np.ptp(np.array([c.mean() for c in cols]).reshape(len(methods), len(levels)), axis=1)

    out = {m: bootstrap(lambda *c, i=i: spreads(*c)[i], *columns) for i, m in enumerate(methods)}
    out["far"] = bootstrap(lambda *c: spreads(*c)[:len(far)].mean(), *columns)
    out["earlier"] = bootstrap(lambda *c: spreads(*c)[len(far):].mean(), *columns)
    out["difference"] = bootstrap(lambda *c: spreads(*c)[:len(far)].mean() - spreads(*c)[len(far):].mean(), *columns)
    return out, levels


def spread_table(intervals: dict[str, Interval], far: Sequence[str], earlier: Sequence[str]) -> pd.DataFrame:
    """``spread_comparison``'s intervals as rows (``model``, ``spread``): per method, both means, their difference."""
    rows = [(METHOD_NAMES.get(m, m), intervals[m]) for m in (*far, *earlier)]
    rows += [(f"mean of {_names(group)}", intervals[name]) for group, name in ((far, "far"), (earlier, "earlier"))
             if len(group) > 1]
    rows.append((f"{_names(far)} minus {_names(earlier)}", intervals["difference"]))
    return pd.DataFrame(rows, columns=["model", "spread"])


def _names(methods: Sequence[str]) -> str:
    return " and ".join(METHOD_NAMES.get(m, m) for m in methods)


def spread_values(intervals: dict[str, Interval], name: str, far: Sequence[str], earlier: Sequence[str],
                  what: str) -> dict:
    """Glued values of one spread comparison (``spread_comparison``'s intervals).

    ``ch7_spread_<name>_<method|far|earlier|diff>``, ``ch7_verdict_<name>`` ("smaller": FAR's methods depend less on
    ``what``) and ``ch7_sentence_<name>``.
    """
    diff = intervals["difference"]
    word = verdict(diff)
    values = {f"ch7_spread_{name}_{m}": str(intervals[m]) for m in (*far, *earlier)}
    values.update({f"ch7_spread_{name}_far": str(intervals["far"]),
                   f"ch7_spread_{name}_earlier": str(intervals["earlier"]),
                   f"ch7_spread_{name}_diff": str(diff), f"ch7_verdict_{name}": word})
    if diff.sign != 0:
        plural = len(far) > 1
        values[f"ch7_sentence_{name}"] = (
            f"{_names(far)} depend{'' if plural else 's'} {'less' if diff.sign < 0 else 'more'} on {what} than "
            f"{_names(earlier)}: {'their' if plural else 'its'} spread of the top-k intersection is {intervals['far']} "
            f"against {intervals['earlier']}, a difference of {diff}")
    else:
        values[f"ch7_sentence_{name}"] = (
            f"the dependence on {what} of {_names(far)} (spread {intervals['far']}) and of {_names(earlier)} (spread "
            f"{intervals['earlier']}) is {word} (difference {diff})")
    return values


def text_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every ``Interval`` written as text (``"0.620 (0.580 to 0.660)"``), for ``reader_table``."""
    return frame.map(lambda v: str(v) if isinstance(v, Interval) else v)


def settings_values(s, datasets: Sequence[str]) -> dict:
    """The glued settings of the chapter's IFIA, next to RAR's.

    ``ch7_attack`` / ``ch7_rar_attack``: per data set, radius, steps x step size and restarts (this build's, RAR's);
    ``ch7_eval_ig_steps``, ``ch7_n_ifia``, ``ch7_n_bound``, ``ch7_bound_ig_steps``.
    """
    def describe(cfg: dict) -> str:
        return (f"radius {radius_label(cfg['eps'])}, {cfg['ifia_steps']} steps of {sig(cfg['ifia_alpha'])}, "
                f"{cfg['restarts']} restart{'s' if cfg['restarts'] > 1 else ''}")

    def per_dataset(steps, restarts) -> str:
        return "; ".join(f"{DATASET_NAMES.get(ds, ds)}: {describe(attack_settings(ds, steps, restarts))}"
                         for ds in datasets)

    return {"ch7_attack": per_dataset(s.ifia_steps, s.restarts), "ch7_rar_attack": per_dataset(None, None),
            "ch7_eval_ig_steps": s.eval_ig_steps, "ch7_n_ifia": s.n_ifia, "ch7_n_bound": s.n_bound,
            "ch7_bound_ig_steps": s.bound_ig_steps}


def steps_study_values(steps: pd.DataFrame, levels: Sequence) -> dict:
    """What the IG-steps study compares, as glued values.

    ``ch7_steps_levels`` ("2 and 8"), ``ch7_steps_n_train`` (their training images) and ``ch7_steps_other`` (a
    sentence on the models shown but left out of the spread, or "").

    Args:
        steps: the study's rows (``study_models`` columns ``method``, ``train_ig_steps``, ``n_train``; any rows).
        levels: the IG steps of ``spread_comparison``.
    """
    models = steps.drop_duplicates("name") if "name" in steps else steps.drop_duplicates(["method", "train_ig_steps"])
    inside = models[models["train_ig_steps"].isin(levels)]
    others = models[~models["train_ig_steps"].isin(levels)]
    sizes = sorted(set(inside["n_train"]))
    other = "; ".join(f"{METHOD_NAMES.get(r.method, r.method)} with {int(r.train_ig_steps)} steps, trained on "
                      f"{r.n_train:,} images" for r in others.itertuples())
    return {"ch7_steps_levels": " and ".join(str(int(v)) for v in levels),
            "ch7_steps_n_train": " and ".join(f"{n:,}" for n in sizes),
            "ch7_steps_other": (f"Shown as well, but left out of the spread because it was trained on other data: "
                                f"{other}." if other else "")}


def radius_study_values(radius: pd.DataFrame) -> dict:
    """``ch7_study_radii`` ("0.1, 0.2 and 0.3") and ``ch7_study_n_train`` of the training-radius study's rows."""
    radii = [radius_label(e) for e in sorted(radius["train_eps"].unique())]
    return {"ch7_study_radii": ", ".join(radii[:-1]) + f" and {radii[-1]}" if len(radii) > 1 else radii[0],
            "ch7_study_n_train": " and ".join(f"{n:,}" for n in sorted(radius["n_train"].unique()))}
