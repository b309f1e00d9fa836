"""Heavy results (attrbound_lite.results): build, resume, refuse what was altered, verify by recomputing rows; the
committed results reproduce on a sample of rows drawn from the commit; chapter 7's attack-budget grid (book.budget)
against direct IFIA runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import small_cnn, synthetic_images

from attrbound_lite import results
from attrbound_lite.attacks import IFIA
from attrbound_lite.attributions import get_explainer
from attrbound_lite.book import budget
from attrbound_lite.results import ResultSpec


def _toy_spec(calls: list | None = None, offset: float = 0.0, fail_on: str | None = None, scale: int = 2):
    """Rows ``value = scale * i + offset`` for i in 0..3 of units a, b, c; ``calls`` records computed units."""
    def rows(unit, index):
        return pd.DataFrame({"unit_name": unit, "i": index, "value": scale * np.asarray(index, float) + offset})

    def compute(unit, device, progress):
        if unit == fail_on:
            raise KeyboardInterrupt  # an interrupted build
        if calls is not None:
            calls.append(unit)
        return rows(unit, np.arange(4))

    def recompute(part, device):
        return rows(part["unit"].iloc[0], part["i"].to_numpy())

    return ResultSpec(name="toy", title="a toy", config={"scale": scale}, keys=("unit_name", "i"),
                      values=("value",), tolerance=1e-9, units=("a", "b", "c"), compute=compute, recompute=recompute,
                      modules=("attrbound_lite.results",))


def test_build_writes_rows_and_provenance_and_resumes(tmp_path):
    calls = []
    with pytest.raises(KeyboardInterrupt):
        results.build_results(_toy_spec(calls, fail_on="b"), root=tmp_path, device="cpu", progress=False)
    assert calls == ["a"] and not (tmp_path / "toy" / "rows.csv").exists()
    results.build_results(_toy_spec(calls), root=tmp_path, device="cpu", progress=False)
    assert calls == ["a", "b", "c"]  # a was not computed again
    rows = results.load_results(_toy_spec(), root=tmp_path)
    assert len(rows) == 12 and rows["value"].tolist() == [0, 2, 4, 6] * 3
    manifest = rows.attrs["manifest"]
    assert manifest["config_hash"] == results.config_hash({"scale": 2}) and manifest["n_rows"] == 12
    assert set(manifest["seconds"]["per_unit"]) == {"a", "b", "c"}
    assert {"torch", "python", "attrbound_lite"} <= set(manifest["versions"])
    assert manifest["hardware"]["device"] == "cpu"
    assert manifest["command"].startswith("attrbound results build --only toy --root")


def test_missing_altered_or_reconfigured_results_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="attrbound results build --only toy"):
        results.load_results(_toy_spec(), root=tmp_path)
    results.build_results(_toy_spec(), root=tmp_path, device="cpu", progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        results.load_results(_toy_spec(scale=3), root=tmp_path)
    path = tmp_path / "toy" / "rows.csv"
    path.write_text(path.read_text() + "a,a,9,18.5\n")  # a row added by hand
    with pytest.raises(ValueError, match="altered"):
        results.load_results(_toy_spec(), root=tmp_path)


def test_verify_recomputes_a_sample_and_names_a_value_the_code_no_longer_gives(tmp_path):
    results.build_results(_toy_spec(offset=0.5), root=tmp_path, device="cpu", progress=False)
    # committed numbers that the code no longer computes (offset 0.5 against 0): every recomputed value differs
    report = results.verify_results(_toy_spec(), n=8, seed=3, root=tmp_path, device="cpu")
    assert len(report) == 8 and not report["ok"].any()
    assert np.allclose(report["difference"], -0.5)
    with pytest.raises(AssertionError, match="8 of 8 recomputed values"):
        results.check_verified(_toy_spec(), report)
    report = results.verify_results(_toy_spec(offset=0.5), n=20, seed=3, root=tmp_path, device="cpu")
    assert len(report) == 12 and report["ok"].all()  # all rows when fewer than n
    other = results.verify_results(_toy_spec(offset=0.5), n=4, seed=4, root=tmp_path, device="cpu")
    first = results.verify_results(_toy_spec(offset=0.5), n=4, seed=3, root=tmp_path, device="cpu")
    assert first.equals(results.verify_results(_toy_spec(offset=0.5), n=4, seed=3, root=tmp_path, device="cpu"))
    assert not first[["unit", "i"]].equals(other[["unit", "i"]])  # the seed draws the sample


def test_extras_are_kept_but_not_verified_and_digits_round_the_floats(tmp_path):
    """Columns named ``extras`` are written and read back but never compared; ``digits`` sets the floats' precision."""
    base = _toy_spec(offset=1 / 3)

    def with_noise(spec, noise):
        def compute(unit, device, progress):
            rows = spec.compute(unit, device, progress)
            return rows.assign(seconds=noise, third=rows["i"] / 3)

        def recompute(part, device):  # a timing differs on every run; a float key must match in full
            rows = spec.recompute(part, device)
            return rows.assign(seconds=noise + 1.0, third=rows["i"] / 3)

        return ResultSpec(**{**base.__dict__, "compute": compute, "recompute": recompute, "extras": ("seconds",),
                             "keys": ("unit_name", "i", "third"), "digits": 9,
                             "tolerance": 1e-7})  # 9 digits of values up to 7: within 1e-8

    spec = with_noise(base, 0.25)
    results.build_results(spec, root=tmp_path, device="cpu", progress=False)
    rows = results.load_results(spec, root=tmp_path)
    assert list(rows.columns) == ["unit", "unit_name", "i", "third", "value", "seconds"]
    assert (rows["seconds"] == 0.25).all() and (rows["third"] == rows["i"] / 3).all()  # keys in full
    assert rows["value"].iloc[0] == float("%.9g" % (1 / 3)) != 1 / 3  # values with 9 significant digits
    assert rows.attrs["manifest"]["extras"] == ["seconds"]
    report = results.verify_results(spec, n=4, seed=0, root=tmp_path, device="cpu")
    assert set(report["value"]) == {"value"} and report["ok"].all() and len(report) == 4  # extras not compared
    for bad, message in ((dict(extras=("value",)), "distinct"), (dict(extras="seconds"), "tuple"),
                         (dict(digits=0), "digits"), (dict(digits=True), "digits"), (dict(extras=("unit",)), "unit")):
        with pytest.raises((ValueError, TypeError), match=message):
            ResultSpec(**{**base.__dict__, **bad})


