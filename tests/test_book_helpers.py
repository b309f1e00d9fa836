"""The book's support code without executing a notebook: the profile table, and the helpers that compute the
numbers and verdict sentences of chapters 4 to 9, on small synthetic tables."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from attrbound_lite.book import (
    bound_tables,
    far,
    profiles,
    reproducibility,
    speed,
    speed_gpu,
    tables,
    training,
    validation,
)
from attrbound_lite.book.profiles import (
    BOOK_PROFILES,
    CHAPTER_SIZES,
    CHAPTERS,
    book_store,
    chapter_settings,
)
from attrbound_lite.book.runner import BOOK_OUT_ENV, EXECUTED_DIR, toc_files
from attrbound_lite.stats import Interval

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
    # the number of a stem is its chapter's: the table of contents lists them in that order, after the introduction
    # (pages that are not chapters, such as how to cite and the references, may follow them)
    files = toc_files(ROOT / "_toc.yml")
    assert files[1:1 + len(CHAPTERS)] == [f"{EXECUTED_DIR}/{stem}" for stem in CHAPTERS]
    assert not any(f.startswith(f"{EXECUTED_DIR}/") for f in files[1 + len(CHAPTERS):])
    assert all(int(stem[:2]) == i + 1 for i, stem in enumerate(CHAPTERS))
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
    assert chapter_settings("full", "04_training").values == {}  # the zoo's manifests: nothing to size
    n, ig = (900, 64) if big else (16, 8)
    s = chapter_settings("full", "05_bounds", n_samples=n, ig_steps=ig, datasets=None)
    assert (s.n_samples, s.ig_steps) == (max(n, 500), max(ig, 32))
    assert s.datasets == ["mnist", "fashion-mnist", "cifar10-subset"]  # the reference zoo's
    p = dict(n_samples=2000 if big else 16, restarts=5 if big else 1, steps=20, ig_steps=4,
             eps_l2=[0.001, 0.1, 0.5, 2.0] if big else [0.001, 0.1, 0.5], eps_linf=[0.0001, 0.01, 0.03],
             committed=True)
    s = chapter_settings("full", "06_validation", **p)
    assert s.committed is False  # the full profile sweeps l-inf itself
    assert (s.n_samples, s.restarts, s.steps, s.ig_steps) == (
        max(p["n_samples"], 1000), max(p["restarts"], 3), max(p["steps"], 100), max(p["ig_steps"], 16))
    assert s.eps_l2 == sorted(set(p["eps_l2"]) | {0.01, 0.05, 0.25, 1.0})
    assert s.eps_linf == sorted(set(p["eps_linf"]) | {0.001, 0.003, 0.1})
    p = _parameters("07_far")
    del p["profile"]
    s = chapter_settings("full", "07_far", **p)
    assert (s.n_ifia, s.restarts, s.eval_ig_steps, s.n_bound, s.ifia_steps) == (
        max(p["n_ifia"], 500), 3, 100, max(p["n_bound"], 128), None)
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
    assert chapter_settings("full", "11_speed").sweep_dir == tmp_path / "sweeps" / "full"
    monkeypatch.delenv(BOOK_OUT_ENV)
    assert book_store("sweeps", "full") == ROOT / "_build" / "sweeps" / "full"


def test_settings_read_the_reference_zoo_or_retrain_it(tmp_path, monkeypatch):
    """Chapters read the committed zoo (hash-checked); with --retrain-zoo they train the same recipes in OUT."""
    from attrbound_lite import zoo
    from attrbound_lite.book.runner import RETRAIN_ENV

    s = chapter_settings("ci", "04_training")
    assert not s.retrain
    assert s.weights("mnist", "natural") == zoo.zoo_root() / zoo.REFERENCE["mnist-natural"].key / "model.safetensors"
    calls = []
    monkeypatch.setattr("attrbound_lite.book.profiles.get_model", lambda recipe, root, **kw: calls.append(
        (recipe, root)) or ("model", {}))
    monkeypatch.setenv(BOOK_OUT_ENV, str(tmp_path))
    monkeypatch.setenv(RETRAIN_ENV, "1")
    assert s.retrain and s.model("mnist", "aat", eps=0.2) == "model"
    assert calls == [(zoo.REFERENCE["mnist-study-aat-eps0.2"], tmp_path / "models" / "ci")]

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

def _results(pgd_natural: int, pgd_at: int, n: int = 1000) -> pd.DataFrame:
    from attrbound_lite.stats import wilson

    rows = []
    for ds in ("mnist", "cifar10-subset"):
        for method, hits, clean in (("natural", pgd_natural, 0.99), ("pgd_at", pgd_at, 0.97), ("aat", 0, 0.98)):
            rows.append(dict(dataset=ds, method=method, clean_accuracy=clean - (ds != "mnist") / 2,
                             pgd_eps=0.3 if ds == "mnist" else 8 / 255, pgd_accuracy=hits / n,
                             pgd_interval=wilson(hits, n), minutes=30.0))
    return pd.DataFrame(rows)


def test_chapter4_compares_pgd_accuracy_by_the_interval_of_the_difference():
    from attrbound_lite.stats import rate_difference

    v = training.accuracy_values(_results(0, 700))
    assert v["ch4_n_models"] == 6 and v["ch4_train_hours"] == pytest.approx(3.0)
    assert (v["ch4_min_clean_natural"], v["ch4_min_clean_robust"]) == pytest.approx((0.49, 0.47))
    assert v["ch4_pgd_sentence"].startswith(
        "on MNIST at 0.3, 0.700 (0.671 to 0.728) for PGD-AT against 0.00 (0.00 to 0.00383)")
    assert f"(higher, difference {rate_difference(700, 1000, 0, 1000)})" in v["ch4_pgd_sentence"]
    assert "CIFAR-10 subset at 8/255" in v["ch4_pgd_sentence"]
    assert v["ch4_test_pgd_mnist"]["above"] == "higher" and v["ch4_test_pgd_mnist"]["p"] < 1e-100
    assert "(lower, " in training.accuracy_values(_results(700, 0))["ch4_pgd_sentence"]
    close = training.accuracy_values(_results(500, 520))
    assert "(not distinguishable with 1000 images" in close["ch4_pgd_sentence"]
    assert close["ch4_test_pgd_mnist"]["p"] == pytest.approx(0.3943, abs=0.01)  # Fisher, 500 vs 520 of 1,000


# ---------------------------------------------------------------------------------------------- chapter 5

def _bounds(images: int = 16) -> pd.DataFrame:
    """A table shaped like ``compute_bounds``' output: natural, and three methods whose relative bound is half (AdvAAT),
    the same up to symmetric noise (PGD-AT) and twice (AAT) natural's; MNIST gets the row-sum form, CIFAR does not."""
    frames = []
    a_norm = 1.0 + np.arange(images)
    sigma = 2.0 * (1 + 0.1 * np.sin(np.arange(images)))
    noise = np.exp(0.3 * np.where(np.arange(images) % 2 == 0, 1.0, -1.0))
    factors = {"natural": 1.0, "pgd_at": noise, "aat": 2.0 * noise ** 0.1, "advaat": 0.5 * noise ** 0.1}
    for ds, n in (("mnist", 784), ("cifar10-subset", 3072)):
        for method, factor in factors.items():
            s_m = sigma * factor
            rows = [dict(model=method, sample=i, attribution="saliency", norm=norm, eps=eps, sigma_max=s_m[i],
                         attribution_norm=a_norm[i], bound_converged=True,
                         bound_euclidean=eps * s_m[i] * (np.sqrt(n) if norm == "linf" else 1.0))
                    for norm, eps_values in (("l2", (0.1, 1.0)), ("linf", (0.01, 0.1, 10.0))) for eps in eps_values
                    for i in range(images)]
            # the row sums: half (even images) or twice (odd) sqrt(n) sigma_max on MNIST; not computed on CIFAR
            rowsum = (np.sqrt(n) * s_m * np.where(np.arange(images) % 2 == 0, 0.5, 2.0) if ds == "mnist"
                      else np.full(images, np.nan))
            frames.append(bound_tables._tighten_linf(pd.DataFrame(rows), rowsum, ds == "mnist").assign(
                dataset=ds, method=method))
    return pd.concat(frames, ignore_index=True)


