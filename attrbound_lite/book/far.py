"""Chapter 7 (FAR): IFIA robustness and the median bound across training methods, training radii and IG steps.

Measured on the book's models; the chapter's verdicts on FAR's claims are ``method_values`` and ``claim_values``.
"""

from __future__ import annotations

import pandas as pd

from ..data import load_dataset
from ..evaluation import evaluate, ifia_by_ig_steps
from ..experiments import bound_table

__all__ = ["FAR_METHODS", "EARLIER_METHODS", "Study", "spread", "corr_reading", "method_values", "spread_verdict",
           "claim_values"]

FAR_METHODS = ("aat", "advaat")
EARLIER_METHODS = ("pgd_at", "ig_norm")


class Study:
    """The chapter's measurements with its settings ``s``; test sets are loaded once.

    The settings used: ``n_ifia``, ``ifia_steps``, ``restarts``, ``eval_ig_steps``, ``attack_ig_steps``, ``n_bound``,
    ``seed``, ``device`` and the profile's training radii.
    """

    def __init__(self, s):
        self.s = s
        self._tests = {}

    def test_data(self, ds: str):
        """The test split of ``ds``, loaded on first use and then kept.

        Args:
            ds: the data set's name.

        Returns:
            The test data set.
        """
        if ds not in self._tests:
            self._tests[ds] = load_dataset(ds, "test", subset=None)
        return self._tests[ds]

    def ifia_settings(self, ds: str) -> dict:
        """IFIA at the profile's training radius of ``ds``; RAR's number of steps when ``ifia_steps`` is None."""
        out = {"eps": self.s.training["eps"][ds], "restarts": self.s.restarts}
        if self.s.ifia_steps is not None:
            out["ifia_steps"] = self.s.ifia_steps
        return out

    def measure(self, ds: str, method: str, eps: float | None = None) -> dict:
        """IFIA robustness and the median l2 saliency bound per unit eps of the model of ``ds`` and ``method``.

        The bound per unit eps is sigma_max; the model is the one trained at the radius ``eps`` (``None``: the
        profile's).
        """
        s = self.s
        model = s.model(ds, method, eps)
        result = evaluate(model, self.test_data(ds), ds, n_pgd=0, n_attribution=s.n_ifia, ig_steps=s.eval_ig_steps,
                          attack_ig_steps=s.attack_ig_steps, seed=s.seed, device=s.device, progress=False,
                          **self.ifia_settings(ds))
        x, y = self.test_data(ds).tensors()
        bounds = bound_table(model, (x[:s.n_bound], y[:s.n_bound]), {"l2": [1.0]}, norms=("l2",), seed=s.seed,
                             bound_options={"max_dense_n": 0})
        return {"topk_intersection": result["topk_intersection"], "kendall_tau": result["kendall_tau"],
                "spearman": result["spearman"], "median_bound": float(bounds["sigma_max"].median())}

    def by_method(self, datasets, methods) -> pd.DataFrame:
        """One row per (data set, method) with ``measure``'s columns."""
        return pd.DataFrame([{"dataset": ds, "method": m, **self.measure(ds, m)}
                             for ds in datasets for m in methods])

    def by_train_eps(self, dataset: str, methods, eps_grid) -> pd.DataFrame:
        """One row per (training radius, method) on ``dataset``: the models trained at each radius."""
        return pd.DataFrame([{"method": m, "train_eps": eps, **self.measure(dataset, m, eps)}
                             for eps in eps_grid for m in methods])

    def by_ig_steps(self, dataset: str, methods, steps_grid) -> pd.DataFrame:
        """IFIA robustness of IG maps of each number of steps in ``steps_grid`` (one attack per image), per method."""
        s, frames = self.s, []
        for m in methods:
            frame = ifia_by_ig_steps(s.model(dataset, m), self.test_data(dataset), dataset, steps_grid,
                                     n_attribution=s.n_ifia, attack_ig_steps=s.attack_ig_steps, seed=s.seed,
                                     device=s.device, progress=False, **self.ifia_settings(dataset))
            frames.append(frame.assign(method=m))
        return pd.concat(frames, ignore_index=True)


