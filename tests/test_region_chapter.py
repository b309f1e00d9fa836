"""The region-bound chapter's helpers (attrbound_lite.book.region): violations by the sweep's rule, rates, onsets and
verdicts computed from their intervals, the cached and resumable computation, and the validation chapter's settings."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from attrbound_lite.book import region
from attrbound_lite.book.runner import BOOK_OUT_ENV
from attrbound_lite.bounds import attribution_bound
from attrbound_lite.zoo import load_reference


def _both(point_exceeded, region_exceeded, eps=(0.01, 0.1, 1.0), n=10, norm="l2"):
    """A synthetic chapter table: ``point_exceeded[k]`` units exceed the point bound at radius k, likewise region."""
    rows = []
    for k, e in enumerate(eps):
        for i in range(n):
            rows.append(dict(dataset="mnist", model="natural", sample=i, norm=norm, eps=e, point=1.0, region=2.0,
                             achieved=0.5, kept=True, exceeded_point=i < point_exceeded[k],
                             exceeded_region=i < region_exceeded[k], point_seconds=1.0, region_seconds=3.0))
    return pd.DataFrame(rows)


def test_region_violations_follow_the_sweeps_rule():
    rows = pd.DataFrame({"dataset": "mnist", "model": "natural", "sample": [0, 1, 2, 3], "norm": "l2", "eps": 0.1,
                         "relative_achieved": [0.25, 0.5075, 0.375, np.nan], "attribution_norm": 4.0,
                         "achieved_cosine": [0.99, 0.99, 0.5, np.nan], "bound_euclidean": [2.5, 1.0, 1.0, 1.0],
                         "sigma_max": 10.0, "bound_cosine": 0.9, "n_kept": [1, 1, 1, 0],
                         "exceeded": [False, True, True, False]})
    bounds = pd.DataFrame({"sample": [3, 2, 1, 0], "region": 2.0, "sigma_region": 20.0, "gain": 2.0,
                           "point_seconds": 0.5, "region_seconds": 2.0})  # in another order: matched by sample
    frame = region._case_frame(rows, bounds)
    # 1.0 <= 1.01 * 2.5: kept; 2.03 > 1.01 * 2: exceeded; cosine 0.5 < sqrt(1 - 2^2 / 4^2) - 1e-3: exceeded; no
    # label-keeping attack: not
    assert frame["exceeded_region"].tolist() == [False, True, True, False]
    assert frame["region"].tolist() == [2.5, 2.0, 2.0, 2.0]  # never below the sweep's first-order bound
    np.testing.assert_allclose(frame["region_cosine"], [np.sqrt(1 - 2.5 ** 2 / 16), *[np.sqrt(0.75)] * 3])
    assert frame["kept"].tolist() == [True, True, True, False]
    assert frame["point_seconds"].iloc[0] == 0.5 and frame["region_seconds"].iloc[0] == 2.0


def test_violations_are_counted_not_rounded_from_a_rate():
    both = _both([0, 0, 0], [0, 0, 15], n=22)
    assert "exceeded on 15 of 66" in region.advice_values(both)["ch8_l2_region"]


def test_rates_count_units_that_kept_the_label():
    both = _both([0, 3, 10], [0, 0, 1])
    both.loc[0, "kept"] = False
    rates = region.rates_table(both).set_index("eps")
    assert rates.loc[0.01, "units"] == 9 and rates.loc[0.1, "point"].estimate == 0.3
    assert rates.loc[1.0, "region"].estimate == 0.1 and rates.loc[1.0, "region"].low > 0


def test_onset_and_the_radius_below_it():
    onset = region.onset_table(_both([0, 3, 10], [0, 0, 0])).iloc[0]
    assert onset["first_exceeded"] == 0.1 and onset["trusted_below"] == 0.01
    assert onset["point_rate"].estimate == 0.3 and onset["region_violations"] == 0
    never = region.onset_table(_both([0, 0, 0], [0, 0, 0])).iloc[0]
    assert np.isnan(never["first_exceeded"]) and np.isnan(never["trusted_below"])
    at_once = region.onset_table(_both([2, 3, 10], [0, 0, 0])).iloc[0]
    assert at_once["first_exceeded"] == 0.01 and np.isnan(at_once["trusted_below"])


def test_the_advice_is_read_off_the_numbers():
    held = region.advice_values(_both([0, 3, 10], [0, 0, 0]))
    assert ("quote the first-order bound below ε = 0.1 (the smallest radius at which an attack exceeded it) and the "
            "region bound from there on") in held["ch8_l2_advice"]
    assert "first exceeded at ε = 0.1" in held["ch8_l2_point"]
    assert "held on every unit up to ε = 0.01" in held["ch8_l2_point"]
    assert held["ch8_l2_region"].startswith("the region bound was exceeded on 0 of 30")
    from attrbound_lite.stats import wilson
    assert held["ch8_l2_reduction"] == (f"in ℓ2 the violation rate over every (unit, radius) pair is {wilson(13, 30)} "
                                        f"for the first-order bound and {wilson(0, 30)} for the region bound")
    assert not any(key.startswith("ch8_test_") for key in held)  # true by construction: no test for the Findings
    beaten = region.advice_values(_both([0, 3, 10], [0, 0, 2]))
    assert "was itself exceeded" in beaten["ch8_l2_advice"] and "2 of 30" in beaten["ch8_l2_region"]
    quiet = region.advice_values(_both([0, 0, 0], [0, 0, 0]))
    assert "both bounds held at every radius" in quiet["ch8_l2_advice"]
    # chapter 6's whole sweep saw a violation at a smaller radius than this chapter's first images: the advice too
    sweep = pd.DataFrame({"norm": "l2", "attribution": ["saliency", "saliency", "input_x_gradient"],
                          "eps": [0.01, 1.0, 0.001], "exceeded": [True, False, True]})
    for both in (_both([0, 3, 10], [0, 0, 0]), _both([0, 0, 0], [0, 0, 0])):
        assert "below ε = 0.01 (the smallest radius at which an attack exceeded it in chapter 6)" in \
            region.advice_values(both, sweep)["ch8_l2_advice"]
    assert region.cost_values(_both([0, 0, 0], [0, 0, 0]))["ch8_cost"].startswith("3.00")


def test_validation_settings_are_the_validation_chapters(monkeypatch, tmp_path):
    monkeypatch.setenv(BOOK_OUT_ENV, str(tmp_path))
    s = SimpleNamespace(profile="full", datasets=("mnist",), device=torch.device("cpu"))
    s6 = region.validation_settings(s)
    assert s6.chapter == "06_validation" and s6.datasets == ["mnist"] and s6.n_samples >= 1000  # the full profile's
    assert s6.device == s.device and 0.3 in s6.eps_linf


@pytest.fixture
def one_case(monkeypatch, tmp_path):
    """Settings for MNIST natural at l2 eps 0.1 on two images, and a sweep-like unit table with the real point bound."""
    monkeypatch.setenv(BOOK_OUT_ENV, str(tmp_path))
    model = load_reference("mnist-natural")[0]
    s = SimpleNamespace(profile="ci", datasets=["mnist"], methods=["natural"], eps_l2=[0.1], eps_linf=[], n_images=2,
                        steps=2, restarts=1, power_steps=1, seed=0, device=torch.device("cpu"),
                        model=lambda ds, method: model)
    s6 = SimpleNamespace(eps_l2=[0.01, 0.1], eps_linf=[0.01], max_dense_n=0)
    x = region.test_images("mnist", 3)
    point = attribution_bound(model, x, 0.1, "l2")
    units = pd.DataFrame({"dataset": "mnist", "model": "natural", "sample": [0, 1, 2], "attribution": "saliency",
                          "norm": "l2", "eps": 0.1, "relative_achieved": 0.01, "achieved_cosine": 0.999,
                          "attribution_norm": point.attribution_norm.numpy(),
                          "bound_euclidean": point.euclidean.numpy(), "sigma_max": point.sigma_max.numpy(),
                          "bound_cosine": point.cosine.numpy(), "n_kept": 2, "exceeded": False})
    return s, s6, units


def test_region_units_compute_once_then_reload(one_case, monkeypatch):
    s, s6, units = one_case
    both = region.region_units(s, s6, units)
    assert both["sample"].tolist() == [0, 1]
    assert (both["region"] >= both["point"] * (1 - 1e-4)).all() and (both["gain"] >= 1).all()
    np.testing.assert_allclose(both["sigma_point"] * 0.1, both["point"], rtol=1e-6)
    monkeypatch.setattr(region, "region_bound", lambda *a, **k: pytest.fail("a computed case must be reloaded"))
    pd.testing.assert_frame_equal(region.region_units(s, s6, units), both)


def test_region_units_refuse_radii_the_validation_sweep_lacks(one_case):
    s, s6, units = one_case
    s.eps_l2 = [0.2]
    with pytest.raises(ValueError, match=r"radii \[\('l2', 0.2\)\] are not in the validation chapter's grid"):
        region.region_units(s, s6, units)
    s.eps_l2, s.n_images = [0.1], 5
    with pytest.raises(ValueError, match="fewer than n_images = 5"):
        region.region_units(s, s6, units)


def test_onset_table_for_readers_says_never_and_dash():
    both = pd.concat([_both([0, 3, 10], [0, 0, 0]), _both([0, 0, 0], [0, 0, 0]).assign(model="aat")])
    shown = region.format_onset(region.onset_table(both)).set_index("model")
    assert shown.loc["natural", "first_exceeded"] == "0.1" and shown.loc["natural", "trusted_below"] == "0.01"
    assert shown.loc["aat", "first_exceeded"] == "never" and shown.loc["aat", "point_rate"] == "-"


def test_gain_is_the_median_ratio_of_the_bounds_at_both_ends():
    gain = region.gain_values(_both([0, 0, 0], [0, 0, 0]))["ch8_l2_gain"]
    assert gain.startswith("2.00 (2.00 to 2.00) at ε = 0.01 and 2.00") and gain.endswith("at ε = 1")