def test_chapter5_linf_rows_take_the_smaller_form_and_the_cosine_bound_follows():
    bounds = _bounds()
    linf = bounds[bounds["norm"] == "linf"]
    mnist, cifar = linf[linf["dataset"] == "mnist"], linf[linf["dataset"] == "cifar10-subset"]
    assert np.allclose(mnist["bound_euclidean"], np.minimum(mnist["bound_spectral"], mnist["bound_abs_rowsum"]))
    assert set(mnist.loc[mnist["sample"] % 2 == 0, "linf_form"]) == {"abs_rowsum"}
    assert set(mnist.loc[mnist["sample"] % 2 == 1, "linf_form"]) == {"sqrt_n"}
    assert set(cifar["linf_form"]) == {"sqrt_n"} and cifar["bound_abs_rowsum"].isna().all()
    assert np.allclose(cifar["bound_euclidean"], cifar["bound_spectral"])
    assert bounds.loc[bounds["norm"] == "l2", "linf_form"].isna().all()
    r, a = bounds["bound_euclidean"].to_numpy(), bounds["attribution_norm"].to_numpy()
    assert np.allclose(bounds["relative"], r / a)
    assert np.allclose(bounds["bound_cosine"], np.where(r < a, np.sqrt(np.clip(1 - (r / a) ** 2, 0, 1)), -1.0))


def test_chapter5_overview_and_relative_values():
    bounds = _bounds()
    assert bound_tables.overview_values(bounds) == {"ch5_n_rows": f"{2 * 4 * 16 * 5:,}", "ch5_n_models": 8,
                                                    "ch5_n_images": 16, "ch5_converged": 1.0}
    v = bound_tables.relative_values(bounds, [0.1, 1.0], [0.01, 0.1, 10.0])
    assert v["ch5_sqrt_n"] == "28, 55"       # from the sigma_max form, whichever form the row uses
    assert (v["ch5_eps_l2_max"], v["ch5_eps_linf_max"], v["ch5_eps_linf_min"]) == ("1", "10", "0.01")
    largest = bounds[((bounds["norm"] == "l2") & (bounds["eps"] == 1.0))]
    assert v["ch5_vacuous_l2"] == pytest.approx(float((largest["bound_cosine"] <= -1).mean()))
    mid = bound_tables.cosine_rows(bounds, "mnist", 1.0, 0.1)
    assert set(zip(mid["norm"], mid["eps"], strict=True)) == {("l2", 1.0), ("linf", 0.1)}
    assert set(mid["dataset"]) == {"mnist"}


def test_chapter5_linf_forms_report_the_median_ratio_where_computed():
    bounds = _bounds()
    probe = {"natural": 1}   # CIFAR: the row sum timed on one image of the first model only (not stored here)
    costs = pd.DataFrame([dict(dataset=ds, method=m, attribution="saliency", images=16, dense_used=ds == "mnist",
                               dense_images=16 if ds == "mnist" else probe.get(m, 0), lanczos_s=0.1,
                               dense_s=0.4 if ds == "mnist" or m == "natural" else np.nan)
                          for ds in ("mnist", "cifar10-subset") for m in ("natural", "pgd_at", "aat", "advaat")])
    forms = bound_tables.linf_forms(bounds, costs).set_index("dataset")
    assert forms.loc["mnist", "form"].startswith("min(") and forms.loc["cifar10-subset", "form"] == "√n σmax"
    assert forms.loc["mnist", "abs_smaller"] == 0.5 and forms.loc["mnist", "n"] == 784
    assert forms.loc["mnist", "median_ratio"].startswith("1.25 (")      # the median of {0.5, 2}: their midpoint
    assert forms.loc["cifar10-subset", "median_ratio"] == "-" and forms.loc["cifar10-subset", "probe"]
    assert forms.loc["cifar10-subset", "dense_s"] == 0.4                 # the probe's cost, on one model
    assert bound_tables.linf_values(forms.reset_index().iloc[1:])["ch5_linf_forms"].startswith("√n σmax in every row")
    v = bound_tables.linf_values(forms.reset_index())
    assert v["ch5_linf_ratio_cifar10_subset"] == "not computed"
    assert v["ch5_linf_forms"] == "the minimum for MNIST (saliency); √n σmax alone for CIFAR-10 subset (saliency)"
    assert v["ch5_linf_sentence"].startswith("on MNIST (n = 784) the rows use the minimum: the median ratio is 1.25")
    assert ("on CIFAR-10 subset (n = 3072) the rows use √n σmax: measured on 1 image of one model, the dense Jacobian "
            "cost 0.400 s per image against 0.100 s for σmax (4 times as much), about 0.43 more minutes for all 16 "
            "images of the 4 models") in v["ch5_linf_sentence"]