def spread(study: pd.DataFrame, name: str) -> pd.Series:
    """Per method, the range (max - min) of the top-k intersection over a study's grid, named ``name``."""
    return study.groupby("method")["topk_intersection"].agg(lambda v: v.max() - v.min()).rename(name)


def corr_reading(rank: float) -> str:
    """What a Spearman correlation between the median bound and the top-k intersection means, in words."""
    if -0.7 < rank < 0:
        return "a smaller worst case goes with more stable top features, but only loosely"
    if rank <= -0.7:
        return "a smaller worst case goes with more stable top features"
    return ("the sign is the opposite of what one might expect: models with larger bounds keep their top features "
            "at least as well")


def method_values(by_method: pd.DataFrame, datasets, methods) -> dict:
    """The verdicts across training methods: best top-k, smallest bound, FAR's wins and their correlation.

    ``by_method``: ``Study.by_method`` (needs natural and one of FAR's methods). Per data set, the best top-k
    intersection and the smallest median bound; on how many data sets one of FAR's methods beats natural training; and
    the correlation between bound and top-k intersection.
    """
    t = by_method.set_index(["dataset", "method"])
    best_topk = t["topk_intersection"].groupby("dataset").idxmax().map(lambda i: i[1])
    smallest_bound = t["median_bound"].groupby("dataset").idxmin().map(lambda i: i[1])
    far = [m for m in FAR_METHODS if m in methods]
    far_beats = sum(bool(max(t.loc[(ds, m), "topk_intersection"] for m in far)
                         > t.loc[(ds, "natural"), "topk_intersection"]) for ds in datasets)
    rank = float(by_method[["median_bound", "topk_intersection"]].corr(method="spearman").iloc[0, 1])
    return {"ch7_best_topk": ", ".join(f"{ds}: {best_topk[ds]}" for ds in datasets),
            "ch7_smallest_bound": ", ".join(f"{ds}: {smallest_bound[ds]}" for ds in datasets),
            "ch7_far_beats_natural": far_beats, "ch7_n_datasets": len(datasets),
            "ch7_bound_topk_corr": rank, "ch7_corr_reading": corr_reading(rank)}


def spread_verdict(far: float, earlier: float, resolution: float) -> str:
    """FAR's spread against the earlier methods': "smaller", "larger", or indistinguishable within ``resolution``."""
    if abs(far - earlier) < resolution:
        return "indistinguishable at this sample size"
    return "smaller" if far < earlier else "larger"


def claim_values(spreads: pd.DataFrame, methods, n_ifia: int) -> dict:
    """The verdicts on FAR's claim: the mean spread of FAR's methods against that of PGD-AT and IG-NORM.

    ``spreads``: columns ``spread_train_eps`` and ``spread_ig_steps`` by method; the spreads are over training radii
    and over IG steps. The top-k intersection of one model is a mean over ``n_ifia`` images of values in [0, 1]: its
    standard error is at most 0.5 / sqrt(n_ifia), and differences of spreads below that are not resolved by this many
    images.
    """
    far = [m for m in FAR_METHODS if m in methods]
    earlier = [m for m in EARLIER_METHODS if m in methods]
    resolution = 0.5 / n_ifia ** 0.5
    values = {"ch7_resolution": resolution}
    for column, name in (("spread_train_eps", "eps"), ("spread_ig_steps", "steps")):
        f, e = float(spreads.loc[far, column].mean()), float(spreads.loc[earlier, column].mean())
        values.update({f"ch7_spread_{name}_far": f, f"ch7_spread_{name}_earlier": e,
                       f"ch7_verdict_{name}": spread_verdict(f, e, resolution)})
    return values
