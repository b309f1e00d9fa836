"""The book's support code without executing a notebook: the profile table, and the helpers that compute the
numbers and verdict sentences of chapters 4 to 9, on small synthetic tables."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from attrbound_lite.book import bound_tables, far, profiles, reproducibility, speed, training, validation
from attrbound_lite.book.profiles import (
    BOOK_PROFILES,
    CHAPTER_SIZES,
    CHAPTERS,
    book_recipe,
    book_store,
    chapter_settings,
)
from attrbound_lite.book.runner import BOOK_OUT_ENV
from attrbound_lite.training import TRAINING_PROTOCOLS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _parameters(stem: str) -> dict:
    """The names and values of a notebook's parameters cell (literals only)."""
    nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


# ---------------------------------------------------------------------------------------------- profiles

def test_the_profile_table_covers_the_books_chapters_and_their_parameters():
    assert list(CHAPTERS) == sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    for profile, chapters in CHAPTER_SIZES.items():
        for chapter, rules in chapters.items():
            assert set(rules) <= set(_parameters(chapter)), f"{profile}/{chapter} sizes parameters it lacks"


def test_every_notebook_starts_with_setup_and_passes_what_its_profiles_size():
    """The cell after the parameters cell calls ``book.setup(profile, "<stem>", ...)`` with every parameter that a
    profile sizes (else the full profile would fail at run time)."""
    for stem in CHAPTERS:
        nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
        first = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c["metadata"].get("tags", []))
        calls = [node for node in ast.walk(ast.parse("".join(nb["cells"][first + 1]["source"])))
                 if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "setup"]
        assert len(calls) == 1, f"{stem}: the cell after the parameters cell must call book.setup once"
        call = calls[0]
        assert [ast.literal_eval(a) if isinstance(a, ast.Constant) else a.id for a in call.args] == ["profile", stem]
        sized = set().union(*(set(chapters.get(stem, {})) for chapters in CHAPTER_SIZES.values()))
        passed = {k.arg for k in call.keywords}
        assert sized <= passed, f"{stem}: book.setup lacks {sorted(sized - passed)}"


def test_ci_runs_the_parameters_as_given():
    params = _parameters("06_validation")
    del params["profile"]
    s = chapter_settings("ci", "06_validation", **params)
    assert ({k: v for k, v in s.values.items() if k != "datasets"}
            == {k: v for k, v in params.items() if k != "datasets"})
    assert s.datasets == list(BOOK_PROFILES["ci"]["datasets"])
    assert chapter_settings("ci", "04_training", datasets=["mnist"]).datasets == ["mnist"]


@pytest.mark.parametrize("given", [None, "large"])
def test_full_profile_gives_what_the_notebooks_computed(given):
    """The full profile's values are those the notebooks' second cells used to derive: max() with the given
    parameter, a fixed value, or a sorted union."""
    big = given == "large"
    n02 = 1000 if big else 61
    assert chapter_settings("full", "02_bounds", grid_points=n02).grid_points == max(n02, 401)
    w, ig, n = (0.5, 64, 100) if big else (0.125, 4, 4)
    s = chapter_settings("full", "03_jacobians", width=w, ig_steps=ig, n_images=n)
    assert (s.width, s.ig_steps, s.n_images) == (max(w, 0.25), max(ig, 16), max(n, 32))
    s = chapter_settings("full", "04_training", n_test=1000, n_pgd=500)
    assert (s.n_test, s.n_pgd) == (None, None)
    n, ig = (900, 64) if big else (16, 8)
    s = chapter_settings("full", "05_bounds", n_samples=n, ig_steps=ig, datasets=None)
    assert (s.n_samples, s.ig_steps) == (max(n, 500), max(ig, 32))
    assert s.datasets == ["mnist", "fashion-mnist", "cifar10"]
    p = dict(n_samples=2000 if big else 16, restarts=5 if big else 1, steps=20, ig_steps=4,
             eps_l2=[0.001, 0.1, 0.5, 2.0] if big else [0.001, 0.1, 0.5], eps_linf=[0.0001, 0.01, 0.03])
    s = chapter_settings("full", "06_validation", **p)
    assert (s.n_samples, s.restarts, s.steps, s.ig_steps) == (
        max(p["n_samples"], 1000), max(p["restarts"], 3), max(p["steps"], 100), max(p["ig_steps"], 16))
    assert s.eps_l2 == sorted(set(p["eps_l2"]) | {0.01, 0.05, 0.25, 1.0})
    assert s.eps_linf == sorted(set(p["eps_linf"]) | {0.001, 0.003, 0.1})
    p = _parameters("07_far")
    del p["profile"]
    s = chapter_settings("full", "07_far", **p)
    assert (s.n_ifia, s.restarts, s.eval_ig_steps, s.attack_ig_steps, s.n_bound, s.ifia_steps) == (500, 3, 100, 10, 500,
                                                                                                  None)
    assert s.train_eps_grid == sorted(set(p["train_eps_grid"]) | {0.3})
    assert s.ig_steps_grid == sorted(set(p["ig_steps_grid"]) | {64, 100})
    assert s.methods == p["methods"]  # not sized: kept


