"""Chapter 7 (FAR) without executing the notebook: IFIA per image, the comparisons across methods and the spread
verdicts, on a toy model and on synthetic per-image tables whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from attrbound_lite.book import far, far_study
from attrbound_lite.evaluation import evaluate, ifia_per_image
from attrbound_lite.stats import Interval, across_seeds, verdict
from attrbound_lite.zoo import STUDY_IG_STEPS, STUDY_RADII

TOY_SETTINGS = dict(eps=0.1, pgd_steps=2, pgd_alpha=0.05, ifia_k=8, eval_k=8, ifia_steps=3, ifia_alpha=0.05,
                    restarts=1)


def test_ifia_per_image_gives_the_rows_whose_means_evaluate_reports(trained_toy):
    model, x, y = trained_toy
    options = dict(ig_steps=4, attack_ig_steps=2, n_pgd=0, progress=False, **TOY_SETTINGS)
    summary = evaluate(model, (x, y), None, n_attribution=6, **options)
    with torch.no_grad():
        chosen = (model(x).argmax(1) == y).nonzero().flatten()[:6]
    del options["n_pgd"]
    rows = ifia_per_image(model, x[chosen], y[chosen], None, **options)
    assert list(rows.columns) == ["topk_intersection", "kendall_tau", "spearman", "label_kept"] and len(rows) == 6
    assert rows["topk_intersection"].between(0, 1).all() and rows["label_kept"].all()
    for name in ("topk_intersection", "kendall_tau", "spearman"):
        assert rows[name].mean() == pytest.approx(summary[name])
    steered = ifia_per_image(model, x[chosen], y[chosen], None, attack_attribution="saliency", **options)
    assert len(steered) == 6 and steered["kendall_tau"].between(-1, 1).all()


def test_attack_settings_keep_rars_total_step_length():
    assert far_study.attack_settings("mnist") == {**far_study.attack_settings("mnist", 100, 3)}
    cfg = far_study.attack_settings("mnist", 20, 1)
    assert (cfg["ifia_steps"], cfg["restarts"], cfg["eps"]) == (20, 1, 0.3)
    assert cfg["ifia_alpha"] * cfg["ifia_steps"] == pytest.approx(100 * 0.01)
    cifar = far_study.attack_settings("cifar10-subset", 10)
    assert cifar["ifia_alpha"] * 10 == pytest.approx(50 / 255) and cifar["restarts"] == 3


def _per_image(shifts: dict[str, float], n: int = 200, noise: float = 0.1, dataset: str = "mnist",
               seed: int = 0, beyond_noise: float = 0.2) -> pd.DataFrame:
    """Per-image rows of natural training and of methods shifted from it by ``shifts`` (plus independent noise).

    Random sign noise keeps ``beyond_noise`` more of the top-k than IFIA, for every model (plus independent noise).
    """
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.7, n)
    bound = rng.uniform(0.5, 1.5, n)
    frames = []
    for method, shift in {"natural": 0.0, **shifts}.items():
        own = 0 if method == "natural" else rng.normal(0, noise, n)
        topk = base + shift + own
        frames.append(pd.DataFrame({"dataset": dataset, "method": method, "image": np.arange(n),
                                    "topk_intersection": topk, "kendall_tau": topk,
                                    "noise_topk_intersection": topk + beyond_noise + rng.normal(0, noise, n),
                                    "relative_bound": bound * (1 - shift)}))
    return pd.concat(frames, ignore_index=True)


def test_methods_are_compared_with_natural_training_by_paired_intervals():
    per_image = pd.concat([_per_image({"pgd_at": -0.2, "aat": 0.0, "advaat": 0.2}),
                           _per_image({"pgd_at": 0.1, "aat": 0.1, "advaat": 0.0}, dataset="fashion-mnist", seed=1)])
    summary = far.method_summary(per_image)
    row = summary.set_index(["dataset", "method"])
    assert isinstance(row.loc[("mnist", "advaat"), "topk_gain"], Interval)
    assert row.loc[("mnist", "advaat"), "topk_gain"].estimate == pytest.approx(0.2, abs=0.03)
    assert row.loc[("mnist", "advaat"), "topk_verdict"] == "larger"
    assert row.loc[("mnist", "pgd_at"), "topk_verdict"] == "smaller"
    assert row.loc[("mnist", "aat"), "topk_verdict"] == "not distinguishable with 200 images"
    assert row.loc[("mnist", "advaat"), "bound_verdict"] == "smaller"  # its bound is 0.8 times natural's
    assert pd.isna(row.loc[("mnist", "natural"), "topk_verdict"])
    values = far.method_values(summary, per_image)
    assert values["ch7_verdict_mnist_advaat"] == "larger" and values["ch7_n_mnist"] == 200
    assert values["ch7_disagree"] == "none of them"  # each bound moves the way its top-k intersection does
    flipped = summary.assign(bound_verdict=summary["bound_verdict"].replace({"smaller": "larger"}))
    assert far.method_values(flipped, per_image)["ch7_disagree"] == (
        "AdvAAT on MNIST, PGD-AT on Fashion-MNIST, AAT on Fashion-MNIST")
    assert values["ch7_sentence_mnist_advaat"] == (
        f"AdvAAT keeps {row.loc[('mnist', 'advaat'), 'topk_gain']} more of the top-k pixels than natural training "
        "on MNIST")
    assert values["ch7_sentence_mnist_aat"].startswith("AAT and natural training on MNIST are not distinguishable")
    assert values["ch7_natural_topk_fashion_mnist"] == str(row.loc[("fashion-mnist", "natural"), "topk_intersection"])
    # a best method is named only when it beats every other one
    assert values["ch7_best_mnist"] == "on MNIST, AdvAAT keeps more of the top-k pixels than every other method"
    assert far.best_method(per_image, "fashion-mnist") is None  # PGD-AT and AAT tie
    assert "no method keeps more" in values["ch7_best_fashion_mnist"]


def test_methods_with_several_seeds_are_compared_over_the_seeds():
    # seed s of every method shares natural seed s's images; AdvAAT's gain is 0.2 in every run, AAT's is +0.3 in one
    # run and -0.1 / 0.0 in the others: each run alone separates it from natural training, the runs together do not
    gains = {"advaat": (0.2, 0.21, 0.19), "aat": (0.3, -0.1, 0.0)}
    frames = []
    for seed in range(3):
        frame = _per_image({m: g[seed] for m, g in gains.items()}, noise=0.01, seed=seed)
        frames.append(frame.assign(seed=seed, relative_bound=frame["relative_bound"] + 0.01 * seed))
    per_image = pd.concat(frames, ignore_index=True)
    row = far.method_summary(per_image).set_index("method")
    assert (row.loc["aat", "seeds"], row.loc["aat", "unit"], row.loc["aat", "n"]) == (3, "seeds", 200)
    per_seed = [f.loc[f.method == "aat", "topk_intersection"].mean() - f.loc[f.method == "natural",
                                                                              "topk_intersection"].mean()
                for f in frames]
    expected = across_seeds(per_seed)
    got = row.loc["aat", "topk_gain"]
    assert (got.estimate, got.low, got.high) == pytest.approx((expected.estimate, expected.low, expected.high))
    assert got.n == 3
    assert row.loc["aat", "topk_verdict"] == "not distinguishable with 3 trained runs"
    assert row.loc["advaat", "topk_verdict"] == "larger"
    assert row.loc["aat", "seed_range"].count(" to ") == 1
    assert far.best_method(per_image, "mnist") is None  # AdvAAT does not beat AAT in every run
    # AdvAAT's runs 1 and 2 failed: one run against natural's three is not compared, whatever its images say
    one_run = per_image[(per_image.method != "advaat") | (per_image.seed == 0)]
    row = far.method_summary(one_run).set_index("method").loc["advaat"]
    assert row["topk_verdict"] == row["bound_verdict"] == far.NOT_COMPARED and row["topk_gain"].sign > 0
    sentence = far.method_values(far.method_summary(one_run), one_run)["ch7_sentence_mnist_advaat"]
    assert "one run only" in sentence and "keeps" not in sentence
    assert far.best_method(one_run, "mnist") is None
    assert set(far.versus_earlier(one_run, far=["advaat"], earlier=["aat"])["verdict"]) == {far.NOT_COMPARED}
    # two runs: the Findings page's rule (fewer than three trained runs are too few to test), whatever their spread
    two_runs = per_image[(per_image.method != "advaat") | (per_image.seed < 2)]
    row = far.method_summary(two_runs).set_index("method").loc["advaat"]
    assert row["topk_verdict"] == "only 2 trained runs: too few to test" and row["topk_gain"].n == 2
    sentence = far.method_values(far.method_summary(two_runs), two_runs)["ch7_sentence_mnist_advaat"]
    assert "has 2 trained runs, too few" in sentence and "keeps" not in sentence
    # one seed alone: the images' bootstrap decides, and AAT's run-0 gain of 0.3 is "larger"
    single = far.method_summary(frames[0]).set_index("method")
    assert single.loc["aat", "topk_verdict"] == "larger" and single.loc["aat", "unit"] == "images"
    assert far.best_method(frames[0], "mnist") == "aat"


def test_far_methods_are_compared_with_the_earlier_ones_seed_by_seed():
    # AdvAAT beats PGD-AT by about 0.1 in every run; AAT is 0.1 above PGD-AT in one run and below it in the others
    gains = {"pgd_at": (0.1, 0.1, 0.1), "advaat": (0.2, 0.21, 0.19), "aat": (0.2, 0.0, 0.05)}
    frames = [_per_image({m: g[seed] for m, g in gains.items()}, noise=0.01, seed=seed).assign(seed=seed)
              for seed in range(3)]
    per_image = pd.concat(frames, ignore_index=True)
    versus = far.versus_earlier(per_image, earlier=["pgd_at"]).set_index("method")
    assert list(versus["earlier"]) == ["pgd_at", "pgd_at"] and set(versus["unit"]) == {"seeds"}
    per_seed = [f.loc[f.method == "aat", "topk_intersection"].mean() - f.loc[f.method == "pgd_at",
                                                                              "topk_intersection"].mean()
                for f in frames]
    want, got = across_seeds(per_seed), versus.loc["aat", "difference"]
    assert (got.estimate, got.low, got.high) == pytest.approx((want.estimate, want.low, want.high))
    assert versus.loc["aat", "verdict"] == "not distinguishable with 3 trained runs"
    assert versus.loc["advaat", "verdict"] == "larger"
    sentence = far.versus_values(versus.reset_index())["ch7_versus_mnist"]
    assert sentence.startswith("AAT minus PGD-AT ") and sentence.count(";") == 1
    assert sentence.endswith(", larger, comparable or better within 0.05")  # FAR's claim: non-inferiority
    assert "not distinguishable with 3 trained runs, not shown comparable within 0.05;" in sentence
    # the Findings family tests FAR's claim against the margin fixed in advance, two-sided: scipy's t-test as oracle
    record = far.versus_values(versus.reset_index())["ch7_test_versus_mnist_aat_pgd_at"]
    want = scipy.stats.ttest_1samp(np.array(per_seed), -far.FAR_MARGIN)
    assert record["p"] == pytest.approx(float(want.pvalue)) and record["above"] == "comparable or better within 0.05"
    assert record["below"] == "worse by more than 0.05"
    assert record["shown"] == f"difference {versus.loc['aat', 'difference']}" and record["n"] == 3
    # a FAR method clearly below: the same test reads "worse", not merely "not shown comparable"
    worse = {"pgd_at": (0.3, 0.3, 0.3), "aat": (0.0, 0.02, 0.01)}
    frames = [_per_image({m: g[seed] for m, g in worse.items()}, noise=0.01, seed=seed).assign(seed=seed)
              for seed in range(3)]
    below = far.versus_earlier(pd.concat(frames, ignore_index=True), earlier=["pgd_at"]).set_index("method")
    assert below.loc["aat", "difference"].high < -far.FAR_MARGIN
    assert below.loc["aat", "comparable_verdict"] == "worse by more than 0.05"
    assert far.versus_table(below.reset_index())["comparable within 0.05"].tolist() == ["no: worse"]
    shown = far.versus_table(versus.reset_index()).set_index("comparison")
    for r in versus.itertuples():  # the verdict is read off the difference's interval against -margin
        assert (r.comparable_verdict.startswith("comparable")) == (r.difference.low > -far.FAR_MARGIN)
    assert shown.loc["AdvAAT vs PGD-AT", "comparable within 0.05"] == "yes"
    assert shown.loc["AAT vs PGD-AT", "comparable within 0.05"] == "not shown"
    assert far.versus_earlier(per_image[per_image.method != "pgd_at"], earlier=["pgd_at"]).empty  # nothing to pair


def _ig_norm_seed1_failed(s, names):
    """``training.zoo_results`` of MNIST runs: IG-NORM's seed 1 below its floor, every other run trained."""
    rows = [{"name": n, "dataset": "mnist", "method": n.split("-")[1], "seed": int(n[-1]) if "-seed" in n else 0,
             "clean_accuracy": 0.9698 if n == "mnist-ig_norm-seed1" else 0.98, "floor": 0.97} for n in names]
    return pd.DataFrame(rows).assign(trained=lambda f: f["clean_accuracy"] >= f["floor"])