def test_chapter5_methods_are_compared_with_paired_intervals_and_verdicts():
    bounds = _bounds()
    comparison = bound_tables.compare_methods(bounds, {"mnist": ("linf", 10.0), "cifar10-subset": ("l2", 0.1)})
    c = comparison.set_index(["dataset", "method"])
    assert list(comparison["method"].unique()) == ["pgd_at", "aat", "advaat"]
    assert c.loc[("cifar10-subset", "advaat"), "ratio_estimate"] == pytest.approx(0.5, abs=0.02)
    assert c.loc[("cifar10-subset", "advaat"), "relative"] == "smaller"
    assert c.loc[("cifar10-subset", "aat"), "relative"] == "larger"
    assert c.loc[("cifar10-subset", "pgd_at"), "relative"] == "not distinguishable with 16 images"
    assert c.loc[("cifar10-subset", "pgd_at"), "ratio_low"] < 1 < c.loc[("cifar10-subset", "pgd_at"), "ratio_high"]
    # the relative-bound ratio does not depend on eps (both are linear in it)
    other = bound_tables.compare_methods(bounds, {"cifar10-subset": ("l2", 1.0)}).set_index("method")
    assert other.loc["advaat", "ratio"] == c.loc[("cifar10-subset", "advaat"), "ratio"]
    # at l-infinity 10 on MNIST r >= ||A(x)|| for every image: no cosine bound to compare
    assert c.loc[("mnist", "advaat"), "cosine"] == "vacuous for both"
    v = bound_tables.comparison_values(comparison, "ch5_rel")
    assert v["ch5_rel_cifar10_subset_advaat_verdict"] == "smaller"
    assert v["ch5_rel_cifar10_subset_advaat"] == c.loc[("cifar10-subset", "advaat"), "ratio"]
    assert v["ch5_rel_mnist_eps"] == "ℓ∞ ε = 10" and v["ch5_rel_mnist_images"] == 16
    assert v["ch5_rel_cifar10_subset_summary"] == ("not distinguishable with 16 images for PGD-AT; larger for AAT; "
                                                   "smaller for AdvAAT")
    assert c.loc[("mnist", "advaat"), "row_sum_share"] == 0.5       # MNIST rows take the minimum: half use row sums
    assert v["ch5_rel_form_note"].startswith("the rows compared use min(")
    cifar = bound_tables.compare_methods(bounds, {"cifar10-subset": ("linf", 0.1)})
    assert bound_tables.comparison_values(cifar, "x")["x_form_note"].startswith("every ℓ∞ row compared uses √n σmax")


def test_chapter5_cosine_correlation_reads_its_sign_only_off_the_interval():
    bounds = _bounds()
    mid = bound_tables.cosine_rows(bounds, "cifar10-subset", 0.1, 0.01)
    v = bound_tables.cosine_values(mid, "cifar10-subset")
    assert v["ch5_cosine_corr_verdict"] == "positive"      # a larger map is harder to turn at a similar r
    assert v["ch5_first_dataset"] == "CIFAR-10 subset" and v["ch5_cosine_eps"] == "0.1"
    flat = mid.assign(attribution_norm=1.0 + (mid["sample"] * 7919) % 13, bound_cosine=0.5 + 0.1 * (mid["sample"] % 2))
    assert bound_tables.cosine_values(flat, "cifar10-subset")["ch5_cosine_corr_verdict"].startswith(
        "not distinguishable")


def test_chapter5_compute_bounds_uses_the_dense_form_where_asked(monkeypatch):
    from types import SimpleNamespace

    import torch
    from conftest import small_cnn, synthetic_images

    from attrbound_lite.bounds import attribution_bound

    x, y = synthetic_images(5, seed=1)
    monkeypatch.setattr(bound_tables, "load_dataset", lambda *a, **k: SimpleNamespace(tensors=lambda: (x, y)))
    models = {m: small_cnn(seed=k, dtype=torch.float32) for k, m in enumerate(("natural", "advaat"))}
    s = SimpleNamespace(datasets=["toy"], n_samples=4, seed=3, device="cpu", model=lambda ds, m: models[m])
    attributions = ["saliency", "input_x_gradient", {"name": "integrated_gradients", "n_steps": 2}]
    bounds, tests, costs = bound_tables.compute_bounds(
        s, ["natural", "advaat"], {"l2": [0.1], "linf": [0.01]}, attributions, 1e-4, max_dense_n=64,
        dense_attributions=["saliency", "integrated_gradients"], dense_images=None, dense_probe=1)
    assert len(bounds) == 2 * 3 * 2 * 4 and set(tests) == {"toy"}
    linf = bounds[bounds["norm"] == "linf"].set_index(["method", "attribution", "sample"]).sort_index()
    direct = attribution_bound(models["advaat"], x[:4], 0.01, "linf", "saliency", max_dense_n=64, seed=0)
    assert np.allclose(linf.loc[("advaat", "saliency"), "bound_abs_rowsum"], direct.linf_abs_rowsum.numpy(),
                       rtol=1e-4)
    assert np.allclose(linf.loc[("advaat", "saliency"), "bound_euclidean"], direct.euclidean.numpy(), rtol=1e-3)
    assert linf.loc[("advaat", "input_x_gradient"), "bound_abs_rowsum"].isna().all()   # not asked for
    c = costs.set_index(["method", "attribution"])
    assert bool(c.loc[("advaat", "saliency"), "dense_used"]) and c["dense_images"].max() == 4
    assert c.loc[("advaat", "input_x_gradient"), "dense_images"] == 0
    # n = 64 > max_dense_n = 32: the row sum is only timed, on one image of the first model, and not used
    probed = bound_tables.compute_bounds(s, ["natural", "advaat"], {"l2": [0.1], "linf": [0.01]}, ["saliency"], 1e-4,
                                         max_dense_n=32, dense_attributions=["saliency"], dense_probe=1)
    c = probed[2].set_index("method")
    assert (c.loc["natural", "dense_images"], c.loc["advaat", "dense_images"]) == (1, 0)
    assert c.loc["natural", "dense_s"] > 0 and not c["dense_used"].any()
    assert probed[0].loc[probed[0]["norm"] == "linf", "linf_form"].eq("sqrt_n").all()
    # on a subset of the images the row sums are kept for the gain, but the rows keep sqrt(n) sigma_max
    subset, _, subset_costs = bound_tables.compute_bounds(
        s, ["natural"], {"l2": [0.1], "linf": [0.01]}, ["saliency"], 1e-4, max_dense_n=64,
        dense_attributions=["saliency"], dense_images=2)
    sub = subset[subset["norm"] == "linf"].sort_values("sample")
    assert sub["bound_abs_rowsum"].notna().tolist() == [True, True, False, False]
    assert sub["linf_form"].eq("sqrt_n").all() and np.allclose(sub["bound_euclidean"], sub["bound_spectral"])
    assert not subset_costs["dense_used"].any()
    table = bound_tables.model_table(bounds, costs)
    assert list(table["images"]) == [4, 4] and (table["lanczos_s"] > 0).all()
    error = bound_tables.scaling_check(models["natural"], x[:4], bounds.assign(dataset="toy"), "toy", "natural",
                                       [("l2", 0.1), ("linf", 0.01)], 1e-4, 3)
    assert error < 1e-5


# ---------------------------------------------------------------------------------------------- chapter 6