def test_chapter_settings_refuse_what_they_cannot_size():
    with pytest.raises(ValueError, match=r"profile must be 'ci' or 'full', got 'paper'"):
        chapter_settings("paper", "02_bounds", grid_points=61)
    with pytest.raises(ValueError, match="unknown chapter"):
        chapter_settings("ci", "10_nothing")
    with pytest.raises(ValueError, match=r"sizes the parameters \['ig_steps'\]"):
        chapter_settings("full", "05_bounds", n_samples=16)
    s = chapter_settings("ci", "02_bounds", grid_points=61)
    with pytest.raises(AttributeError, match="have no 'n_samples'"):
        _ = s.n_samples


def test_book_store_follows_the_runners_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(BOOK_OUT_ENV, str(tmp_path))
    assert book_store("models", "ci") == tmp_path / "models" / "ci"
    assert chapter_settings("full", "08_speed").sweep_dir == tmp_path / "sweeps" / "full"
    monkeypatch.delenv(BOOK_OUT_ENV)
    assert book_store("sweeps", "full") == ROOT / "_build" / "sweeps" / "full"


def test_book_recipe_scales_the_step_with_the_radius():
    full = book_recipe("full", "mnist", "pgd_at", eps=0.1)
    protocol = TRAINING_PROTOCOLS["mnist"]
    assert full.options["steps"] == protocol["steps"]
    assert full.options["alpha"] == pytest.approx(protocol["alpha"] * 0.1 / protocol["eps"])
    ci = book_recipe("ci", "mnist", "pgd_at", eps=0.2)
    assert ci.options["alpha"] == pytest.approx(2.5 * 0.2 / ci.options["steps"])
    assert book_recipe("ci", "mnist", "natural").key == book_recipe("ci", "mnist", "natural", eps=0.3).key
    assert chapter_settings("ci", "04_training").recipe("mnist", "aat") == book_recipe("ci", "mnist", "aat")
    with pytest.raises(ValueError, match="unknown profile"):
        book_recipe("paper", "mnist", "natural")
    with pytest.raises(ValueError, match="trains on"):
        book_recipe("ci", "cifar10", "natural")