def test_by_method_leaves_out_failed_runs_and_names_them(monkeypatch):
    measured = []
    monkeypatch.setattr(far_study, "zoo_results", _ig_norm_seed1_failed)
    monkeypatch.setattr(far_study.Study, "measure", lambda self, ds, models, **kw: measured.append(models) or models)
    study = far_study.Study(None)
    study.by_method(["mnist"], ["natural", "ig_norm"], (0, 1, 2))
    kept = measured[0]
    assert sorted(zip(kept["method"], kept["seed"], strict=True)) == [("ig_norm", 0), ("ig_norm", 2), ("natural", 0),
                                                         ("natural", 1), ("natural", 2)]
    assert kept.loc[kept["method"] == "ig_norm", "spec"].tolist() == [{"method": "ig_norm", "seed": 0},
                                                                       {"method": "ig_norm", "seed": 2}]
    assert far.failed_values(study.failed)["ch7_failed"] == ("IG-NORM on MNIST, seed 1 (clean accuracy 0.9698, "
                                                             "floor 0.97)")
    assert far.failed_values(pd.DataFrame(columns=far_study.FAILED_COLUMNS))["ch7_failed"] == "none"


def test_headline_reads_the_committed_attack_and_computes_the_bound_now(monkeypatch):
    bounded = []

    class Settings:
        n_bound = 2
        retrain = False
        load = staticmethod(lambda name: (name, None))  # the model stands for its name

    def relative_bound(self, model, x, y, ds):
        bounded.append((model, y.tolist()))
        return np.arange(len(y), dtype=float) + len(bounded)

    monkeypatch.setattr(far_study, "zoo_results", _ig_norm_seed1_failed)
    monkeypatch.setattr(far_study.Study, "relative_bound", relative_bound)
    monkeypatch.setattr(far_study.Study, "test_data",
                        lambda self, ds: (torch.zeros(10, 1, 28, 28), torch.arange(10) * 10))
    names = ["mnist-natural", "mnist-natural-seed1", "mnist-ig_norm", "mnist-ig_norm-seed1"]
    rows = pd.concat([pd.DataFrame({"unit": n, "dataset": "mnist", "method": n.split("-")[1],
                                    "seed": int(n[-1]) if "-seed" in n else 0, "image": [7, 3, 5],
                                    "topk_intersection": 0.5, "kendall_tau": 0.4, "label_kept": True,
                                    "noise_topk_intersection": 0.8, "noise_kendall_tau": 0.7, "noise_label_kept": True})
                      for n in names], ignore_index=True)
    study = far_study.Study(Settings())
    out = study.headline(["mnist"], ["natural", "ig_norm"], (0, 1), rows)
    assert sorted(set(out["method"] + out["seed"].astype(str))) == ["ig_norm0", "natural0", "natural1"]
    assert bounded == [(name, [30, 50]) for name in ("mnist-natural", "mnist-natural-seed1", "mnist-ig_norm")]
    first = out[(out["method"] == "natural") & (out["seed"] == 0)].set_index("image")["relative_bound"]
    assert first.loc[3] == 1.0 and first.loc[5] == 2.0 and np.isnan(first.loc[7])
    assert "unit" not in out.columns and far.failed_values(study.failed)["ch7_failed"].startswith("IG-NORM on MNIST")
    with pytest.raises(ValueError, match="attrbound results build --only ch7_ifia_rar"):
        far_study.Study(Settings()).headline(["mnist"], ["natural", "ig_norm"], (0,),
                                             rows[rows["unit"] != "mnist-ig_norm"])
    assert out.groupby(["method", "seed"]).size().tolist() == [3, 3, 3]
    Settings.retrain = True  # a retrained zoo is not the zoo the committed attack saw
    with pytest.raises(ValueError, match="committed=False"):
        far_study.Study(Settings()).headline(["mnist"], ["natural"], (0,), rows)
    method = far.method_summary(out)  # the chapter's summary reads it as it reads by_method
    assert set(method["method"]) == {"natural", "ig_norm"}