def test_manifest_of_another_result_is_refused(tmp_path):
    results.build_results(_toy_spec(), root=tmp_path, device="cpu", progress=False)
    path = tmp_path / "toy" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "name": "other"}))
    with pytest.raises(ValueError, match="not the manifest of 'toy'"):
        results.read_manifest(_toy_spec(), root=tmp_path)
    path.write_text("{")
    with pytest.raises(ValueError, match="not a readable manifest"):
        results.read_manifest(_toy_spec(), root=tmp_path)


# Chapter 7's attack-budget grid
def _toy_attack_setting():
    model = small_cnn(seed=2, dtype=torch.float32)
    x, y = synthetic_images(6, seed=4)
    y = model(x).argmax(1)  # attacks keep the model's own labels
    settings = {"eps": 0.1, "ifia_alpha": 0.02, "ifia_steps": 5, "ifia_k": 8, "eval_k": 8}
    return model, x, y, settings


def test_nested_starts_do_not_depend_on_the_batch_or_the_restarts():
    model, x, y, _ = _toy_attack_setting()
    attack = IFIA(model, "saliency", eps=0.1, alpha=0.02, steps=2, k=8, restarts=3)
    starts = budget.nested_starts(attack, x, 3, seed=1).view(3, len(x), *x.shape[1:])
    assert torch.equal(starts[0], x)
    assert ((starts[1:] - x).abs() <= 0.1 + 1e-7).all() and not torch.equal(starts[1], starts[2])
    alone = budget.nested_starts(attack, x[2:3], 5, seed=1)
    assert torch.equal(alone[:3], starts[:, 2])
    assert not torch.equal(budget.nested_starts(attack, x, 2, seed=2)[len(x):], starts[1])


