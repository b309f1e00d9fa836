"""The sampled-metrics chapter's helpers (attrbound_lite.book.sampled): shortfalls, rankings read off their intervals,
and the cached computation on a real reference model against the real Captum and Quantus."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from attrbound_lite.book import sampled  # needs the compare extra (Captum, Quantus): `make test` installs it
from attrbound_lite.book.runner import BOOK_OUT_ENV
from attrbound_lite.bounds import attribution_bound
from attrbound_lite.zoo import load_reference

METHODS = ["natural", "pgd_at", "ig_norm", "aat", "advaat"]


def _frame(order_by_metric, n=30, metric="Quantus MaxSensitivity", seed=0):
    """Units of five methods on ``n`` shared images: the bound grows with the method's position in METHODS, the score
    with its position in ``order_by_metric``; noise makes images differ."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in METHODS:
        for i in range(n):
            bound = 1.0 + METHODS.index(m) + 0.1 * rng.standard_normal()
            score = 0.1 * (1.0 + order_by_metric.index(m)) + 0.01 * rng.standard_normal()
            rows.append(dict(dataset="mnist", model=m, sample=i, norm="linf", eps=0.1, metric=metric, score=score,
                             seconds=0.01, attack=2 * score, point_relative=bound, region_relative=2 * bound,
                             kept=True, sigma_point=1.0, sigma_region=2.0))
    return pd.DataFrame(rows)


def test_a_ranking_that_follows_the_bound_agrees_and_a_reversed_one_disagrees():
    same = sampled.ranking_table(_frame(METHODS)).iloc[0]
    assert same["rank correlation"].estimate == pytest.approx(1.0) and same["verdict"] == "positive"
    order = "natural, PGD-AT, IG-NORM, AAT, AdvAAT"
    assert same["by metric, smallest first"] == same["by bound, smallest first"] == order
    reversed_ = sampled.ranking_table(_frame(METHODS[::-1])).iloc[0]
    assert reversed_["rank correlation"].estimate == pytest.approx(-1.0) and reversed_["verdict"] == "negative"
    values = sampled.ranking_values(sampled.ranking_table(_frame(METHODS)))
    assert "1 correlate positively" in values["ch9_linf_ranking"]


def test_the_ranking_bootstrap_is_paired_by_image():
    """A large effect of the image, shared by every method, on top of a small, steady order of the methods: resampling
    the images jointly keeps the order (rho = 1 in every resample); resampling each method alone would not."""
    frame = _frame(METHODS)
    image_effect = np.random.default_rng(3).lognormal(0, 2, 30)
    frame["score"] = frame["score"] + image_effect[frame["sample"].to_numpy()]
    row = sampled.ranking_table(frame).iloc[0]
    assert row["rank correlation"].low == pytest.approx(1.0) and row["verdict"] == "positive"


def test_few_images_cannot_decide_a_ranking():
    """Two images whose scores barely differ between methods: the bootstrap interval spans zero."""
    frame = _frame(METHODS, n=2)
    frame["score"] = np.random.default_rng(1).uniform(0.1, 0.2, len(frame))
    row = sampled.ranking_table(frame).iloc[0]
    assert row["verdict"].startswith("not distinguishable with 2 images")


def test_shortfall_is_the_attack_over_the_sampled_score():
    frame = _frame(METHODS)
    short = sampled.shortfall_table(frame).iloc[0]
    assert short["attack / sampled"].estimate == pytest.approx(2.0)
    assert short["sampled below attack"].estimate == 1.0 and short["units"] == 150
    lip = sampled.lipschitz_table(frame.assign(metric="Quantus LocalLipschitzEstimate", score=0.5)).iloc[0]
    assert lip["sigma at x / sampled"].estimate == 2.0 and lip["sampled above sigma over ball"].estimate == 0.0
    values = sampled.shortfall_values(sampled.shortfall_table(frame), sampled.lipschitz_table(
        frame.assign(metric="Quantus LocalLipschitzEstimate", score=0.5)))
    assert values["ch9_linf_shortfall"].startswith("Quantus MaxSensitivity: 2.00")


def test_sampled_units_on_a_reference_model_compute_once_then_reload(monkeypatch, tmp_path):
    monkeypatch.setenv(BOOK_OUT_ENV, str(tmp_path))
    model = load_reference("mnist-natural")[0]
    x = sampled.test_images("mnist", 2)
    point = attribution_bound(model, x, 0.1, "linf", max_dense_n=0)
    both = pd.DataFrame({"dataset": "mnist", "model": "natural", "sample": [0, 1], "norm": "linf", "eps": 0.1,
                         "achieved": point.euclidean.numpy() * 0.5, "attribution_norm": point.attribution_norm.numpy(),
                         "point": point.euclidean.numpy(), "region": point.euclidean.numpy() * 2,
                         "sigma_point": point.sigma_max.numpy(), "sigma_region": point.sigma_max.numpy() * 2,
                         "kept": True, "point_seconds": 0.1, "region_seconds": 0.3})
    s = SimpleNamespace(profile="ci", datasets=["mnist"], methods=["natural"], n_images=2, eps_linf=0.1, eps_l2=None,
                        seed=0, device=torch.device("cpu"), model=lambda ds, m: model)
    frame = sampled.sampled_units(s, both)
    assert sorted(frame["metric"].unique()) == sorted(sampled.METRICS) and len(frame) == 2 * len(sampled.METRICS)
    assert np.isfinite(frame["score"]).all() and (frame["score"] > 0).all()
    relative = frame[frame["metric"].isin(sampled.RELATIVE)]
    # random uniform noise in the l-inf ball: never above the worst case, here far below sqrt(n) sigma eps / ||A||
    assert (relative["score"] < relative["point_relative"]).all()
    monkeypatch.setattr(sampled, "_score", lambda *a, **k: pytest.fail("a computed case must be reloaded"))
    pd.testing.assert_frame_equal(sampled.sampled_units(s, both), frame)
    s.n_images = 3
    with pytest.raises(ValueError, match="fewer than n_images = 3"):
        sampled.sampled_units(s, both)