def _sweep_rows(ratio, *, datasets=("a", "b"), models=("natural", "advaat"), n=40, radii=(0.01, 0.1, 1.0),
                attacks=("pgd", "ifia"), norm="l2", attribution="saliency", seed=0) -> pd.DataFrame:
    """A sweep-like table: ``ratio(dataset, model, sample, eps, attack, rng)`` gives achieved / bound; a row violates
    (Euclidean) above 1.01; ||A(x)|| is 1 for natural and 0.5 for advaat, the bound 0.2 eps / ||A||."""
    rng = np.random.default_rng(seed)
    rows = []
    for ds in datasets:
        for model in models:
            a_norm = 1.0 if model == "natural" else 0.5
            for sample in range(n):
                for eps in radii:
                    for attack in attacks:
                        r = ratio(ds, model, sample, eps, attack, rng)
                        bound = 0.2 * eps
                        rows.append(dict(dataset=ds, model=model, sample=sample, attribution=attribution, norm=norm,
                                         eps=eps, attack=attack, restart=0, label_kept=True, sigma_max=0.2,
                                         attribution_norm=a_norm, bound_euclidean=bound,
                                         bound_euclidean_lower=bound, bound_cosine=0.5,
                                         achieved_euclidean=r * bound, achieved_cosine=0.9, ratio_euclidean=r,
                                         ratio_cosine=0.2, exceeded_euclidean=r > 1.01, exceeded_cosine=False,
                                         exceeded=r > 1.01, exceeded_model_dtype=r > 1.01, bound_seconds=0.01,
                                         attack_seconds=0.02))
    return pd.DataFrame(rows)


def _grows(ds, model, sample, eps, attack, rng):
    """0.5 at small radii, up to 1.5 at eps = 1 for some images; PGD above IFIA."""
    base = 0.5 + (sample % 4 == 0) * eps + 0.01 * rng.standard_normal()
    return base + (0.1 if attack == "pgd" else 0.0)


def test_chapter6_unit_table_keeps_the_best_attack_per_image_model_and_data_set():
    table = _sweep_rows(_grows)
    table.loc[(table["attack"] == "ifia") & (table["sample"] == 1), "label_kept"] = False
    units = validation.unit_table(table)
    assert len(units) == 2 * 2 * 40 * 3  # data sets x models x images x radii: one row each
    one = units[(units["dataset"] == "a") & (units["model"] == "advaat") & (units["sample"] == 0)
                & (units["eps"] == 1.0)].iloc[0]
    rows = table[(table["dataset"] == "a") & (table["model"] == "advaat") & (table["sample"] == 0)
                 & (table["eps"] == 1.0)]
    assert one["ratio_euclidean"] == pytest.approx(rows["ratio_euclidean"].max())
    assert one["ratio_pgd"] == pytest.approx(rows.loc[rows["attack"] == "pgd", "ratio_euclidean"].iloc[0])
    assert one["relative_bound"] == pytest.approx(0.2 / 0.5) and bool(one["exceeded"])
    assert one["relative_achieved"] == pytest.approx(rows["achieved_euclidean"].max() / 0.5)
    assert (units.loc[units["sample"] == 1, "n_kept"] == 1).all()  # IFIA lost the label there
    assert units.loc[units["sample"] == 1, "ratio_ifia"].isna().all()


def test_chapter6_rates_count_units_with_wilson_intervals_and_say_where_violations_begin():
    from attrbound_lite.stats import wilson

    table = pd.concat([_sweep_rows(_grows), _sweep_rows(lambda *a: 0.5, norm="linf", radii=(0.001, 0.3))])
    rates = validation.rates_by_eps(table)
    l2 = rates[rates["norm"] == "l2"].set_index("eps")
    assert list(l2["images"]) == [160, 160, 160]  # 2 data sets x 2 models x 40 images, not 40 sample indices
    assert list(l2["violating"]) == [0, 0, 40]  # every fourth image, at eps = 1 only
    assert str(l2.loc[1.0, "rate"]) == str(wilson(40, 160))
    values = validation.rate_values(rates)
    assert values["ch6_l2_smallest"] == (f"in ℓ2 the violation rate at the smallest radius, ε = 0.01, is "
                                         f"{wilson(0, 160)}")
    assert values["ch6_l2_onset"] == (f"in ℓ2 violations begin at ε = 1, where the rate is {wilson(40, 160)}; the rate "
                                      "is above 0.05 with 95 % confidence from ε = 1")
    assert values["ch6_linf_onset"] == "in ℓ∞ no image violated a bound at any radius up to ε = 0.3"
    assert values["ch6_l2_largest"] == f"{wilson(40, 160)} at ε = 1"
    always = validation.rate_values(validation.rates_by_eps(_sweep_rows(lambda *a: 1.5, radii=(0.01, 0.1))))
    assert always["ch6_l2_onset"] == (f"in ℓ2 violations occur already at the smallest radius, ε = 0.01, where the "
                                      f"rate is {wilson(160, 160)}; the rate is above 0.05 with 95 % confidence from "
                                      "ε = 0.01")


def test_chapter6_counts_the_violations_that_survive_float64():
    table = _sweep_rows(lambda ds, model, sample, eps, attack, rng: 1.5 if sample < 10 else 0.5, radii=(0.1,))
    # float64 keeps samples 0-5 of data set "a"'s violations, and every one of "b"'s
    lost = (table["dataset"] == "a") & table["sample"].between(6, 9)
    table.loc[lost, ["exceeded", "exceeded_euclidean"]] = False
    values = validation.float64_values(table)
    # 2 data sets x 2 models x 10 images counted (each case: both attacks), 4 x 10 - 2 x 4 survive
    assert (values["ch6_float64_counted"], values["ch6_float64_survive"]) == ("40", "32")
    assert values["ch6_float64"].endswith("(64 of 80 attacks)")
    assert validation.rates_by_eps(table)["violating"].tolist() == [32]  # the rates count the confirmed ones


def test_chapter6_ratio_verdicts_come_from_paired_intervals():
    from attrbound_lite.stats import paired_difference

    units = validation.unit_table(_sweep_rows(_grows))
    frame, values = validation.ratio_values(units)
    assert list(frame["images"]) == [160, 160, 160]
    assert frame.iloc[0]["median"].low <= frame.iloc[0]["median"].estimate <= frame.iloc[0]["median"].high
    wide = units.pivot_table(index=["dataset", "model", "sample"], columns="eps", values="ratio_euclidean")
    change = paired_difference(wide[1.0], wide[0.01])
    assert values["ch6_l2_ratio_change"] == (f"from ε = 0.01 to ε = 1 the ratio changes by {change} on average over "
                                             "the same images: it grows")
    flat = validation.ratio_values(validation.unit_table(_sweep_rows(lambda *a: 0.5 + 0.01 * a[-1].standard_normal(),
                                                                     radii=(0.01, 0.02))))[1]
    assert flat["ch6_l2_ratio_first"].endswith("not distinguishable with 160 images")


