"""The statistics behind the book's verdicts, against closed forms and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from attrbound_lite.book.tables import radius_label, readable, reader_table
from attrbound_lite.stats import (
    Interval,
    across_seeds,
    bootstrap,
    bootstrap_mean,
    holm,
    margin_test,
    paired_difference,
    rate_difference,
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
    # every image moved by the same 0.1: no spread, so no test (tour 17): a p-value of NaN (left out of holm's family)
    # and no direction stated
    assert gap.no_test and math.isnan(gap.p_value) and verdict(gap) == "not distinguishable with 200 images"
    noisy = a + 0.1 + np.random.default_rng(1).normal(0, 0.01, 200)
    assert verdict(paired_difference(noisy, a)) == "larger"  # a spread: a test
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


def test_across_seeds_p_value_is_the_one_sample_t_test():
    from scipy import stats

    for values in ([0.31, 0.36, 0.29], [0.02, -0.05, 0.04, 0.01], [1.0, 1.2]):
        assert across_seeds(values).p_value == pytest.approx(stats.ttest_1samp(values, 0.0).pvalue, rel=1e-12)
    assert math.isnan(across_seeds([0.25, 0.25, 0.25]).p_value) and math.isnan(across_seeds([0.2]).p_value)
    assert across_seeds([0.0, 0.0, 0.0]).p_value == 1.0  # identical runs: no test, unless they agree on no effect
    # identical units whose mean rounds (0.2 is not a binary fraction): a standard error of ~1e-17 is no spread
    assert math.isnan(bootstrap_mean([0.2] * 10).p_value) and math.isnan(across_seeds([0.1 + 0.2, 0.3, 0.3]).p_value)
    assert bootstrap_mean([0.2] * 9 + [0.2 + 1e-9]).p_value < 1e-6  # a real, if tiny, spread is tested


def test_bootstrap_p_value_is_the_wald_test_of_its_standard_error_and_matches_the_t_test():
    from scipy import stats

    rng = np.random.default_rng(5)
    x = rng.normal(0.2, 1.0, 400)
    ci = bootstrap_mean(x, n_resamples=4000)
    assert ci.p_value == pytest.approx(stats.ttest_1samp(x, 0.0).pvalue, rel=0.15)  # se* -> sd / sqrt(n)
    resampled = np.array([x[i].mean() for i in np.random.default_rng(0).integers(0, 400, (4000, 400))])
    assert ci.p_value == pytest.approx(2 * stats.norm.sf(x.mean() / resampled.std(ddof=1)), rel=1e-9)
    far = bootstrap_mean(x + 0.5)  # far from 0: below the 2 / (B + 1) a count of resamples could reach
    assert 0 < far.p_value < 1e-10
    for shift in np.linspace(0, 0.6, 13):  # on a symmetric statistic the p-value and the interval agree
        ci = bootstrap_mean(rng.normal(shift, 1.0, 60), seed=int(shift * 100))
        if ci.p_value < 0.04:
            assert ci.sign != 0, (shift, ci)
        if ci.p_value > 0.06:
            assert ci.sign == 0, (shift, ci)
    assert bootstrap_mean([0.0, 0.0, 0.0]).p_value == 1.0 and math.isnan(bootstrap_mean([0.5, 0.5]).p_value)


def _holm_by_steps(p, alpha):
    """Holm's procedure as stated: test the smallest remaining p at alpha / (remaining); stop at the first miss."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    reject = [False] * len(p)
    for rank, i in enumerate(order):
        if p[i] > alpha / (len(p) - rank):
            break
        reject[i] = True
    return reject