def _budget_grid(n: int = 40) -> pd.DataFrame:
    """``budget.load`` rows: natural MNIST loses 0.1 more with 3 and 5 restarts, 0.02 more at 200 steps with
    them, 0.01 more again at 200 steps x 5; AdvAAT the same at every budget. The losses vary by +-0.1 % from image
    to image (alternately, so their means stay as stated): images that all agree would support no test."""
    rng = np.random.default_rng(0)
    rows = []
    wobble = 1 + 0.001 * (-1.0) ** np.arange(n)
    for method in ("natural", "advaat"):
        base = rng.uniform(0.3, 0.7, n)
        for steps in (10, 20, 50, 100, 200):
            for restarts in (1, 3, 5):
                more = (restarts > 1) * (0.1 + (steps == 200) * (0.02 + 0.01 * (restarts == 5))) * wobble
                value = base - more * (method == "natural")
                rows.append(pd.DataFrame({"unit": f"mnist-{method}", "dataset": "mnist", "method": method,
                                          "image": range(n), "steps": steps, "restarts": restarts,
                                          "topk_intersection": value, "label_kept": True}))
    return pd.concat(rows, ignore_index=True)


def test_the_attack_budget_is_compared_with_the_best_of_the_grid_on_the_same_images():
    from attrbound_lite.book import budget

    grid = _budget_grid()
    grid.loc[grid.index[:3], ["topk_intersection", "label_kept"]] = [1.0, False]  # 3 cells where no iterate kept y
    table = budget.budget_table(_budget_grid(), (20, 1))
    natural, advaat = table.set_index("method").loc["natural"], table.set_index("method").loc["advaat"]
    # the reference is the best of the grid per image (here 200 x 5), fixed in advance
    assert natural["chapter_gap"].estimate == pytest.approx(0.13) and natural["chapter_gap"].sign > 0
    assert natural["rar_gap"].estimate == pytest.approx(0.03) and natural["rar_budget"] == "100 × 3"
    # RAR's budget (100 x 3): doubling the steps lowers the mean by 0.02 / mean (signed), 5 restarts by nothing
    mean = _budget_grid().query("method == 'natural' and steps == 100 and restarts == 3")["topk_intersection"].mean()
    assert natural["more_steps"] == pytest.approx(-0.02 / mean) and natural["more_restarts"] == 0
    assert natural["steps_effect"] == 0 and natural["restarts_effect"] == pytest.approx(-0.1)  # restarts drive it
    assert advaat["chapter_gap"].estimate == pytest.approx(0.0) and advaat["more_steps"] == 0
    manifest = {"config": {"n_images": 40, "steps": [10, 20, 50, 100, 200], "restarts": [1, 3, 5]},
                "seconds": {"total": 5400.0}, "hardware": {"cpu_count": 2, "processor": "a test CPU"}}
    values = budget.budget_values(grid, table, manifest, (20, 1))
    assert values["ch7_budget_chapter"] == (
        "with the chapter's budget (20 steps and 1 restart) the top-100 intersection is higher than the best of the "
        "grid on 1 of 2 models, by up to 0.130 (0.130 to 0.130) on MNIST natural; on the other 1 the difference is "
        "not distinguishable from zero with 40 images")
    assert values["ch7_budget_rar"].startswith("from RAR's budget (steps × restarts: 100 × 3 on MNIST), doubling the "
                                               "steps, or raising the restarts to 5, moves the mean by less than 2% on "
                                               "1 of 2 models. It has not converged on MNIST natural (")
    assert values["ch7_budget_rar"].endswith("there RAR's budget leaves up to 0.03 more of the top-100 intersection "
                                             "than the best of the grid")
    assert values["ch7_budget_drivers"] == ("at a fixed total length, going from 10 to 200 steps (one restart) changes "
                                            "the mean by 0 on average over the 2 models, and going from one to 5 "
                                            "restarts (the chapter's steps) by 0.05: restarts matter more")
    assert values["ch7_budget_cost"] == "1.5 hours on 2 cores of a test CPU"
    assert values["ch7_budget_failed"] == "3 of the grid's 1,200 pairs of an image and a budget, on 1 models"
    assert values["ch7_budget_short"] == ("the chapter's budget leaves a top-100 intersection up to 0.130 higher than "
                                          "the best of the grid measured (distinguishable, uncorrected, on 1 of 2 "
                                          "seed-0 models)")
    assert values["ch7_budget_grid"] == "10, 20, 50, 100, 200 steps and 1, 3, 5 restarts"
    # every model's gap distinguishable, or none: the sentence has no empty remainder
    natural_rows = _budget_grid().query("method == 'natural'")
    both = budget.budget_table(pd.concat([natural_rows, natural_rows.assign(method="pgd_at")]), (20, 1))
    assert budget.budget_values(grid, both, manifest, (20, 1))["ch7_budget_chapter"].count(";") == 0
    assert budget.budget_values(grid, both, manifest, (20, 1))["ch7_budget_chapter"].count("on all 2 models") == 1
    same = budget.budget_values(grid, table.iloc[1:], manifest, (20, 1))
    assert same["ch7_budget_chapter"].endswith("on none of 1 models; on all 1 the difference is not distinguishable "
                                               "from zero with 40 images")
    assert "It has not converged" not in same["ch7_budget_rar"]
    assert budget.budget_table(_budget_grid(), (None, 3))["chapter_gap"].map(lambda i: i.estimate).tolist() == \
        pytest.approx([0.03, 0.0])  # steps None: RAR's
    text = budget.budget_text_table(table, (20, 1))
    assert list(text.columns[4:]) == ["best of the grid", "this chapter's minus best", "RAR's: change with 2× steps",
                                      "RAR's: change with 5 restarts"]
    assert text["RAR's: change with 2× steps"][0].startswith("-")
    assert text["RAR's: change with 5 restarts"][0] == "0.0%"
    # the chapter uses RAR's budget itself (steps and restarts None): one column of means, the sentences say so
    rar = budget.budget_table(_budget_grid(), (None, None))
    assert rar["chapter_gap"].map(lambda i: i.estimate).tolist() == pytest.approx([0.03, 0.0])
    assert [str(a) for a in rar["chapter"]] == [str(b) for b in rar["rar"]]
    text = budget.budget_text_table(rar, (None, None))
    assert list(text.columns[2:5]) == ["RAR's (the chapter's)", "best of the grid", "RAR's minus best"]
    said = budget.budget_values(_budget_grid(), rar, manifest, (None, None))
    assert said["ch7_budget_chapter"].startswith("with the chapter's budget (RAR's, which the method comparison uses) "
                                                 "the top-100 intersection is higher than the best of the grid on 1 of "
                                                 "2 models")
    assert said["ch7_budget_short"].startswith("RAR's budget, which the method comparison uses, leaves a top-100 "
                                               "intersection up to 0.03")
    assert len(budget.budget_figure(budget.summary(_budget_grid())).axes) == 1