@pytest.mark.parametrize("restarts", [1, 2, 3])
def test_best_of_the_first_restarts_equals_a_run_with_that_many(restarts):
    """Where the evaluated map is the steering map (same IG, same k), the nested grid's top-k intersection is that
    of an IFIA run with exactly ``restarts`` restarts from the same starts (its best iterate over restarts)."""
    model, x, y, settings = _toy_attack_setting()
    grid = budget.ifia_budget(model, x, y, settings, [3, 5], [1, 2, 3], eval_ig_steps=4, steering_ig_steps=4, seed=1)
    for steps in (3, 5):
        steering = get_explainer("integrated_gradients", model, n_steps=4)
        attack = IFIA(model, steering, eps=0.1, alpha=0.1 / steps, steps=steps, k=8, restarts=restarts, seed=1)
        direct = attack(x, y, start=budget.nested_starts(attack, x, restarts, seed=1))
        expected = direct.topk_intersection.masked_fill(~direct.label_kept, 1.0).double().numpy()
        got = grid[(grid["steps"] == steps) & (grid["restarts"] == restarts)].sort_values("image")
        assert np.allclose(got["topk_intersection"], expected)
        assert (got["label_kept"].to_numpy() == direct.label_kept.numpy()).all()


def test_budget_grid_is_batch_invariant():
    model, x, y, settings = _toy_attack_setting()
    whole = budget.ifia_budget(model, x, y, settings, [4], [1, 3], eval_ig_steps=6, steering_ig_steps=4, seed=0)
    alone = budget.ifia_budget(model, x[3:4], y[3:4], settings, [4], [1, 3], eval_ig_steps=6, steering_ig_steps=4,
                               seed=0)
    pd.testing.assert_frame_equal(whole[whole["image"] == 3].drop(columns="image").reset_index(drop=True),
                                  alone.drop(columns="image").reset_index(drop=True))


# The committed results, on every CI run
def test_committed_results_match_the_code_and_reproduce_a_sample(data_root):
    """The manifest matches the current configuration and rows; 8 rows drawn with the commit's seed recompute."""
    rows = results.load_results(budget.SPEC)
    manifest = rows.attrs["manifest"]
    assert len(rows) == manifest["n_rows"] == len(budget.SPEC.units) * budget.N_IMAGES * len(budget.STEPS) * \
        len(budget.RESTARTS)
    assert set(rows["unit"]) == set(budget.SPEC.units)
    report = results.verify_results(budget.SPEC, n=8, seed=results.sample_seed(), device="cpu")
    results.check_verified(budget.SPEC, report)


