"""The statistics behind the book's verdicts, against closed forms and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from attrbound_lite.book.tables import radius_label, readable, reader_table
from attrbound_lite.stats import (
    Interval,
    across_seeds,
    bootstrap,
    bootstrap_mean,
    paired_difference,
    sig,
    verdict,
    wilson,
)


def test_wilson_matches_its_closed_form():
    k, n, z = 3, 48, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    ci = wilson(k, n)
    assert ci.estimate == p and ci.n == n
    assert (ci.low, ci.high) == pytest.approx((centre - half, centre + half), rel=1e-9)
    assert wilson(0, 20).low == 0 and wilson(0, 20).high > 0.1  # no violation seen is not a rate of zero
    assert math.isnan(wilson(0, 0).estimate)


def test_paired_bootstrap_of_a_constant_shift_is_exact_and_ignores_the_shared_noise():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 10, 200)  # large per-image spread, shared by both methods
    gap = paired_difference(a + 0.1, a)
    assert gap.estimate == pytest.approx(0.1) and gap.low == pytest.approx(0.1) and gap.high == pytest.approx(0.1)
    assert verdict(gap) == "larger"
    # unpaired, the same shift is lost in the spread of the images
    unpaired = bootstrap(lambda x, y: x.mean() - y.mean(), a + 0.1, rng.permutation(a))
    assert unpaired.sign == 0


def test_bootstrap_interval_covers_the_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = sum(bootstrap_mean(rng.exponential(1.0, 60), n_resamples=500, seed=i).contains(1.0) for i in range(200))
    assert 0.88 <= hits / 200 <= 0.99


def test_nan_units_are_dropped_pairwise_and_tiny_samples_have_no_interval():
    gap = paired_difference([1.0, np.nan, 3.0, 5.0], [0.0, 1.0, np.nan, 4.0])
    assert gap.n == 2 and gap.estimate == pytest.approx(1.0)
    one = bootstrap_mean([0.5])
    assert one.estimate == 0.5 and math.isnan(one.low) and verdict(one) == "not distinguishable with 1 images"
    with pytest.raises(ValueError, match="one length"):
        paired_difference([1.0, 2.0], [1.0])


def test_across_seeds_is_students_t_from_a_table_and_covers_about_95_percent():
    # t_{0.975, 2} = 4.302652729911275 (a printed t table), three seeds
    ci = across_seeds([0.10, 0.16, 0.13])
    half = 4.302652729911275 * 0.03 / math.sqrt(3)
    assert ci.n == 3 and ci.estimate == pytest.approx(0.13)
    assert (ci.low, ci.high) == pytest.approx((0.13 - half, 0.13 + half), rel=1e-9)
    assert verdict(ci, unit="seeds") == "larger" and verdict(across_seeds([0.1, -0.05, 0.3]), unit="seeds") == (
        "not distinguishable with 3 seeds")
    lone = across_seeds([0.2, float("nan")])
    assert lone.n == 1 and math.isnan(lone.low) and lone.sign == 0
    rng = np.random.default_rng(2)
    hits = sum(across_seeds(rng.normal(1.0, 0.5, 3)).contains(1.0) for _ in range(2000))
    assert 0.93 <= hits / 2000 <= 0.97  # exact for normal values, even with three


def test_verdicts_read_the_whole_interval():
    assert verdict(Interval(0.1, 0.02, 0.2, 100)) == "larger"
    assert verdict(Interval(-0.1, -0.2, -0.01, 100), below="fewer") == "fewer"
    assert verdict(Interval(0.1, -0.01, 0.2, 100)) == "not distinguishable with 100 images"
    assert str(Interval(0.12, 0.08, 0.16, 100)) == "0.120 (0.0800 to 0.160)"


def test_three_significant_digits_and_radii_as_people_write_them():
    assert [sig(v) for v in (0.887, 12.345, 1.0, 0.0001234, float("nan"))] == ["0.887", "12.3", "1.00", "0.000123",
                                                                               "n/a"]
    assert [radius_label(e) for e in (0.3, 0.1, 8 / 255, 2 / 255, 0.001, None)] == ["0.3", "0.1", "8/255", "2/255",
                                                                                   "0.001", "-"]
    frame = pd.DataFrame({"dataset": ["cifar10-subset"], "method": ["advaat"], "train_eps": [8 / 255],
                          "clean_accuracy": [0.98765]}).set_index(["dataset", "method"])
    out = readable(frame)
    assert out.to_dict("records") == [{"dataset": "CIFAR-10 subset", "method": "AdvAAT", "train eps": "8/255",
                                       "clean accuracy": 0.98765}]
    html = reader_table(frame, caption="c").to_html()
    assert "0.988" in html and "0.98765" not in html and "row_heading" not in html