def test_a_failed_run_is_named_by_what_tells_it_from_its_methods_other_runs():
    from attrbound_lite.book.training import run_label

    assert run_label("mnist-ig_norm-seed1") == "seed 1" and run_label("cifar10-subset-aat") == "seed 0"
    assert run_label("mnist-study-pgd_at-eps0.1") == "training radius 0.1"
    assert run_label("mnist-study-aat-ig8") == "8 IG steps in training"
    assert run_label("mnist-study-natural") == "the study's natural model"


def _steering(n: int = 40) -> pd.DataFrame:
    """``Study.steering`` rows: noise keeps 0.6; saliency with k = 200 keeps 0.6 too, the others less."""
    rng = np.random.default_rng(3)
    noise = rng.uniform(0.5, 0.7, n)
    variants = [("none (random sign noise)", 0, 0.0), ("saliency", 200, 0.0), ("IG, 4 points", 200, -0.05),
                ("saliency", 100, -0.1), ("IG, 4 points", 100, -0.25)]
    return pd.concat([pd.DataFrame({"steering": how, "k": k, "image": np.arange(n),
                                    "topk_intersection": noise + shift + (0 if k == 0 else rng.normal(0, 0.01, n))})
                      for how, k, shift in variants], ignore_index=True)


def test_the_attack_variants_are_compared_with_noise_on_the_same_images():
    summary = far.steering_summary(_steering()).set_index(["steering", "k"])
    assert summary.loc[("IG, 4 points", 100), "verdict"] == "below noise"
    assert summary.loc[("IG, 4 points", 100), "minus_noise"].estimate == pytest.approx(-0.25, abs=0.01)
    assert summary.loc[("saliency", 200), "verdict"].startswith("not distinguishable")
    assert pd.isna(summary.loc[("none (random sign noise)", "-"), "verdict"])
    sentence = far.steering_values(summary.reset_index(), "mnist")["ch7_steering"]
    assert "steered by IG, 4 points with k = 100" in sentence and "steered by saliency with k = 200" in sentence


