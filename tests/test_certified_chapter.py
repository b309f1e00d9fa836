"""Chapter 9's committed certificates (``book.certified``): complete, never below any attack, recomputable; the
chapter's tables and sentences follow from the numbers (checked on rows built by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attrbound_lite import results
from attrbound_lite.book import certified
from attrbound_lite.book.budget import METHODS


@pytest.fixture(scope="module")
def rows():
    return certified.load()


def test_committed_rows_are_complete(rows):
    s = certified.SETTINGS
    assert set(rows["unit"]) == set(certified.SPEC.units)
    seed0 = rows[rows["seed"] == 0]
    n_models = sum(len(m) for m in s["datasets"].values())
    assert len(seed0) == n_models * s["n_images"] * (len(s["eps_l2"]) + len(s["eps_linf"]))
    more = rows[rows["seed"] > 0]
    assert len(more) == len(METHODS) * (len(s["seeds"]) - 1) * s["n_images"]
    assert set(zip(more["norm"], more["eps"], strict=True)) == {certified.COMPARE}
    assert np.isfinite(rows[["certified", "first_order", "attribution_norm"]].to_numpy()).all()
    assert np.isfinite(seed0[["region", "attack"]].to_numpy()).all() and more[["region", "attack"]].isna().all().all()


def test_no_attack_exceeds_the_certificate(rows):
    """The proof's oracle: every deviation an attack reached lies at a point of the ball, so below the certificate."""
    attacked = rows[rows["seed"] == 0]
    assert (attacked["attack"] <= attacked["certified"]).all(), attacked.loc[attacked["attack"] > attacked["certified"]]
    # and the first-order bound is the certificate's limit (tests/test_certified.py: within 5 % at 1e-4): at the
    # smallest radius of the grid the certificate is at least the first-order bound and within a factor 2 of it
    smallest = rows[(rows["norm"] == "l2") & (rows["eps"] == min(certified.SETTINGS["eps_l2"]))]
    assert (smallest["over_first_order"] < 2).all() and (smallest["over_first_order"] >= 1).all()


def test_the_certificate_never_decreases_with_the_radius(rows):
    for _, part in rows[rows["seed"] == 0].groupby(["dataset", "model", "sample", "norm"]):
        values = part.sort_values("eps")["certified"].to_numpy()
        assert (np.diff(values) >= 0).all()


def test_a_sample_of_committed_rows_recomputes(rows, data_root):
    report = results.verify_results(certified.SPEC, n=3, seed=results.sample_seed(), device="cpu")
    results.check_verified(certified.SPEC, report)


def _rows(over_first: dict, attack: float = 1.0, norm: str = "l2") -> pd.DataFrame:
    """Seed-0 rows of two models whose median certificate / first-order bound at each radius is ``over_first``."""
    frames = []
    for method in ("natural", "pgd_at"):
        for eps, ratio in over_first.items():
            frames.append(pd.DataFrame({"dataset": "mnist", "model": method, "seed": 0, "sample": range(3),
                                        "norm": norm, "eps": eps, "first_order": 1.0,
                                        "certified": ratio * (1 + 0.01 * np.arange(3)),
                                        "attack": attack, "region": 1.0, "attribution_norm": 10.0,
                                        "route": "interval_hessian", "certified_seconds": 1.0}))
    out = pd.concat(frames, ignore_index=True)
    return out.assign(over_attack=out["certified"] / out["attack"], over_first_order=out["certified"],
                      relative=out["certified"] / out["attribution_norm"],
                      vacuous=out["certified"] >= out["attribution_norm"])


def test_trust_radii_follow_the_ratios():
    trust = certified.trust_table(_rows({0.001: 1.1, 0.01: 1.9, 0.05: 4.0, 0.25: 30.0}))
    assert (trust["within_2"] == 0.01).all() and (trust["beyond_2"] == 0.05).all()
    assert (trust["within_10"] == 0.05).all() and (trust["beyond_10"] == 0.25).all()
    # a ratio back under the factor at a larger radius does not extend the radius
    trust = certified.trust_table(_rows({0.001: 1.1, 0.01: 2.5, 0.05: 1.5}))
    assert (trust["within_2"] == 0.001).all()
    trust = certified.trust_table(_rows({0.001: 3.0, 0.01: 5.0}))
    assert trust["within_2"].isna().all() and (trust["within_10"] == 0.01).all()
    assert "below the grid" in certified.format_trust_table(trust).iloc[0].tolist()


@pytest.mark.parametrize("ratio, outcome", [(1.5, "within the target"), (50.0, "is missed")])
def test_target_sentences_follow_the_interval(ratio, outcome):
    frame = _rows({0.05: ratio, 0.25: ratio})
    frame = pd.concat([frame, _rows({1 / 255: ratio}, norm="linf")], ignore_index=True)
    table = certified.target_table(frame)
    assert table["met"].all() == (ratio < 2) and table["missed"].all() == (ratio > 10)
    assert outcome in certified.describe_target(table.iloc[0])


def _method_rows(shift: dict) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frames = []
    for method in METHODS:
        for seed in (0, 1, 2):
            value = 1.0 + shift.get(method, 0.0) + 0.01 * rng.standard_normal()
            frames.append(pd.DataFrame({"dataset": "mnist", "model": method, "seed": seed, "sample": range(4),
                                        "norm": certified.COMPARE[0], "eps": certified.COMPARE[1],
                                        "relative": value}))
    return pd.concat(frames, ignore_index=True)


def test_methods_are_separated_only_where_the_seeds_allow():
    table = certified.method_table(_method_rows({"pgd_at": -0.5, "ig_norm": 0.5}))
    assert table.set_index("model").loc["pgd_at", "separated"] and table.set_index("model").loc["ig_norm", "separated"]
    assert not table.set_index("model").loc["aat", "separated"]
    said = certified.describe_methods(table)
    assert "PGD-AT certified smaller" in said and "IG-NORM certified larger" in said and "AAT" in said
    none = certified.method_table(_method_rows({}))
    assert "no robust method" in certified.describe_methods(none)