def test_chapter6_compares_models_attacks_and_attributions_on_the_same_images():
    def ratio(ds, model, sample, eps, attack, rng):
        """AdvAAT's maps move half as much relative to their size on data set a, as much on b; PGD gets 1.2 x IFIA."""
        noise = np.random.default_rng([sample, model == "advaat"]).standard_normal()  # one per image and model
        relative = (0.05 if (model, ds) == ("advaat", "a") else 0.1 + (ds == "b") * 0.04 * noise) \
            + (ds == "a") * 0.002 * noise  # images differ a little on a too: units that all agree support no test
        return relative * (0.5 if model == "advaat" else 1.0) / 0.2 * (1.2 if attack == "pgd" else 1.0)

    table = _sweep_rows(ratio, radii=(1.0,))
    table = pd.concat([table, _sweep_rows(ratio, radii=(1.0,), models=("natural",), attribution="integrated_gradients",
                                          seed=1).assign(ratio_euclidean=lambda t: t["ratio_euclidean"] * 2)])
    # AdvAAT's attacked maps stay closer in direction on a (cosine 0.95 against 0.9), as close on b
    noise = np.random.default_rng(5).standard_normal(len(table))
    table["achieved_cosine"] = 0.9 + 0.05 * ((table["model"] == "advaat") & (table["dataset"] == "a")) + 0.01 * noise
    units = validation.unit_table(table)
    radii = {("a", "l2"): 1.0, ("b", "l2"): 1.0}
    comparisons = validation.model_comparisons(units, radii)
    assert [i.sign for i in comparisons["relative_achieved_difference"]] == [-1, 0]
    assert [i.sign for i in comparisons["cosine_difference"]] == [1, 0]
    cos = units[(units.attribution == "saliency") & (units.dataset == "a")].pivot_table(
        index="sample", columns="model", values="achieved_cosine")
    assert comparisons["cosine_difference"].iloc[0].estimate == pytest.approx((cos["advaat"] - cos["natural"]).mean())
    tests = validation.comparison_tests(comparisons)
    assert tests["ch6_test_cosine_a_l2_advaat"]["above"] == "turns less" and tests["ch6_radius_a_l2"] == "ℓ2 ε = 1"
    # the bound moves the other way on a (made up: AdvAAT's bound 3x natural's), the same way on b
    opposite = comparisons.assign(log10_relative_bound_difference=[Interval(0.5, 0.4, 0.6, 40),
                                                                    Interval(0.5, -0.1, 0.6, 40)])
    said = validation.disagreement_values(opposite)["ch6_disagree"]
    cosine = comparisons["cosine_difference"].iloc[0]
    assert said == ("they disagree, each interval on its own side of zero, for 1 model: AdvAAT on a: the attacks "
                    f"leave a higher cosine, {cosine} at ℓ2 ε = 1, while its relative bound is larger, by 0.500 "
                    "(0.400 to 0.600) in log10 at ℓ2")  # one radius: nothing to say about the others
    short = validation.disagreement_values(opposite)["ch6_disagree_short"]
    assert short == "the relative bound points the other way for AdvAAT on a"
    assert validation.disagreement_values(comparisons.iloc[1:])["ch6_disagree"].startswith("on no model")
    assert len(validation.comparison_figure(comparisons).axes) == 3
    # two norms with the same bound intervals: the bound is drawn once, the second row's panel says why
    both = pd.concat([comparisons, comparisons.assign(norm="linf")], ignore_index=True)
    fig = validation.comparison_figure(both)
    assert len(fig.axes) == 6 and not fig.axes[5].axison and "the same as above" in fig.axes[5].texts[0].get_text()
    assert validation.bound_once_values(both)["ch6_bound_once"].endswith("so the figure draws it once")
    opposite_both = pd.concat([opposite, opposite.assign(norm="linf", eps=0.3)], ignore_index=True)
    assert validation.disagreement_values(opposite_both)["ch6_disagree"].endswith(
        "at ℓ2 ε = 1 and " + f"{cosine} at ℓ∞ ε = 0.3, while its relative bound is larger by 0.500 (0.400 to 0.600) in "
        "log10, the same at every radius")
    other = both.copy()
    other.loc[2, "log10_relative_bound_difference"] = Interval(0.1, 0.0, 0.2, 40)
    assert validation.comparison_figure(other).axes[5].axison  # the bound differs between the norms: drawn twice
    assert validation.bound_once_values(other)["ch6_bound_once"].endswith("the figure draws it per norm")
    frame, values = validation.attack_values(units, radii)
    pgd = frame[frame["comparison"] == "PGD - IFIA"]
    assert list(pgd["verdict"]) == ["PGD closer to the bound"] * 2
    ifia = units.loc[(units["dataset"] == "a") & (units["attribution"] == "saliency"), "ratio_ifia"]
    assert pgd.iloc[0]["difference"].estimate == pytest.approx(0.2 * ifia.mean())
    assert values["ch6_ig_vs_saliency"].count("IG closer to its bound") == 2


def test_chapter6_dense_values_state_the_tightening_and_its_cost():
    dense = pd.DataFrame(dict(dataset=["mnist"] * 4, n=784, sqrt_n=1.0, abs_rowsum=[0.5, 0.8, 1.2, 0.9],
                              factor=[0.5, 0.8, 1.0, 0.9], seconds_sqrt_n=0.1, seconds_rowsum=1.1))
    frame, values = validation.dense_values(dense, {"mnist": 320}, budget_seconds=360, max_dense_n=0)
    assert frame.iloc[0]["sweep_extra_seconds"] == pytest.approx(320.0)
    assert str(frame.iloc[0]["rowsum_smaller"]).startswith("0.750")
    assert values["ch6_dense_cost"] == "MNIST 1.10 s instead of 0.100 s per image, 5.33 extra minutes for this " \
                                       "chapter's sweep"
    assert values["ch6_dense_total"] == "5.33 extra minutes in all, against a budget of 6.00 minutes for the whole " \
                                        "chapter"
    assert values["ch6_dense_decision"].startswith("this build's sweep keeps ε √n σ_max")
    assert validation.linf_form(784, ["mnist", "cifar10-subset"]) == (
        "this build's sweep forms the row sums where n ≤ 784 (n = 784) and keeps ε √n σ_max elsewhere; where the "
        "minimum is smaller, its ℓ∞ ratios are lower than they would be against the tighter bound by that factor, and "
        "an attack that came within it of the bound would violate the tighter one")
    assert validation.linf_form(784, ["mnist"], committed=True).startswith(
        "the chapter's ℓ∞ saliency sweep, computed once and committed, forms the row sums on every image")
    assert validation.linf_form(4096, ["mnist", "cifar10-subset"]).endswith("ε min(√n σ_max, ‖|J| 1‖₂)")


def test_chapter6_linf_gap_compares_the_bound_with_its_sign_iteration_lower_estimate():
    table = _sweep_rows(lambda *a: 0.3, norm="linf", radii=(0.001, 0.01))
    table["bound_euclidean_lower"] = 0.5 * table["bound_euclidean"]
    values = validation.linf_gap_values(validation.unit_table(table))
    assert values["ch6_linf_lower"].startswith("0.500 (0.500 to 0.500) at ε = 0.001")
    assert values["ch6_linf_attack_vs_lower"].startswith("0.600")