def test_fragility_is_decided_against_random_noise_of_the_same_radius():
    per_image = pd.concat([_per_image({"advaat": 0.1}), _per_image({"advaat": 0.1}, dataset="fashion-mnist",
                                                                   beyond_noise=0.0, seed=1),
                           _per_image({"advaat": 0.1}, dataset="cifar10-subset", beyond_noise=-0.2, seed=2)])
    summary = far.method_summary(per_image).set_index(["dataset", "method"])
    beyond = summary.loc[("mnist", "natural"), "beyond_noise"]
    assert beyond.estimate == pytest.approx(0.2, abs=0.03) and summary.loc[("mnist", "natural"), "noise_verdict"] \
        == "larger"
    assert summary.loc[("fashion-mnist", "natural"), "noise_verdict"] == "not distinguishable with 200 images"
    assert summary.loc[("cifar10-subset", "natural"), "noise_verdict"] == "smaller"
    values = far.method_values(far.method_summary(per_image), per_image)
    assert values["ch7_fragile_mnist_natural"].endswith(f"the attack removes {beyond} more than noise")
    assert "no fragility beyond noise is shown" in values["ch7_fragile_fashion_mnist_natural"]
    assert "too weak to show fragility" in values["ch7_fragile_cifar10_subset_natural"]
    assert "beyond_noise" not in far.method_summary(per_image.drop(columns="noise_topk_intersection")).columns