def test_the_command_line_lists_and_refuses_an_unknown_result(tmp_path, capsys):
    from attrbound_lite.cli import main

    assert main(["results", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ch6_attack_budget: ")
    assert f"attrbound results build --only ch7_ifia_budget --root {tmp_path}" in out
    assert main(["results", "verify", "--only", "ch7_nothing"]) == 2
    said = capsys.readouterr().err
    assert "no such result; the results are ch6_attack_budget, ch6_linf_sweep, ch7_ifia_budget" in said


def test_budget_grid_kendall_is_the_metric_of_the_chosen_restart():
    """``kendall=True`` adds Kendall's tau of the clean and the chosen map: scipy's tau-b as the oracle."""
    import scipy.stats

    from attrbound_lite import metrics

    model, x, y, settings = _toy_attack_setting()
    grid = budget.ifia_budget(model, x, y, settings, [4], [2], eval_ig_steps=6, steering_ig_steps=4, seed=0,
                              kendall=True)
    plain = budget.ifia_budget(model, x, y, settings, [4], [2], eval_ig_steps=6, steering_ig_steps=4, seed=0)
    pd.testing.assert_frame_equal(grid.drop(columns="kendall_tau"), plain)  # the other columns do not change
    steering = get_explainer("integrated_gradients", model, n_steps=4)
    attack = IFIA(model, steering, eps=settings["eps"], alpha=settings["ifia_alpha"] * 5 / 4, steps=4,
                  k=settings["ifia_k"], kind="topk", restarts=2, seed=0, per_restart=True)
    result = attack(x, y, start=budget.nested_starts(attack, x, 2, seed=0))
    evaluated = get_explainer("integrated_gradients", model, n_steps=6)
    clean = metrics.saliency_map(evaluated.attribute(x, target=y)).flatten(1)
    moved = metrics.saliency_map(evaluated.attribute(result.x_adv, target=y.repeat(2))).flatten(1).view(2, len(y), -1)
    best = result.score.view(2, len(y)).nan_to_num(float("-inf")).argmax(0)
    for i, tau in enumerate(grid.sort_values("image")["kendall_tau"]):
        if not grid["label_kept"].iloc[i]:
            assert tau == 1.0
            continue
        want = scipy.stats.kendalltau(clean[i].detach().numpy(), moved[best[i], i].detach().numpy()).statistic
        assert tau == pytest.approx(want, abs=1e-6)


def test_rar_attack_does_not_depend_on_the_chunk(monkeypatch):
    from attrbound_lite.book import headline

    model, x, y, settings = _toy_attack_setting()
    full = {**headline.attack_settings("mnist", k="eval"), **settings, "restarts": 2}  # RAR's, at the toy's scale
    monkeypatch.setattr(headline, "attack_settings", lambda ds, **kw: full)
    monkeypatch.setattr(headline, "rar_budget", lambda ds: (4, 2))
    monkeypatch.setattr(headline, "EVAL_IG_STEPS", 6)
    whole = headline.rar_attack(model, x, y, "mnist", chunk=6)
    parts = headline.rar_attack(model, x, y, "mnist", chunk=4)
    pd.testing.assert_frame_equal(whole, parts)
    assert list(whole.columns) == ["image", "topk_intersection", "label_kept", "kendall_tau",
                                   "noise_topk_intersection", "noise_kendall_tau", "noise_label_kept"]
    assert (whole["image"] == np.arange(len(y))).all()


def test_committed_rar_attack_reproduces_and_agrees_with_the_budget_grid(data_root):
    """Chapter 7's IFIA at RAR's budget: complete, on one image set per data set, 8 rows drawn with the commit's seed
    recompute, and on the images it shares with the budget grid its seed-0 values are the grid's at RAR's budget
    (the same attack, computed independently in another result)."""
    from attrbound_lite.book import headline

    rows = headline.load()
    assert set(rows["unit"]) == set(headline.SPEC.units) and len(rows) == rows.attrs["manifest"]["n_rows"]
    for ds, frame in rows.groupby("dataset"):
        assert frame.groupby("unit")["image"].apply(frozenset).nunique() == 1  # every run on the same images
        # the first N_IMAGES every trained run classifies correctly; the CIFAR-10 subset's 1,000 test images hold fewer
        assert frame["image"].nunique() == (headline.N_IMAGES if ds != "cifar10-subset" else 183)
    grid = budget.load()
    shared = 0
    for unit, frame in rows[rows["seed"] == 0].groupby("unit"):
        steps, restarts = headline.rar_budget(frame["dataset"].iloc[0])
        cell = grid[(grid["unit"] == unit) & (grid["steps"] == steps) & (grid["restarts"] == restarts)]
        both = frame.merge(cell, on="image", suffixes=("", "_grid"))
        shared += len(both)
        assert (both["topk_intersection"] - both["topk_intersection_grid"]).abs().max() <= headline.TOLERANCE, unit
    assert shared >= 8 * 15
    report = results.verify_results(headline.SPEC, n=8, seed=results.sample_seed(), device="cpu")
    results.check_verified(headline.SPEC, report)


def test_a_difference_equal_to_the_tolerance_is_within_it():
    """Top-k intersections are hundredths: 0.35 recomputed against 0.32 committed differs by 0.03 up to rounding
    (0.0300000012 in float32, as the values are stored), which the tolerance 0.03 allows; 0.04 does not pass."""
    assert results.within_tolerance(0.35 - 0.32, 0.03) and results.within_tolerance(-(0.35 - 0.32), 0.03)
    f32 = np.float32(0.35) - np.float32(0.32)  # the stored values' precision: 0.0300000012
    assert f32 > 0.03 and results.within_tolerance(float(f32), 0.03)
    assert not results.within_tolerance(0.36 - 0.32, 0.03) and not results.within_tolerance(0.0301, 0.03)
