"""Chapter 6's attack-budget grid (``book.deviation_budget``): what it reports is what the attacks reached."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import small_cnn, synthetic_images

from attrbound_lite import results
from attrbound_lite.attacks import IFIA, AttributionPGD
from attrbound_lite.attributions import get_explainer
from attrbound_lite.book import budget, deviation_budget
from attrbound_lite.stats import Interval


@pytest.mark.parametrize("attack", ["pgd", "ifia"])
def test_the_grid_reports_the_deviation_each_restart_reached_on_the_model(attack):
    """Oracle: the attack run directly from the same starts, the maps at its points recomputed, the label checked."""
    model = small_cnn(seed=2, dtype=torch.float32)
    x, _ = synthetic_images(5, seed=4)
    eps, steps = 0.1, 3
    grid = deviation_budget.deviation_budget(model, x, attack, "linf", eps, [steps], [1, 2], seed=1)
    y = model(x).argmax(1)
    explainer = get_explainer("saliency", model)
    alpha = {"pgd": 0.25, "ifia": 0.125}[attack] * eps * deviation_budget.CHAPTER_STEPS / steps
    if attack == "pgd":
        direct = AttributionPGD(model, explainer, eps=eps, alpha=alpha, steps=steps, norm="linf", restarts=2, seed=1,
                                per_restart=True)
    else:
        direct = IFIA(model, explainer, eps=eps, alpha=alpha, steps=steps, norm="linf", k=round(0.1 * 64),
                      kind="topk", restarts=2, seed=1, per_restart=True)
    result = direct(x, y, start=budget.nested_starts(direct, x, 2, 1, clean_first=attack == "ifia"))
    assert (result.x_adv - x.repeat(2, 1, 1, 1)).abs().max() <= eps + 1e-6
    clean = explainer.attribute(x, target=y).detach().flatten(1)
    moved = explainer.attribute(result.x_adv, target=y.repeat(2)).detach().flatten(1).view(2, len(x), -1)
    kept = (model(result.x_adv).argmax(1) == y.repeat(2)).view(2, len(x))
    relative = (moved - clean).norm(dim=2) / clean.norm(dim=1)
    cosine = F.cosine_similarity(moved, clean.expand_as(moved), dim=2)
    for r in (1, 2):
        rows = grid[grid["restarts"] == r].sort_values("image")
        want_dev = relative[:r].masked_fill(~kept[:r], 0.0).max(0).values  # a failed restart leaves x: deviation 0
        want_cos = cosine[:r].masked_fill(~kept[:r], 1.0).min(0).values
        assert np.allclose(rows["relative_deviation"], want_dev.numpy(), atol=1e-5)
        assert np.allclose(rows["cosine"], want_cos.numpy(), atol=1e-5)
        assert (rows["label_kept"].to_numpy() == kept[:r].any(0).numpy()).all()
    # more restarts never do worse: the best of the first r of one run of 2
    one, two = (grid[grid["restarts"] == r].sort_values("image") for r in (1, 2))
    assert (two["relative_deviation"].to_numpy() >= one["relative_deviation"].to_numpy()).all()
    for bad, what in (([0], "steps"), ([3, 3], "steps"), (3, "steps"), ("10", "steps"), ([True], "steps")):
        with pytest.raises(ValueError, match=what):
            deviation_budget.deviation_budget(model, x, attack, "linf", eps, bad, [1], seed=1)
    for bad in ([], [1.5], [-1]):
        with pytest.raises(ValueError, match="restarts"):
            deviation_budget.deviation_budget(model, x, attack, "linf", eps, [steps], bad, seed=1)


def test_a_grid_cell_does_not_depend_on_the_batch_or_the_restarts_asked_for():
    model = small_cnn(seed=2, dtype=torch.float32)
    x, _ = synthetic_images(5, seed=4)
    whole = deviation_budget.deviation_budget(model, x, "pgd", "l2", 0.5, [4], [1, 3], seed=0)
    alone = deviation_budget.deviation_budget(model, x[2:4], "pgd", "l2", 0.5, [4], [1], seed=0)
    first = whole[(whole["restarts"] == 1) & whole["image"].isin([2, 3])].reset_index(drop=True)
    assert np.allclose(first["relative_deviation"], alone["relative_deviation"], atol=1e-6)


def _grid(n: int = 20, per_restart: float = 0.01) -> pd.DataFrame:
    """A fake committed grid: one model, PGD in l-inf; more steps and restarts reach more, 10 x 1 about 10 % short."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.5, n)
    rows = [pd.DataFrame({"dataset": "mnist", "method": "natural", "attack": "pgd", "norm": "linf", "eps": 0.3,
                          "image": np.arange(n), "steps": s, "restarts": r,
                          "relative_deviation": base * (1 - 0.1 * 10 / s) * (1 + per_restart * r)
                          + rng.normal(0, 0.005, n),
                          "cosine": 0.5, "label_kept": True, "unit": "mnist-natural"})
            for s in budget.STEPS for r in budget.RESTARTS]
    return pd.concat(rows, ignore_index=True)