def test_sign_noise_moves_every_pixel_by_the_radius_the_same_in_any_batch(trained_toy):
    from attrbound_lite.evaluation import noise_per_image, sign_noise

    model, x, y = trained_toy
    noisy = sign_noise(x, 0.1, seed=3)
    moved = (noisy - x).abs()
    inside = (x >= 0.1) & (x <= 0.9)  # pixels the box cannot clip
    assert torch.allclose(moved[inside], torch.full_like(moved[inside], 0.1)) and noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(sign_noise(x[3:], 0.1, seed=3), noisy[3:]) and not torch.equal(sign_noise(x, 0.1, 4), noisy)
    up = ((noisy - x) > 0)[inside].double().mean().item()
    assert 0.4 < up < 0.6  # signs are fair coins
    options = dict(ig_steps=4, batch_size=4, **TOY_SETTINGS)
    rows = noise_per_image(model, x, y, None, **options)
    assert list(rows.columns) == ["topk_intersection", "kendall_tau", "spearman", "label_kept"] and len(rows) == len(y)
    again = noise_per_image(model, x[2:], y[2:], None, **{**options, "batch_size": 3})
    assert np.allclose(rows.iloc[2:].to_numpy(float), again.to_numpy(float))
    tiny = noise_per_image(model, x, y, None, **{**options, "eps": 1e-7})  # a vanishing radius leaves the maps
    assert np.allclose(tiny["topk_intersection"], 1.0) and tiny["label_kept"].all()