def test_chapter6_reference_radii_are_rars_where_the_grid_has_them():
    radii = validation.reference_radii(["mnist", "cifar10-subset"], [0.1, 1.0, 3.0], [0.01, 8 / 255, 0.1])
    assert radii == {("mnist", "l2"): 1.0, ("cifar10-subset", "linf"): 8 / 255, ("cifar10-subset", "l2"): 1.0}
    assert validation.reference_radii(["mnist"], [0.1, 0.3, 3.0], [0.3])[("mnist", "l2")] == 0.3


def test_chapter6_sweeps_get_one_folder_per_config(tmp_path):
    from attrbound_lite.checkpoints import save_checkpoint
    from attrbound_lite.models import model_for_dataset
    from attrbound_lite.sweep import load_config

    ckpt = save_checkpoint(model_for_dataset("mnist", width=0.125), tmp_path / "natural" / "model.safetensors")
    kwargs = dict(n_samples=16, eps_l2=[0.1], eps_linf=[0.01], attributions=["saliency"], restarts=1, steps=20,
                  max_dense_n=784, shard_size=16, seed=0)
    config = validation.sweep_config("mnist", {"natural": ckpt}, **kwargs)
    assert config["models"] == [{"name": "natural", "checkpoint": str(ckpt)}]
    filled = load_config(config)  # the attacks' defaults come from AttackSpec, filled in by the sweep
    assert [a["relative_alpha"] for a in filled["attacks"]] == [0.25, 0.125]
    assert filled["attacks"][1]["k"] == 78  # 10 % of MNIST's 784 pixels
    assert filled["bound"]["max_dense_n"] == 784
    folder = validation.sweep_folder(tmp_path, "mnist", config, "cpu")
    assert folder.parent == tmp_path and folder.name.startswith("mnist-") and len(folder.name) == len("mnist-") + 12
    again = validation.sweep_config("mnist", {"natural": ckpt}, **kwargs)
    assert validation.sweep_folder(tmp_path, "mnist", again, "cpu") == folder
    for change in ({"steps": 21}, {"max_dense_n": 0}):
        other = validation.sweep_config("mnist", {"natural": ckpt}, **{**kwargs, **change})
        assert validation.sweep_folder(tmp_path, "mnist", other, "cpu") != folder
    assert validation.sweep_folder(tmp_path, "mnist", config, "cuda") != folder


# ---------------------------------------------------------------------------------------------- chapter 7

# Chapter 7's helpers are tested in tests/test_far_chapter.py.


# ---------------------------------------------------------------------------------------------- chapter 8

def _glue_names(stem: str) -> set[str]:
    import re

    nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return set(re.findall(r"\{glue:text\}`([A-Za-z0-9_]+)", text))


def test_chapter10_values_cover_its_prose():
    results = speed.load_results(RESULTS)
    values = speed.chapter_values(results)
    assert _glue_names("11_speed") <= set(values), sorted(_glue_names("11_speed") - set(values))
    for name, value in values.items():  # plain Python values: the prose shows their text
        assert type(value) in (int, float, str), (name, type(value))
    assert speed.target_line(results["bounds"]) == (0.25, "target (b): 1/4")
    checks = results["bounds"]["checks"]  # one verdict per stored target, FAILED exactly where it failed
    assert re.fullmatch(r"\(a\) \w+, \(b\) \w+, \(c\) \w+, \(d\) \w+", values["ch10_checks"])
    assert values["ch10_checks"].count("FAILED") == sum(not v["pass"] for v in checks.values())
    assert values["ch10_region"].startswith("The region bound of chapter 8")


def test_chapter10_refuses_a_missing_result_naming_its_make_target(tmp_path):
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
    assert speed.training_values(training_json)["ch10_eval_vs_train"] == "shorter than its training for every method"
    training_json["results"][0]["eval_seconds"] = training_json["results"][0]["train_seconds"] * 2
    first = training_json["results"][0]["method"]
    assert speed.training_values(training_json)["ch10_eval_vs_train"] == (
        f"longer than its training for 1 of the {len(training_json['results'])} methods ({first})")


# ---------------------------------------------------------------------------------------------- chapter 12

def test_chapter9_seeds_and_execution_times(tmp_path):
    seeds = pd.DataFrame({"seed": ["2", "0", "(none)", "unreadable: OSError"]}, index=["a", "b", "c", "d"])
    assert reproducibility.seed_values(seeds) == {"ch11_seeded": 3, "ch11_notebooks": 4,
                                                  "ch11_seed_note": "not 0 in a (2)"}
    assert reproducibility.seed_values(seeds.iloc[1:])["ch11_seed_note"] == "every one of them defaults to 0"
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
    assert list(times["parameters"]) == ["defaults", "defaults"]  # no "{}" on the page
    shown = tables.readable(times)
    assert list(shown["this build"]) == ["no", "yes"]  # a reader's words for booleans
    named = tables.readable(pd.DataFrame({"attribution": ["integrated_gradients(m=16)", "input_x_gradient"],
                                          "eps": [8 / 255, 0.1]}))
    assert named.to_dict("list") == {"attribution": ["integrated gradients (m = 16)", "input × gradient"],
                                     "ε": ["8/255", "0.1"]}
    assert reproducibility.times_note(times, times_file) == (
        "the 1 chapter executed before this one in this build took 2.0 s in all; 1 page was executed by an earlier "
        "build into the same output folder and reused (grey); this chapter's own time is recorded when it finishes")
    assert reproducibility.times_note(times.iloc[:0], times_file).startswith(
        "no chapter was executed before this one in this build")


def test_profiles_module_names_every_public_helper():
    for module in (profiles, bound_tables, far, reproducibility, speed, training, validation):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_speed_reports_the_region_bound_cost_when_measured():
    rows = pd.DataFrame({"model": ["mnist", "cifar"], "family": "saliency", "region_over_point": [2.5, 3.0],
                         "region_over_ifia": [0.5, 0.25]})
    assert speed._region_cost(rows).endswith("mnist: 2.5 first-order bounds, 0.50 of a 100-step IFIA; cifar: 3.0 "
                                             "first-order bounds, 0.25 of a 100-step IFIA.")
    assert "predate" in speed._region_cost(rows.drop(columns=["region_over_point", "region_over_ifia"]))


def _gpu_row(model, attribution, attack, compile_mode, rate, **extra):
    """A row of sweep_gpu-*.json; 13 GFLOP per attack."""
    measured = {} if rate is None else dict(tflops=rate * 13e-3, peak_fraction=rate * 13e-3 / 67, max_memory_gb=4.5,
                                            hours_for_10M=1e7 / rate / 3600)
    return {**dict(model=model, n=784 if model == "mnist_cnn" else 3072, attribution=attribution, attack=attack,
                   compile=compile_mode, steps=100, instances=6144, chunk=6144, attacks_per_second=rate, error=None,
                   skipped=None), **measured, **extra}