def test_setup_validates_seeds_and_returns_the_settings():
    pytest.importorskip("matplotlib")
    pytest.importorskip("seaborn")
    import torch

    from attrbound_lite.book import setup

    with pytest.raises(ValueError, match=r"profile must be 'ci' or 'full', got 'gpu'"):
        setup("gpu", "03_jacobians", seed=0, width=0.125, ig_steps=4, n_images=4)
    s = setup("full", "03_jacobians", seed=5, width=0.125, ig_steps=4, n_images=4)
    drawn = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(drawn, torch.rand(3))
    assert (s.seed, s.width, s.device.type) == (5, 0.25, "cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------- chapter 4

def _accuracy(pgd_natural: float, pgd_at: float) -> pd.DataFrame:
    rows = []
    for ds, shift in (("mnist", 0.0), ("cifar10-subset", -0.5)):
        rows += [dict(dataset=ds, method="natural", clean_accuracy=0.9 + shift / 2,
                      pgd_accuracy=pgd_natural + shift / 4),
                 dict(dataset=ds, method="pgd_at", clean_accuracy=0.8 + shift / 2, pgd_accuracy=pgd_at + shift / 4)]
    return pd.DataFrame(rows)


def test_chapter4_says_where_pgd_at_wins():
    v = training.accuracy_values(_accuracy(0.1, 0.5), ["mnist", "cifar10-subset"])
    assert (v["ch4_pgd_at_wins"], v["ch4_n_datasets"]) == (2, 2)
    assert v["ch4_pgd_at_win_list"] == "mnist, cifar10-subset"
    assert v["ch4_best_pgd"] == "cifar10-subset: pgd_at (0.38); mnist: pgd_at (0.50)"
    assert (v["ch4_first_dataset"], v["ch4_natural_clean"], v["ch4_natural_pgd"]) == ("mnist", 0.9, 0.1)
    assert v["ch4_min_clean"] == pytest.approx(0.55)
    v = training.accuracy_values(_accuracy(0.5, 0.1), ["mnist", "cifar10-subset"])
    assert (v["ch4_pgd_at_wins"], v["ch4_pgd_at_win_list"]) == (0, "none")
    assert v["ch4_best_pgd"].startswith("cifar10-subset: natural")


# ---------------------------------------------------------------------------------------------- chapter 5

def _bounds() -> pd.DataFrame:
    rows = []
    for ds, n in (("mnist", 784), ("cifar10-subset", 3072)):
        for method, sigma in (("natural", 2.0), ("advaat", 0.5)):
            for sample in range(4):
                a_norm = 1.0 + sample
                for norm, eps_values in (("l2", (0.1, 1.0)), ("linf", (0.01, 0.1))):
                    for eps in eps_values:
                        r = eps * sigma * (np.sqrt(n) if norm == "linf" else 1.0)
                        rows.append(dict(dataset=ds, method=method, sample=sample, attribution="saliency", norm=norm,
                                         eps=eps, sigma_max=sigma, attribution_norm=a_norm, bound_euclidean=r,
                                         bound_cosine=np.sqrt(1 - (r / a_norm) ** 2) if r < a_norm else -1.0,
                                         bound_converged=True))
    return pd.DataFrame(rows)


def test_chapter5_values_from_a_bound_table():
    bounds = _bounds()
    assert bound_tables.overview_values(bounds) == {"ch5_n_rows": 64, "ch5_n_models": 4, "ch5_converged": 1.0}
    v = bound_tables.relative_values(bounds, [0.1, 1.0], [0.01, 0.1])
    assert v["ch5_sqrt_n"] == "28, 55"
    # vacuous where r >= ||A(x)||: natural at a <= 2 in l2; in l-infinity 11 of 16 samples; 1 of 32 at the smallest
    assert (v["ch5_vacuous_l2"], v["ch5_vacuous_linf"], v["ch5_vacuous_small"]) == (0.25, 0.6875, 1 / 32)
    assert (v["ch5_eps_l2_max"], v["ch5_eps_linf_max"]) == (1.0, 0.1)
    one, median = bound_tables.method_medians(bounds, ["natural", "advaat"], 0.1)
    assert list(median.columns) == ["natural", "advaat"] and set(one["eps"]) == {0.1}
    assert bound_tables.method_values(median) == {"ch5_advaat_ratio": "cifar10-subset: 0.25, mnist: 0.25",
                                                  "ch5_smallest_method": "cifar10-subset: advaat, mnist: advaat"}
    mid = bound_tables.cosine_rows(bounds, "mnist", [0.1, 1.0, 2.0], [0.01, 0.1, 0.2])
    assert set(zip(mid["norm"], mid["eps"], strict=True)) == {("l2", 1.0), ("linf", 0.1)}
    assert set(mid["dataset"]) == {"mnist"}
    assert bound_tables.cosine_values(mid, "mnist")["ch5_first_dataset"] == "mnist"


def test_chapter5_scaling_check_reproduces_the_bound_tables_seed():
    from conftest import small_cnn, synthetic_images

    from attrbound_lite.experiments import bound_seed, bound_table
    from attrbound_lite.runtime import derive_seed

    assert bound_seed(3, "saliency", 0) == derive_seed(3, "bound", "saliency", 0)
    model = small_cnn(seed=2).float()
    x, y = synthetic_images(6, seed=1)
    table = bound_table(model, (x, y), {"l2": [0.1, 0.5], "linf": [0.01]}, seed=3,
                        bound_options={"tol": 1e-3, "max_dense_n": 0}).assign(dataset="toy", method="natural")
    radii = [("l2", 0.5), ("linf", 0.01)]
    assert bound_tables.scaling_check(model, x, table, "toy", "natural", radii, 1e-3, 3) < 1e-5


# ---------------------------------------------------------------------------------------------- chapter 6

def _by_eps(l2_rates, linf_rates, n_kept=10) -> pd.DataFrame:
    rows = []
    for norm, eps_values, rates in (("l2", (0.001, 0.1, 0.5), l2_rates), ("linf", (0.0001, 0.01, 0.03), linf_rates)):
        for eps, rate in zip(eps_values, rates, strict=False):
            rows.append(dict(norm=norm, eps=eps, n_kept=n_kept, violations=round(rate * n_kept), violation_rate=rate,
                             ratio_euclidean_median=0.5 + rate))
    return pd.DataFrame(rows)


def test_chapter6_verdicts_at_the_smallest_radius_and_the_trend():
    v = validation.eps_values(_by_eps([0.0, 0.2, 0.5], [0.0, 0.0, 0.0]))
    assert v["ch6_violation_smallest_eps"] == 0.0
    assert v["ch6_smallest_verdict"] == "no attack beat the bound"
    assert v["ch6_smallest_eps"] == "0.001 (l2) and 0.0001 (linf)"
    assert v["ch6_trend"] == "in l2 it grows with the radius; in linf it is zero at every radius"
    assert v["ch6_violation_largest_eps"] == "0.50 at 0.5 (l2), 0.00 at 0.03 (linf)"
    assert v["ch6_tightness_largest"] == "1.00 (l2), 0.50 (linf)"
    v = validation.eps_values(_by_eps([0.1, 0.3, 0.2], [0.2, 0.1, 0.0]))
    assert v["ch6_smallest_verdict"] == "3 of 20 label-keeping attacks beat it"
    assert v["ch6_violation_smallest_eps"] == 0.2
    assert v["ch6_trend"] == ("in l2 it does not grow steadily with the radius; "
                              "in linf it does not grow steadily with the radius")


def test_chapter6_sweeps_get_one_folder_per_config(tmp_path):
    from attrbound_lite.checkpoints import save_checkpoint
    from attrbound_lite.models import model_for_dataset
    from attrbound_lite.sweep import load_config

    ckpt = save_checkpoint(model_for_dataset("mnist", width=0.125), tmp_path / "natural" / "model.safetensors")
    kwargs = dict(n_samples=16, eps_l2=[0.1], eps_linf=[0.01], ig_steps=4, restarts=1, steps=20, shard_size=16, seed=0)
    config = validation.sweep_config("mnist", {"natural": ckpt}, **kwargs)
    assert config["models"] == [{"name": "natural", "checkpoint": str(ckpt)}]
    filled = load_config(config)  # the attacks' defaults come from AttackSpec, filled in by the sweep
    assert [a["relative_alpha"] for a in filled["attacks"]] == [0.25, 0.125]
    assert filled["attacks"][1]["k"] == 78  # 10 % of MNIST's 784 pixels
    folder = validation.sweep_folder(tmp_path, "mnist", config, "cpu")
    assert folder.parent == tmp_path and folder.name.startswith("mnist-") and len(folder.name) == len("mnist-") + 12
    again = validation.sweep_config("mnist", {"natural": ckpt}, **kwargs)
    assert validation.sweep_folder(tmp_path, "mnist", again, "cpu") == folder
    other = validation.sweep_config("mnist", {"natural": ckpt}, **{**kwargs, "steps": 21})
    assert validation.sweep_folder(tmp_path, "mnist", other, "cpu") != folder
    assert validation.sweep_folder(tmp_path, "mnist", config, "cuda") != folder


# ---------------------------------------------------------------------------------------------- chapter 7

def test_chapter7_reads_the_correlation_and_the_spreads():
    assert far.corr_reading(-0.9) == "a smaller worst case goes with more stable top features"
    assert far.corr_reading(-0.3).endswith("but only loosely")
    assert far.corr_reading(0.2).startswith("the sign is the opposite")
    assert far.spread_verdict(0.10, 0.30, 0.1) == "smaller"
    assert far.spread_verdict(0.30, 0.10, 0.1) == "larger"
    assert far.spread_verdict(0.30, 0.25, 0.1) == "indistinguishable at this sample size"
    methods = ["natural", "pgd_at", "ig_norm", "aat", "advaat"]
    spreads = pd.DataFrame({"spread_train_eps": [np.nan, 0.4, 0.2, 0.05, 0.05],
                            "spread_ig_steps": [0.1, 0.1, 0.1, 0.12, 0.1]}, index=methods)
    v = far.claim_values(spreads, methods, 25)
    assert v["ch7_resolution"] == 0.1
    assert (v["ch7_spread_eps_far"], v["ch7_spread_eps_earlier"]) == (pytest.approx(0.05), pytest.approx(0.3))
    assert (v["ch7_verdict_eps"], v["ch7_verdict_steps"]) == ("smaller", "indistinguishable at this sample size")
    study = pd.DataFrame({"method": ["aat", "aat", "advaat", "advaat"], "topk_intersection": [0.2, 0.5, 0.4, 0.4]})
    assert far.spread(study, "s").to_dict() == {"aat": pytest.approx(0.3), "advaat": 0.0}


def test_chapter7_compares_the_methods():
    rows = []
    for ds, boost in (("mnist", 0.2), ("fashion-mnist", -0.1)):
        for m, topk, bound in (("natural", 0.5, 3.0), ("pgd_at", 0.6, 2.0), ("advaat", 0.5 + boost, 1.0)):
            rows.append(dict(dataset=ds, method=m, topk_intersection=topk, median_bound=bound))
    v = far.method_values(pd.DataFrame(rows), ["mnist", "fashion-mnist"], ["natural", "pgd_at", "advaat"])
    assert v["ch7_best_topk"] == "mnist: advaat, fashion-mnist: pgd_at"
    assert v["ch7_smallest_bound"] == "mnist: advaat, fashion-mnist: advaat"
    assert (v["ch7_far_beats_natural"], v["ch7_n_datasets"]) == (1, 2)
    assert -1 <= v["ch7_bound_topk_corr"] <= 1 and v["ch7_corr_reading"] == far.corr_reading(v["ch7_bound_topk_corr"])


# ---------------------------------------------------------------------------------------------- chapter 8

def _glue_names(stem: str) -> set[str]:
    import re

    nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return set(re.findall(r"\{glue:text\}`([A-Za-z0-9_]+)", text))


def test_chapter8_values_cover_its_prose():
    results = speed.load_results(RESULTS)
    values = speed.chapter_values(results)
    assert _glue_names("08_speed") <= set(values), sorted(_glue_names("08_speed") - set(values))
    for name, value in values.items():  # plain Python values: the prose shows their text
        assert type(value) in (int, float, str), (name, type(value))
    assert speed.target_line(results["bounds"]) == (0.25, "target (b): 1/4")
    assert values["ch8_checks"] == "(a) passed, (b) passed, (c) passed"


def test_chapter8_refuses_a_missing_result_naming_its_make_target(tmp_path):
    with pytest.raises(FileNotFoundError, match="make bench`"):
        speed.load_results(tmp_path)


def _bound_rows(ratios: dict) -> pd.DataFrame:
    rows = [dict(model=model, n=n, attribution=attribution, bound_s=1.0, hvps_median=10.0, exact_s=np.nan,
                 bound_over_ifia=ratio) for (model, n, attribution), ratio in ratios.items()]
    return speed.bound_rows({"rows": rows})


def test_chapter8_says_which_bounds_cost_more_than_the_attack():
    cheap = _bound_rows({("mnist_cnn", 784, "saliency"): 0.2, ("resnet18", 150528, "saliency"): 0.1})
    assert speed._bound_vs_attack(cheap) == ("No bound costs more than the attack: the dearest, saliency on "
                                             "mnist_cnn, costs 0.20 of it.")
    mixed = _bound_rows({("mnist_cnn", 784, "saliency"): 0.2, ("mnist_cnn", 784, "integrated_gradients(m=16)"): 2.0,
                         ("cifar_cnn", 3072, "integrated_gradients(m=16)"): 3.0})
    assert speed._bound_vs_attack(mixed) == (
        "The bound costs more than the attack for integrated gradients (m = 16) on mnist_cnn (2.0 times) and "
        "integrated gradients (m = 16) on cifar_cnn (3.0 times) (the attack differentiates saliency; each "
        "Hessian-vector product of the Integrated Gradients bound spans all the path points); every other bound "
        "costs at most 0.20 of the attack.")
    assert list(cheap["exact_estimate_s"]) == [78.4, 15052.8]  # n products at the bound's cost per product
    assert speed.label("integrated_gradients(m=16)") == "integrated gradients (m = 16)"


def test_chapter8_layout_and_evaluation_verdicts():
    rate = pd.Series({("pgd", "2 processes x 1 thread"): 2.0, ("pgd", "1 process x 2 threads"): 1.0,
                      ("ifia", "2 processes x 1 thread"): 1.0, ("ifia", "1 process x 2 threads"): 2.0})
    assert speed._layout_verdict(rate, ["pgd", "ifia"]) == (
        "two single-threaded processes beat one process with two threads for PGD, not for IFIA")
    assert speed._layout_verdict(rate, ["pgd"]) == (
        "two single-threaded processes beat one process with two threads for every attack")
    assert speed._layout_verdict(rate, ["ifia"]).startswith("one process with two threads beats")
    training_json = json.loads((RESULTS / "training.json").read_text())
    for r in training_json["results"]:
        r["eval_seconds"] = r["train_seconds"] / 2
    assert speed.training_values(training_json)["ch8_eval_vs_train"] == "shorter than its training for every method"
    training_json["results"][0]["eval_seconds"] = training_json["results"][0]["train_seconds"] * 2
    first = training_json["results"][0]["method"]
    assert speed.training_values(training_json)["ch8_eval_vs_train"] == (
        f"longer than its training for 1 of the {len(training_json['results'])} methods ({first})")


# ---------------------------------------------------------------------------------------------- chapter 9

def test_chapter9_seeds_and_execution_times(tmp_path):
    seeds = pd.DataFrame({"seed": ["2", "0", "(none)", "unreadable: OSError"]}, index=["a", "b", "c", "d"])
    assert reproducibility.seed_values(seeds) == {"ch9_seeded": 3, "ch9_notebooks": 4,
                                                  "ch9_seed_note": "not 0 in a (2)"}
    assert reproducibility.seed_values(seeds.iloc[1:])["ch9_seed_note"] == "every one of them defaults to 0"
    assert reproducibility.chapter_stems(ROOT) == list(CHAPTERS)

    empty = reproducibility.times_table(None, ["a"], "c")
    assert empty.empty
    assert reproducibility.times_note(empty, None).startswith("this page was executed outside attrbound book")
    times_file = tmp_path / "execution_times.json"
    times_file.write_text(json.dumps({"build_started": "T2", "notebooks": {
        "b": {"seconds": 2.0, "build_started": "T2"}, "a": {"seconds": 1.5, "build_started": "T1"},
        "c": {"seconds": 9.0, "build_started": "T2"}}}))
    times = reproducibility.times_table(times_file, ["a", "b", "c"], "c")
    assert list(times["notebook"]) == ["a", "b"] and list(times["this_build"]) == [False, True]
    assert reproducibility.times_note(times, times_file) == (
        "the 1 chapter executed before this one in this build took 2.0 s in all; 1 page was executed by an earlier "
        "build into the same output folder and reused (grey); this chapter's own time is recorded when it finishes")
    assert reproducibility.times_note(times.iloc[:0], times_file).startswith(
        "no chapter was executed before this one in this build")


def test_profiles_module_names_every_public_helper():
    for module in (profiles, bound_tables, far, reproducibility, speed, training, validation):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