def test_the_chapters_budget_is_read_against_the_best_of_the_grid():
    rows = _grid()
    table = deviation_budget.budget_table(rows, (10, 1))
    row = table.iloc[0]
    assert row["chapter_gap"].sign > 0 and row["chapter_gap"].estimate == pytest.approx(
        (rows.pivot(index="image", columns=["steps", "restarts"], values="relative_deviation").max(axis=1)
         - rows[(rows["steps"] == 10) & (rows["restarts"] == 1)].set_index("image")["relative_deviation"]).mean())
    assert row["more_steps"] == pytest.approx(0.0555, abs=0.01)  # 10 -> 20 steps: 0.9 -> 0.95 of the base
    manifest = {"config": {"n_images": 20, "steps": list(budget.STEPS), "restarts": list(budget.RESTARTS)},
                "seconds": {"total": 3600.0}, "hardware": {"cpu_count": 2, "processor": "a CPU"}}
    values = deviation_budget.budget_values(rows, table, manifest, (10, 1))
    assert values["ch6_budget_chapter"].startswith("with the chapter's budget (10 steps and 1 restart) the mean "
                                                   "relative deviation falls short of the best of the grid on all 1")
    assert values["ch6_budget_converged"] == ("doubling the steps, or raising the restarts to 5, moves the mean by "
                                              "less than 2% in none of 1 cases")
    assert values["ch6_budget_cost"] == "1.0 hours on 2 cores of a CPU"
    assert values["ch6_budget_answer"] == ("No: in all 1 (model, attack, norm) cases, doubling the steps or raising "
                                           "the restarts to 5 still moves the mean relative deviation by 2% or more")
    assert values["ch6_budget_caveat"].startswith("from attacks that fall short of stronger budgets (chapter 6)")
    assert values["ch6_budget_cosine"].startswith("the lowest cosine the chapter's budget reaches lies above the "
                                                  "grid's best in none of 1 cases")  # the fake grid's cosine is flat
    restarts = _grid(per_restart=0.2)  # 5 restarts reach (1 + 5 * 0.2) / 1.2 - 1 = 67 % more than one
    said = deviation_budget.budget_values(restarts, deviation_budget.budget_table(restarts, (10, 1)), manifest,
                                          (10, 1))["ch6_budget_converged"]
    assert said.endswith("; more restarts matter more (on average 66.7% for 5 restarts against 5.5% for twice the "
                         "steps)")
    text = deviation_budget.budget_text_table(table)
    assert list(text["attack"]) == ["PGD"] and text["change with 2× steps"].iloc[0].startswith("+")
    summary = deviation_budget.summary(rows)
    assert isinstance(summary["relative_deviation"].iloc[0], Interval) and len(summary) == 15
    assert len(deviation_budget.budget_figure(summary).axes) == 1
    marked = deviation_budget.budget_figure(summary, chapter=(10, 1)).axes[0]
    circle = [ln for ln in marked.lines if ln.get_linestyle() == "None"]  # the chapter's own budget, an open circle
    assert len(circle) == 1 and circle[0].get_xdata()[0] == 10 and circle[0].get_ydata()[0] == pytest.approx(
        summary.loc[(summary["steps"] == 10) & (summary["restarts"] == 1), "mean"].iloc[0])
    with pytest.raises(ValueError, match="not one of the grid"):
        deviation_budget.budget_figure(summary, chapter=(15, 1))
    with pytest.raises(ValueError, match=r"\(15 steps, 1 restarts\) is not one of the grid.s"):
        deviation_budget.budget_table(rows, (15, 1))


# The committed grid, on every CI run
def test_committed_grid_is_complete_and_reproduces_a_sample(data_root):
    rows = deviation_budget.load()
    manifest = rows.attrs["manifest"]
    per_unit = 2 * 2 * deviation_budget.N_IMAGES * len(budget.STEPS) * len(budget.RESTARTS)
    assert len(rows) == manifest["n_rows"] == len(deviation_budget.SPEC.units) * per_unit
    assert set(rows["unit"]) == set(deviation_budget.SPEC.units)
    # more restarts of one run never reach less; every deviation is finite and every cosine a cosine
    wide = rows.pivot_table(index=["unit", "attack", "norm", "image", "steps"], columns="restarts",
                            values="relative_deviation")
    assert (wide.diff(axis=1).iloc[:, 1:] >= -1e-12).all().all()
    assert np.isfinite(rows["relative_deviation"]).all() and rows["cosine"].between(-1, 1 + 1e-6).all()
    report = results.verify_results(deviation_budget.SPEC, n=8, seed=results.sample_seed(), device="cpu")
    results.check_verified(deviation_budget.SPEC, report)