def test_holm_rejects_what_the_step_down_procedure_rejects_and_adjusts_as_its_closed_form():
    p = [0.01, 0.04, 0.03, 0.005]  # sorted: 0.005 0.01 0.03 0.04 -> adjusted 0.02 0.03 0.06 0.06
    reject, adjusted = holm(p)
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert list(reject) == [True, False, False, True] == _holm_by_steps(p, 0.05)
    rng = np.random.default_rng(0)
    for _ in range(300):
        p = list(rng.uniform(0, 0.08, rng.integers(1, 12)) ** rng.uniform(0.5, 2))
        assert list(holm(p, 0.05)[0]) == _holm_by_steps(p, 0.05)
    reject, adjusted = holm([0.001, float("nan"), 0.02])  # a comparison not made is not in the family (m = 2)
    assert list(reject) == [True, False, True] and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="alpha"):
        holm([0.1], alpha=5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([1.5])


def test_rate_difference_is_newcombes_method_10_with_fishers_p():
    from scipy import stats

    d = rate_difference(56, 70, 48, 80)  # Newcombe (1998), Table II, example (a): 0.0524 to 0.3339
    assert d.estimate == pytest.approx(0.2) and (round(d.low, 4), round(d.high, 4)) == (0.0524, 0.3339)
    assert d.p_value == pytest.approx(stats.fisher_exact([[56, 14], [48, 32]]).pvalue) and d.n == 70
    assert rate_difference(9, 10, 3, 10).sign == 1 and rate_difference(5, 10, 5, 10).p_value == 1.0
    assert rate_difference(1, 0 + 1, 0, 0).n == 0


def test_verdicts_read_the_whole_interval():
    assert verdict(Interval(0.1, 0.02, 0.2, 100)) == "larger"
    assert verdict(Interval(-0.1, -0.2, -0.01, 100), below="fewer") == "fewer"
    assert verdict(Interval(0.1, -0.01, 0.2, 100)) == "not distinguishable with 100 images"
    assert str(Interval(0.12, 0.08, 0.16, 100)) == "0.120 (0.0800 to 0.160)"


def test_three_significant_digits_and_radii_as_people_write_them():
    assert [sig(v) for v in (0.887, 12.345, 1.0, 0.0001234, float("nan"))] == ["0.887", "12.3", "1.00", "0.000123",
                                                                               "n/a"]
    # no e-notation: a rounded integer from 10**digits on, a power of ten below 1e-4 (rounding decides the range)
    assert [sig(v) for v in (1540.2, 999.9, 2.04e-7, -3.9e-6, 9.9999e-5, 5.25e-16)] == [
        "1,540", "1,000", "2.04\u00a0×\u00a010⁻⁷", "-3.90\u00a0×\u00a010⁻⁶", "0.000100", "5.25\u00a0×\u00a010⁻¹⁶"]
    assert sig(99.95, 2) == "100" and sig(3.9e-6, 2) == "3.9\u00a0×\u00a010⁻⁶"  # no-break spaces: never wrapped
    assert [radius_label(e) for e in (0.3, 0.1, 8 / 255, 2 / 255, 0.001, None)] == ["0.3", "0.1", "8/255", "2/255",
                                                                                   "0.001", "-"]
    frame = pd.DataFrame({"dataset": ["cifar10-subset"], "method": ["advaat"], "train_eps": [8 / 255],
                          "clean_accuracy": [0.98765]}).set_index(["dataset", "method"])
    out = readable(frame)
    assert out.to_dict("records") == [{"dataset": "CIFAR-10 subset", "method": "AdvAAT", "training ε": "8/255",
                                       "clean accuracy": 0.98765}]
    html = reader_table(frame, caption="c").to_html()
    assert "0.988" in html and "0.98765" not in html and "row_heading" not in html


def test_paired_rate_difference_is_mcnemars_exact_test_with_a_cluster_bootstrap():
    from attrbound_lite.stats import paired_rate_difference

    # 5 trials with a only, none with b only, 20 concordant: McNemar's exact p = 2 * 0.5**5
    a = np.array([True] * 5 + [True] * 10 + [False] * 10)
    b = np.array([False] * 5 + [True] * 10 + [False] * 10)
    d = paired_rate_difference(a, b)
    assert d.estimate == pytest.approx(5 / 25) and d.p_value == pytest.approx(0.0625) and d.n == 25
    assert paired_rate_difference([True, False], [False, True]).p_value == 1.0
    assert paired_rate_difference([True, True], [True, True]).p_value == 1.0
    # large n: the percentile interval agrees with the normal one of a paired difference of proportions
    rng = np.random.default_rng(1)
    a, b = rng.random(4000) < 0.3, rng.random(4000) < 0.2
    d = paired_rate_difference(a, b)
    n10, n01, n = (a & ~b).sum(), (~a & b).sum(), len(a)
    se = np.sqrt((n10 + n01) / n**2 - d.estimate**2 / n)
    assert d.high - d.low == pytest.approx(2 * 1.96 * se, rel=0.1)
    # clusters: a trial repeated three times in its own cluster is one trial to the bootstrap
    small_a, small_b = a[:50], b[:50]
    alone = paired_rate_difference(small_a, small_b)
    tripled = paired_rate_difference(np.repeat(small_a, 3), np.repeat(small_b, 3), groups=np.repeat(np.arange(50), 3))
    assert (tripled.low, tripled.high, tripled.estimate) == pytest.approx((alone.low, alone.high, alone.estimate))
    naive = paired_rate_difference(np.repeat(small_a, 3), np.repeat(small_b, 3))
    assert naive.high - naive.low < 0.7 * (alone.high - alone.low)  # ignoring the clusters overstates the evidence
    with pytest.raises(ValueError, match="same trials"):
        paired_rate_difference([True], [True, False])


def test_margin_test_is_scipys_t_test_against_minus_the_margin():
    rng = np.random.default_rng(3)
    for _ in range(20):
        d, margin = rng.normal(-0.02, 0.03, size=rng.integers(2, 6)), float(rng.uniform(0.01, 0.1))
        got = margin_test(d, margin)
        want = scipy.stats.ttest_1samp(d, -margin)  # two-sided: "comparable or better" and "worse" in one test
        assert got.p_value == pytest.approx(float(want.pvalue), rel=1e-10)
        low, high = want.confidence_interval(0.95)
        assert (got.estimate, got.low, got.high, got.n) == pytest.approx((d.mean() + margin, low + margin,
                                                                          high + margin, len(d)))
        assert (got.low > 0 or got.high < 0) == (got.p_value < 0.05)
    assert np.isnan(margin_test([0.1], 0.05).p_value)  # one run: no test
    assert np.isnan(margin_test([0.1, 0.1, 0.1], 0.05).p_value)  # runs that all agree: no test
    for bad in (0, -0.1, float("nan"), True):
        with pytest.raises(ValueError, match="margin"):
            margin_test([0.1, 0.2], bad)