def _gpu_results(tmp_path, rows, **fields):
    """benchmarks/results' CPU files plus a synthetic sweep_gpu JSON (as benchmarks/sweep.py --gpu-section writes)."""
    for name in ("bounds.json", "training.json", "sweep.json"):
        (tmp_path / name).write_text((RESULTS / name).read_text())
    payload = {**dict(rows=rows, device="cuda", device_name="NVIDIA H200", device_slug="nvidia-h200", mode="full",
                      fp32_peak_tflops=67.0, targets={"mnist_saliency_pgd": 1400.0, "mnist_saliency_pgd_aim": 2800.0,
                                                      "ig_over_saliency": 0.1},
                      targets_apply=True, date="2026-12-02T10:00:00+00:00", torch_version="2.11.0", cpu_model="Xeon",
                      cpu_count=16), **fields}
    (tmp_path / "sweep_gpu-nvidia-h200.json").write_text(json.dumps(payload))
    return speed.load_results(tmp_path)


def test_chapter10_draws_the_gpu_results_when_a_gpu_file_exists(tmp_path):
    from attrbound_lite.book import speed_figures

    rows = [_gpu_row("mnist_cnn", "saliency", "pgd", "off", 2000.0),
            _gpu_row("mnist_cnn", "saliency", "pgd", "default", 3000.0),
            _gpu_row("mnist_cnn", "saliency", "pgd", "reduce-overhead", None, error="RuntimeError: graph break"),
            _gpu_row("mnist_cnn", "integrated_gradients(m=16)", "pgd", "off", 250.0),
            _gpu_row("cifar_cnn", "saliency", "ifia", "off", 900.0),
            _gpu_row("cifar_cnn", "integrated_gradients(m=16)", "ifia", "off", 60.0),
            _gpu_row("cifar_cnn", "saliency", "ifia", "default", None, skipped="time budget (150 s) spent")]
    results = _gpu_results(tmp_path, rows, compile_gain={"mnist_cnn saliency pgd default": 1.5})
    smoke = dict(rows=rows, mode="tiny", device="cpu", device_slug="cpu")  # a --tiny run: left out, and said so
    (tmp_path / "sweep_gpu-cpu.json").write_text(json.dumps(smoke))
    results = speed.load_results(tmp_path)
    assert [p["file"] for p in results["gpu"]["sweep_gpu"]] == ["sweep_gpu-nvidia-h200.json"]
    assert results["gpu"]["smoke"] == ["sweep_gpu-cpu.json"]
    values = speed.chapter_values(results)
    status = values["ch10_gpu_status"]
    assert status.startswith("On NVIDIA H200 (2026-12-02, torch 2.11.0, sweep_gpu-nvidia-h200.json), 100-step "
                             "saliency attribution PGD on the full-width MNIST CNN ran at 3,000 attacks per second "
                             "(compile: default), above the aim of 2,800; 10 million such attacks would take 0.9 hours")
    # IG / saliency per (model, attack), best compile mode: 250 / 3000 (below 1/10) and 60 / 900 (below)
    assert "ran at 0.07 to 0.08 times the saliency rate of the same model and attack (0 of 2 pairs" in status
    assert "of the 67 TFLOP/s FP32 peak" in status and "no row used more than 4.5 GiB" in status
    assert "factor of 1.50 to 1.50 over 1 compiled rows" in status
    assert "1 of 7 rows failed" in status and "1 of 7 rows were not run" in status
    assert "do not apply" not in status
    assert values["ch10_gpu_caption"].startswith("GPU throughput of 100-step attribution attacks")
    assert "sweep_gpu-nvidia-h200.json" in speed.machines_table(results).index
    table = speed_gpu.gpu_table(results["gpu"])
    assert len(table) == 7 and set(table["device"]) == {"NVIDIA H200"}
    fig = speed_figures.gpu_throughput_figure(table, target=1400)
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    # a slower device misses the target; verdicts come from the rows, not from stored checks
    slow = _gpu_results(tmp_path, [_gpu_row("mnist_cnn", "saliency", "pgd", "off", 1000.0)], targets_apply=False,
                        checks={"mnist_saliency_pgd_ge_1400": {"passed": True, "value": 1e9, "target": 1400}})
    status = speed_gpu.gpu_values(slow["gpu"])["ch10_gpu_status"]
    assert "ran at 1,000 attacks per second (compile: off), below the target of 1,400" in status
    assert status.endswith("The targets are set for an H100-class GPU at full size; they do not apply to this run.")


def test_chapter10_says_from_the_files_when_no_gpu_result_exists(tmp_path):
    from attrbound_lite.book import speed_figures

    for name in ("bounds.json", "training.json", "sweep.json"):
        (tmp_path / name).write_text((RESULTS / name).read_text())
    results = speed.load_results(tmp_path)
    values = speed.chapter_values(results)
    assert values["ch10_gpu_status"] == (
        "No GPU figures have been measured yet: the results folder holds no sweep_gpu-*.json measured on a GPU "
        "(benchmarks/gpu.sh writes it on a CUDA machine), so every throughput in this chapter is a CPU one.")
    assert values["ch10_gpu_training"].startswith("The training benchmark has not been run on a GPU yet")
    assert values["ch10_gpu_paper"].startswith("The paper-scale sweep (configs/sweep-paper-*.yaml, 1,920,000 "
                                               "attacks) has not been run on a GPU yet")
    assert speed_gpu.gpu_table(results["gpu"]).empty
    fig = speed_figures.gpu_throughput_figure(speed_gpu.gpu_table(results["gpu"]), empty=values["ch10_gpu_status"])
    assert fig.axes[0].texts[0].get_text() == values["ch10_gpu_status"]
    assert list(speed.machines_table(results).index) == ["bounds.json", "training.json", "sweep.json"]