def _study(spreads: dict[str, float], levels=(0.1, 0.2, 0.3), n: int = 300, noise: float = 0.05) -> pd.DataFrame:
    """Per-image rows of each method at each level, its mean rising linearly by ``spreads[method]`` over the levels."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, n)
    rows = [pd.DataFrame({"method": m, "train_eps": v, "image": np.arange(n),
                          "topk_intersection": base + spread * i / (len(levels) - 1) + rng.normal(0, noise, n)})
            for m, spread in spreads.items() for i, v in enumerate(levels)]
    rows = [frame.assign(kendall_tau=frame["topk_intersection"]) for frame in rows]
    return pd.concat(rows, ignore_index=True)


def test_spreads_over_the_training_radius_are_compared_with_intervals():
    study = _study({"pgd_at": 0.3, "ig_norm": 0.2, "aat": 0.0, "advaat": 0.05})
    intervals, levels = far.spread_comparison(study, "train_eps", far.FAR_METHODS, far.EARLIER_METHODS)
    assert levels == [0.1, 0.2, 0.3]
    assert intervals["pgd_at"].contains(0.3) and intervals["far"].estimate < intervals["earlier"].estimate
    values = far.spread_values(intervals, "eps", far.FAR_METHODS, far.EARLIER_METHODS, "the training radius")
    assert values["ch7_verdict_eps"] == "smaller"
    assert values["ch7_sentence_eps"].startswith("AAT and AdvAAT depend less on the training radius than PGD-AT and "
                                                 "IG-NORM")
    same = far.spread_values(far.spread_comparison(_study({"pgd_at": 0.1, "ig_norm": 0.1, "aat": 0.1, "advaat": 0.1}),
                                                   "train_eps", far.FAR_METHODS, far.EARLIER_METHODS)[0],
                             "eps", far.FAR_METHODS, far.EARLIER_METHODS, "the training radius")
    assert same["ch7_verdict_eps"] == "not distinguishable with 300 images"
    table = far.spread_table(intervals, far.FAR_METHODS, far.EARLIER_METHODS)
    assert list(table["model"])[-1] == "AAT and AdvAAT minus PGD-AT and IG-NORM"


def test_a_spread_without_two_trained_levels_is_not_tested():
    radius = _study({"pgd_at": 0.3, "ig_norm": 0.2, "aat": 0.0, "advaat": 0.05})
    only = radius[radius["train_eps"] == radius["train_eps"].min()]  # the other radii's models failed to train
    intervals, levels = far.spread_comparison(only, "train_eps", far.FAR_METHODS, far.EARLIER_METHODS)
    assert len(levels) == 1 and intervals["difference"].n == 0
    values = far.spread_values(intervals, "eps", far.FAR_METHODS, far.EARLIER_METHODS, "the training radius",
                               "1 of 17 study models below 0.97 clean accuracy")
    assert values["ch7_verdict_eps"] == "not tested"
    assert values["ch7_sentence_eps"].startswith("not tested by this build") and "1 of 17" in values["ch7_sentence_eps"]


def test_the_ig_steps_spread_uses_the_steps_both_methods_have():
    study = _study({"ig_norm": 0.3, "aat": 0.0}, levels=(2.0, 8.0)).rename(columns={"train_eps": "train_ig_steps"})
    extra = study[(study["method"] == "ig_norm") & (study["train_ig_steps"] == 2.0)].assign(train_ig_steps=5.0)
    study = pd.concat([study, extra], ignore_index=True).assign(n_train=lambda f: np.where(
        f["train_ig_steps"] == 5.0, 12_000, 6_000))
    intervals, levels = far.spread_comparison(study, "train_ig_steps", ["aat"], ["ig_norm"])
    assert levels == [2.0, 8.0] and verdict(intervals["difference"]) == "smaller"
    values = far.steps_study_values(study, levels)
    assert values["ch7_steps_levels"] == "2 and 8" and values["ch7_steps_n_train"] == "6,000"
    assert "IG-NORM with 5 steps, trained on 12,000 images" in values["ch7_steps_other"]


def test_the_study_models_are_the_zoos():
    models = far_study.study_models()
    assert len(models) == 1 + 4 * len(STUDY_RADII) + 2 * len(STUDY_IG_STEPS)
    assert models["radius_study"].sum() == 4 * len(STUDY_RADII)
    steps = models[models["steps_study"]]
    assert set(steps["method"]) == {"ig_norm", "aat"} and len(steps) == 2 * len(STUDY_IG_STEPS) + 1
    assert steps["train_eps"].eq(max(STUDY_RADII)).all()
    natural = models[models["method"] == "natural"].iloc[0]
    assert natural["train_eps"] == 0 and not natural["radius_study"] and not natural["steps_study"]


def test_chapter7_figures_draw_intervals():

    per_image = _per_image({"pgd_at": -0.2, "aat": 0.0, "advaat": 0.2})
    summary = far.method_summary(per_image)
    assert len(far.far_methods_figure(summary).axes) == 2
    study = _study({"pgd_at": 0.3, "ig_norm": 0.2, "aat": 0.0, "advaat": 0.05})
    level = far.level_summary(study, "train_eps", ["pgd_at", "aat"])
    assert list(level["n"]) == [300] * 6
    natural = {name: Interval(0.5, 0.45, 0.55, 300) for name in far.METRICS}
    assert len(far.far_eps_figure(level, natural).axes) == 2


def test_the_chapters_prose_cites_only_values_the_helpers_glue():
    import json
    import re
    from pathlib import Path
    from types import SimpleNamespace

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "07_far.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    cited = set(re.findall(r"\{glue:(?:text|figure)\}`?\s*([A-Za-z0-9_]+)", text))
    datasets = ["mnist", "fashion-mnist", "cifar10-subset"]
    per_image = pd.concat([_per_image({"pgd_at": 0.1, "ig_norm": 0.0, "aat": 0.05, "advaat": 0.2}, dataset=ds, seed=i)
                           for i, ds in enumerate(datasets)])
    s = SimpleNamespace(ifia_steps=20, restarts=1, eval_ig_steps=16, n_ifia=128, n_bound=32, bound_ig_steps=4,
                        seeds=[0, 1, 2])
    radius = _study({"pgd_at": 0.3, "ig_norm": 0.2, "aat": 0.0, "advaat": 0.05})
    steps = _study({"ig_norm": 0.3, "aat": 0.0}, levels=(2.0, 8.0)).rename(columns={"train_eps": "train_ig_steps"})
    steps = steps.assign(n_train=6000)
    from attrbound_lite.book import budget
    manifest = {"config": {"n_images": 40, "steps": [10, 200], "restarts": [1, 5]}, "seconds": {"total": 60.0},
                "hardware": {}}
    glued = {**far.settings_values(s, datasets), **far.method_values(far.method_summary(per_image), per_image),
             **far.spread_values(far.spread_comparison(radius, "train_eps", far.FAR_METHODS, far.EARLIER_METHODS)[0],
                                 "eps", far.FAR_METHODS, far.EARLIER_METHODS, "the training radius"),
             **far.spread_values(far.spread_comparison(steps, "train_ig_steps", ["aat"], ["ig_norm"])[0], "steps",
                                 ["aat"], ["ig_norm"], "the IG steps used in training"),
             **far.steps_study_values(steps, [2.0, 8.0]),
             **far.steering_values(far.steering_summary(_steering()), "mnist"),
             **far.failed_values(pd.DataFrame(columns=far_study.FAILED_COLUMNS)),
             **far.versus_values(far.versus_earlier(per_image)),
             **budget.budget_values(_budget_grid(), budget.budget_table(_budget_grid(), (20, 1)), manifest,
                                   (20, 1))}
    glued.update(far.radius_study_values(radius.assign(n_train=12_000)))
    glued.update({name: None for name in ("ch7_n_study", "ch7_minutes", "ch7_fig_example", "ch7_fig_methods",
                                          "ch7_budget_live",
                                          "ch7_fig_eps", "ch7_fig_steps", "ch7_fig_budget", "ch7_study_failed",
                                          "ch7_study_floor", "ch7_study_trained")})  # glued by the notebook itself
    assert cited <= set(glued), sorted(cited - set(glued))
    assert far.settings_values(s, ["mnist"])["ch7_attack"] == ("MNIST: radius 0.3, top-100 objective, 20 steps of "
                                                               "0.0500, 1 restart")
    assert far.settings_values(s, ["mnist"])["ch7_rar_attack"] == ("MNIST: radius 0.3, top-200 objective, 100 steps "
                                                                   "of 0.0100, 3 restarts")
    # the committed comparison: RAR's budget, the images counted per data set, and the live attacks' smaller budget
    committed = far.settings_values(s, ["mnist", "cifar10-subset"], True, {"mnist": 256, "cifar10-subset": 183})
    assert committed["ch7_attack"].startswith("MNIST: radius 0.3, top-100 objective, 100 steps of 0.0100, 3 restarts")
    assert committed["ch7_n_ifia"] == ("256 on MNIST, 183 on the CIFAR-10 subset (all the test images that every "
                                       "trained run classifies correctly)")
    assert committed["ch7_n_short"] == "256 (183 on the CIFAR-10 subset)" and far.settings_values(s, ["mnist"])[
        "ch7_n_short"] == str(s.n_ifia)
    assert committed["ch7_comparison_budget"] == "RAR's budget" and committed["ch7_eval_ig_steps"] == 100
    assert committed["ch7_live_budget"].startswith("fewer steps and restarts than RAR's, each step larger")


def test_tour_eleven_the_chapters_helpers_refuse_what_they_cannot_read():
    """Tour 11: a method name as a string, a misspelt method, a missing column or a repeated row are refused by
    name, not turned into a "not tested" verdict or a pandas error; budget tables take None for RAR's budget."""
    from attrbound_lite.book import budget
    from attrbound_lite.book.tables import reader_table

    study = _study({"pgd_at": 0.3, "ig_norm": 0.2, "aat": 0.0, "advaat": 0.05})
    for far_methods, kind, fragment in (("aat", TypeError, "list of method names"), ([], TypeError, "non-empty"),
                                        (["AAT"], ValueError, "not in the training methods")):
        with pytest.raises(kind, match=fragment):
            far.spread_comparison(study, "train_eps", far_methods, far.EARLIER_METHODS)
    with pytest.raises(ValueError, match="lacks the columns"):
        far.spread_comparison(study, "train_ig_steps", far.FAR_METHODS, far.EARLIER_METHODS)
    # a method whose runs all failed has no rows: not tested, as in the book, not refused
    failed = study[study["method"] != "ig_norm"]
    intervals, levels = far.spread_comparison(failed, "train_eps", far.FAR_METHODS, far.EARLIER_METHODS)
    assert levels == [] and intervals["difference"].n == 0
    with pytest.raises(ValueError, match="repeated rows"):
        far.spread_comparison(pd.concat([study, study.iloc[:1]]), "train_eps", far.FAR_METHODS, far.EARLIER_METHODS)
    with pytest.raises(TypeError, match="list of method names"):
        far.versus_earlier(_per_image({"pgd_at": 0.1, "ig_norm": 0.0, "aat": 0.05, "advaat": 0.2}), far="aat")
    grid = _budget_grid()
    assert budget.budget_table(grid, None).astype(str).equals(budget.budget_table(grid, (None, None)).astype(str))
    for rows, chapter, fragment in ((grid, (7, 2), "is not one of the grid's"),
                                    (pd.concat([grid, grid.iloc[:1]]), (20, 1), "repeated rows"),
                                    (grid.drop(columns="topk_intersection"), (20, 1), "lacks the columns")):
        with pytest.raises(ValueError, match=fragment):
            budget.budget_table(rows, chapter)
    assert reader_table({"eps": [0.1]}).data.shape == (1, 1) and reader_table(pd.Series([1.0], name="x")).data.shape \
        == (1, 1)
    with pytest.raises(TypeError, match="must be a table"):
        reader_table([0.1, 0.2])