def test_chapter10_gpu_training_paper_sweep_and_compile_sentences(tmp_path):
    (tmp_path / "training_gpu-nvidia-h200.json").write_text(json.dumps(dict(
        device="cuda", device_name="NVIDIA H200", date="2026-12-02T10:05:00", quick=False,
        results=[{"method": "natural", "train_seconds": 2.0}, {"method": "advaat", "train_seconds": 30.0}])))
    (tmp_path / "sweep_paper-nvidia-h200.json").write_text(json.dumps(dict(
        mode="full", device_slug="nvidia-h200", date="2026-12-02T10:09:00", attacks_run=192_000,
        attacks_planned=1_920_000, sweeps={
            "mnist": dict(ran=True, complete=False, stopped_by_cap=True, attacks_run=134_400, attacks_planned=960_000,
                          attacks_per_second_between_shards=880.4),
            "fashion-mnist": dict(ran=True, complete=False, stopped_by_cap=True, attacks_run=57_600,
                                  attacks_planned=960_000, attacks_per_second_between_shards=None,
                                  attacks_per_second_wall=401.0)})))
    gpu = speed_gpu.load_gpu_results(tmp_path)
    values = speed_gpu.gpu_values(gpu)
    assert values["ch10_gpu_training"] == ("On NVIDIA H200 (2026-12-02, training_gpu-nvidia-h200.json), the training "
                                           "benchmark (full size) trained the 2 methods in 32 s in all, from 2.0 s "
                                           "(natural) to 30.0 s (advaat).")
    # the GPU section's file (benchmarks/training.py --device cuda): seconds per epoch per method and batch size
    (tmp_path / "training_gpu-nvidia-h200.json").write_text(json.dumps(dict(
        benchmark="training_gpu", mode="full", device="cuda", device_name="NVIDIA H200", date="2026-12-03T09:00:00",
        target_seconds=15.0, targets_apply=True, n_train=60000, rows=[
            dict(method="natural", batch_size=1024, epoch_seconds=1.5, extrapolated=False),
            dict(method="advaat", batch_size=1024, epoch_seconds=22.0, extrapolated=True),
            dict(method="aat", batch_size=1024, epoch_seconds=None, error="OutOfMemoryError: ...")])))
    assert speed_gpu.gpu_values(speed_gpu.load_gpu_results(tmp_path))["ch10_gpu_training"] == (
        "On NVIDIA H200 (2026-12-03, training_gpu-nvidia-h200.json), training on all 60,000 MNIST training images: at "
        "batch 1024, one epoch took 1.5 s (natural) to 22.0 s (AdvAAT); 1 of 3 methods under the target of 15 s (1 "
        "extrapolated from a probe of a few batches).")
    assert values["ch10_gpu_paper"] == (
        "The paper-scale sweep ran 192,000 of its 1,920,000 attacks on nvidia-h200 (2026-12-02, "
        "sweep_paper-nvidia-h200.json): mnist: 134,400 of 960,000 attacks (stopped by its time cap, 880 attacks per "
        "second); fashion-mnist: 57,600 of 960,000 attacks (stopped by its time cap, 401 attacks per second). A "
        "stopped sweep resumes where it stopped (benchmarks/gpu.sh prints the command).")
    assert values["ch10_gpu_status"].startswith("No GPU figures have been measured yet")
    # the CPU sweep's compiled rows against the eager 1 process x 2 threads row
    sweep = {"rows": [dict(attack="pgd", layout="1 process x 2 threads", device="cpu", compile="off", cache=None,
                           attacks_per_second=100.0),
                      dict(attack="pgd", layout="1 process x 2 threads, compiled (cold cache)", device="cpu",
                           compile="default", cache="cold", attacks_per_second=50.0, error=None),
                      dict(attack="pgd", layout="1 process x 2 threads, compiled (warm cache)", device="cpu",
                           compile="default", cache="warm", attacks_per_second=None, error="RuntimeError: boom")]}
    assert speed.compile_values(sweep)["ch10_compile_verdict"] == (
        "At CI size, with the compilation counted in the sweep's time, compiled sweeps ran at 0.50 (PGD) times the "
        "eager rate with a cold cache; PGD with a warm cache failed (RuntimeError: boom).")
    assert "predate" in speed.compile_values({"rows": [sweep["rows"][0]]})["ch10_compile_verdict"]
    # the steady-state step ratios say where compiling can pay
    steady = {**sweep, "step_ratio": [dict(attack="pgd", compiled_over_eager=0.5, compile_seconds=12.0),
                                      dict(attack="ifia", compiled_over_eager=1.1, compile_seconds=9.0)]}
    assert speed.compile_values(steady)["ch10_compile_verdict"].endswith(
        "Once compiled, one step cost 0.50 (PGD) and 1.10 (IFIA) times an eager one (the first call, compilation "
        "included: 12 s and 9 s): compiling can pay for a sweep of PGD long enough to amortise the compilation, not "
        "for IFIA.")
    # the batched layout against one attack batch per radius, in the same run
    layout = {"rows": [dict(attack="pgd", layout="1 process x 2 threads", compile="off", attacks_per_second=130.0),
                       dict(attack="pgd", layout="1 process x 2 threads, per-radius batches", compile="off",
                            attacks_per_second=100.0)],
              "cpu_target": {"pgd": {"batched_over_per_radius": 1.3}}, "target_cpu_ratio": 1.3,
              "same_table_batched_and_per_radius": True}
    assert speed.layout_values(layout)["ch10_layout_gain"] == (
        "In the same run (one process, two threads), holding every radius in one attack batch ran PGD at 130 attacks "
        "per second against 100 with one batch per radius (1.30 times, faster). That reaches the goal of 1.3 times. "
        "The two layouts' PGD tables are bit-identical.")
    layout["cpu_target"]["pgd"]["batched_over_per_radius"] = 1.0
    layout["same_table_batched_and_per_radius"] = False
    assert "falls short of the goal of 1.3 times" in speed.layout_values(layout)["ch10_layout_gain"]
    assert "tables differ" in speed.layout_values(layout)["ch10_layout_gain"]
    assert "predate" in speed.layout_values({"rows": []})["ch10_layout_gain"]


def test_every_method_keeps_its_colour_across_figures():
    """One palette (style.METHOD_COLORS): the training-cost bars and the cosine-bound scatter colour a method alike,
    and no two methods share a colour or the bounds' colour."""
    import matplotlib.colors as mcolors

    from attrbound_lite.book import speed_figures, style

    colors = [mcolors.to_hex(c) for c in style.METHOD_COLORS.values()]
    assert len(set(colors)) == len(colors) == 5
    assert mcolors.to_hex(style.COLORS["bound"]) not in colors  # the bounds' vermillion, too near PGD-AT's orange
    table = pd.DataFrame({"method": ["natural", "aat", "advaat"], "train_seconds": [1.0, 5.0, 9.0],
                          "bound_l2_euclidean_mean": [3.0, 2.0, 1.0]})
    fig = speed_figures.training_cost_figure(table)
    bars = [mcolors.to_hex(p.get_facecolor()) for p in fig.axes[0].patches]
    assert bars == [mcolors.to_hex(style.METHOD_COLORS[m]) for m in table["method"]]
    rng = np.random.default_rng(0)
    scatter = pd.DataFrame({"method": np.repeat(["advaat", "natural"], 20), "norm": "l2",
                            "attribution_norm": rng.uniform(1, 2, 40), "bound_cosine": rng.uniform(0, 1, 40),
                            "bound_euclidean": 0.5, "eps": 0.1})
    fig = bound_tables.cosine_bound_figure(scatter)
    found = {mcolors.to_hex(f) for c in fig.axes[0].collections for f in c.get_facecolors()}
    assert found == {mcolors.to_hex(style.METHOD_COLORS[m]) for m in ("advaat", "natural")}
