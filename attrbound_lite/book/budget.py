"""Chapter 7's attack-budget evidence: IFIA's top-k intersection against its steps and restarts.

An attack measures robustness only as far as it converged. For every (steps, restarts) of a grid, IFIA in the
chapter's setting (``far_study.attack_settings``: RAR's radius and total step length, steered by IG, the evaluated
top-k) attacks each image, and the evaluated IG map before and after gives the top-k intersection (RAR's statistic: what
the attack leaves of the top-k pixels; lower means a stronger attack).

Restarts are nested: restart ``r`` of an image starts at the same point whatever the batch or the number of restarts
(restart 0 at the clean image, as IFIA does; the others at a point drawn from the image's own random stream,
``runtime.sample_generators``), so the best of the first 1, 3 and 5 restarts comes from one run of 5. The best
restart is the one with the highest attack score (the steering map's top-k intersection, as IFIA selects), ties to
the earlier restart; an image no iterate of which keeps its label counts as not attacked (intersection 1).

The grid on the seed-0 reference models of all three data sets does not fit the CI's time: it is computed once,
committed under ``results/`` and re-verified by CI on a sample of rows (``attrbound_lite.results``).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .. import metrics
from ..attacks import IFIA
from ..attributions import get_explainer
from ..data import load_dataset
from ..protocols import rar_protocol
from ..results import ResultSpec, load_results
from ..runtime import sample_generators
from ..stats import bootstrap, bootstrap_mean, sig
from ..zoo import load_reference, reference_name
from .far_study import ATTACK_IG_STEPS, ATTACK_K, attack_settings, shared_images
from .tables import DATASET_NAMES, METHOD_NAMES, check_keyed_table

__all__ = ["nested_starts", "ifia_budget", "rar_budget", "SPEC", "load", "summary", "check_grid", "budget_table",
           "budget_values", "budget_figure", "budget_text_table"]


def nested_starts(attack, x: torch.Tensor, restarts: int, seed: int, clean_first: bool = True) -> torch.Tensor:
    """An attack's starting points (restarts * B, ...), restart-major, each image's from its own stream.

    Restart 0 starts at the image (``clean_first``, as IFIA does; else at a random point, as attribution PGD, whose
    objective has zero gradient at the image); every other restart ``r`` at a uniformly random point of the attack's
    ball around it, drawn from ``sample_generators(x_i, seed, r, "ifia start")``: the same for an image in any batch
    and for any number of restarts.
    """
    starts = [x.clone()] if clean_first else []
    for r in range(1 if clean_first else 0, restarts):
        generators = sample_generators(x, seed, r, "ifia start")
        starts.append(torch.cat([attack.threat.random_init(xi[None], g) for xi, g in zip(x, generators, strict=True)]))
    return torch.cat(starts)


def ifia_budget(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: dict, steps: Sequence[int],
                restarts: Sequence[int], *, eval_ig_steps: int, steering_ig_steps: int, seed: int = 0,
                kendall: bool = False) -> pd.DataFrame:
    """IFIA's top-k intersection on ``x`` for every (steps, restarts) of the grid, restarts nested.

    Args:
        model: the classifier (smooth: IFIA differentiates its attribution).
        x: (B, C, H, W) images in [0, 1] that ``model`` classifies correctly, on the model's device.
        y: (B,) their labels.
        settings: ``far_study.attack_settings(dataset)`` (``eps``, ``ifia_alpha``, ``ifia_steps``, ``ifia_k``,
            ``eval_k``): the radius, and the total length ``ifia_steps * ifia_alpha`` that every budget keeps.
        steps: the steps of the grid (each a run of its own, step size ``total length / steps``).
        restarts: the restarts of the grid (the best of the first ``r`` of one run of ``max(restarts)``).
        eval_ig_steps: IG points of the evaluated map.
        steering_ig_steps: IG points of the map that steers the attack.
        seed: seed of the random starts.
        kendall: also return Kendall's tau of the evaluated maps before and after.

    Returns:
        One row per (image, steps, restarts): ``image`` (position in ``x``), ``steps``, ``restarts``,
        ``topk_intersection``, ``label_kept`` and, with ``kendall``, ``kendall_tau`` (1 where no iterate kept the
        label, as the intersection).
    """
    evaluated = get_explainer("integrated_gradients", model, n_steps=eval_ig_steps)
    steering = get_explainer("integrated_gradients", model, n_steps=steering_ig_steps)
    length, most, batch = settings["ifia_alpha"] * settings["ifia_steps"], max(restarts), len(y)
    clean = metrics.saliency_map(evaluated.attribute(x, target=y))
    rows = []
    for n in steps:
        attack = IFIA(model, steering, eps=settings["eps"], alpha=length / n, steps=int(n), k=settings["ifia_k"],
                      kind="topk", restarts=most, seed=seed, per_restart=True)
        result = attack(x, y, start=nested_starts(attack, x, most, seed))
        score = result.score.view(most, batch).nan_to_num(float("-inf"))
        moved = metrics.saliency_map(evaluated.attribute(result.x_adv, target=y.repeat(most))).view(most, batch, -1)
        for r in restarts:
            best = score[:r].argmax(0)  # the first of equal scores
            kept = score[:r].max(0).values > float("-inf")
            chosen = moved[best, torch.arange(batch, device=x.device)].view_as(clean)
            topk = metrics.topk_intersection(clean, chosen, settings["eval_k"]).masked_fill(~kept, 1.0)
            row = {"image": np.arange(batch), "steps": int(n), "restarts": int(r),
                   "topk_intersection": topk.detach().cpu().double().numpy(), "label_kept": kept.cpu().numpy()}
            if kendall:
                tau = metrics.kendall_tau(clean, chosen).masked_fill(~kept, 1.0)
                row["kendall_tau"] = tau.detach().cpu().double().numpy()
            rows.append(pd.DataFrame(row))
    return pd.concat(rows, ignore_index=True)


# The committed grid: every seed-0 reference model, the first N_IMAGES test images of each data set that all its
# models classify correctly, RAR's evaluated map (IG of 100 points), the chapter's steering (IG of 4 points).
DATASETS = ("mnist", "fashion-mnist", "cifar10-subset")
METHODS = ("natural", "pgd_at", "ig_norm", "aat", "advaat")
N_IMAGES = 32
STEPS = (10, 20, 50, 100, 200)
RESTARTS = (1, 3, 5)
EVAL_IG_STEPS = 100
SEED = 0
# Top-k intersections are multiples of 1 / k; a recomputation on another CPU may round the last bits differently,
# and IFIA's sign steps can turn that into a different pixel or two of the top 100.
TOLERANCE = 0.03


def _config() -> dict:
    return {"datasets": list(DATASETS), "methods": list(METHODS),
            "models": {ds: [reference_name(ds, m) for m in METHODS] for ds in DATASETS},
            "n_images": N_IMAGES, "steps": list(STEPS), "restarts": list(RESTARTS), "eval_ig_steps": EVAL_IG_STEPS,
            "steering": f"integrated_gradients, {ATTACK_IG_STEPS} points", "seed": SEED,
            "settings": {ds: attack_settings(ds, k=ATTACK_K) for ds in DATASETS}}


def _unit(unit: str) -> tuple[str, str]:
    method = next(m for m in METHODS if unit.endswith(f"-{m}") and unit[: -len(m) - 1] in DATASETS)
    return unit[: -len(method) - 1], method


def _images(ds: str, device) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The first ``N_IMAGES`` test images of ``ds`` that every seed-0 reference model of ``ds`` classifies correctly."""
    models = [load_reference(reference_name(ds, m), device=device)[0] for m in METHODS]
    x, y = load_dataset(ds, "test", subset=None).tensors()
    return shared_images(x, y, models, N_IMAGES, device)


def _run(unit: str, x, y, index, steps, device) -> pd.DataFrame:
    ds, method = _unit(unit)
    model = load_reference(reference_name(ds, method), device=device)[0]
    frame = ifia_budget(model, x.to(device), y.to(device), attack_settings(ds, k=ATTACK_K), steps, RESTARTS,
                        eval_ig_steps=EVAL_IG_STEPS, steering_ig_steps=ATTACK_IG_STEPS, seed=SEED)
    frame["image"] = index[frame["image"].to_numpy()]
    return frame.assign(dataset=ds, method=method)


def _compute(unit: str, device, progress: bool) -> pd.DataFrame:
    ds, _ = _unit(unit)
    x, y, index = _images(ds, device)
    return _run(unit, x, y, index, STEPS, device)


def _recompute(rows: pd.DataFrame, device) -> pd.DataFrame:
    ds, _ = _unit(rows["unit"].iloc[0])
    x, y = load_dataset(ds, "test", subset=None).tensors()
    frames = []
    for steps, part in rows.groupby("steps"):
        index = np.unique(part["image"].to_numpy())
        frames.append(_run(rows["unit"].iloc[0], x[index], y[index], index, [int(steps)], device))
    return pd.concat(frames, ignore_index=True)


SPEC = ResultSpec(
    name="ch7_ifia_budget", title="IFIA's top-k intersection against its steps and restarts (chapter 7)",
    config=_config(), keys=("dataset", "method", "image", "steps", "restarts"),
    values=("topk_intersection", "label_kept"), tolerance=TOLERANCE,
    units=tuple(f"{ds}-{m}" for ds in DATASETS for m in METHODS), compute=_compute, recompute=_recompute,
    modules=("attrbound_lite.book.budget", "attrbound_lite.attacks", "attrbound_lite.attributions",
             "attrbound_lite.metrics", "attrbound_lite.threat_models", "attrbound_lite.models"))


def load(root=None) -> pd.DataFrame:
    """The committed grid (``results.load_results(SPEC)``), checked against its manifest."""
    return load_results(SPEC, root)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """The mean top-k intersection of every (data set, method, steps, restarts), with its bootstrap interval.

    Returns:
        One row per budget and model, in the grid's order: ``dataset``, ``method``, ``steps``, ``restarts`` and
        ``topk_intersection`` (an ``Interval`` over the images).
    """
    out = (rows.groupby(["dataset", "method", "steps", "restarts"], sort=False)["topk_intersection"]
           .agg(bootstrap_mean).rename("topk_intersection").reset_index())
    out["mean"] = out["topk_intersection"].map(lambda i: i.estimate)
    return out


def rar_budget(dataset: str) -> tuple[int, int]:
    """RAR's IFIA steps and restarts on ``dataset`` (``protocols.rar_protocol``): (100, 3), CIFAR-10 (50, 3)."""
    cfg = rar_protocol(dataset, "evaluation")
    return int(cfg["ifia_steps"]), int(cfg["restarts"])


def check_grid(rows, value: str, keys: Sequence[str], budgets: Sequence[tuple[int, int]]) -> None:
    """Refuse a budget grid without the columns ``keys`` and ``value``, with a repeated row, or without ``budgets``.

    Args:
        rows: a grid's rows (``load``).
        value: the statistic's column.
        keys: the columns that identify a row (the budget's ``steps`` and ``restarts`` among them).
        budgets: the (steps, restarts) the caller reads; each must be a budget of the grid.
    """
    check_keyed_table(rows, "the budget grid", keys, (value,), "load() returns one")
    grid = sorted(set(zip(rows["steps"].astype(int), rows["restarts"].astype(int), strict=True)))
    for budget in budgets:
        if tuple(budget) not in grid:
            raise ValueError(f"the budget ({budget[0]} steps, {budget[1]} restarts) is not one of the grid's {grid}; "
                             "read one of them, or extend STEPS / RESTARTS and rebuild the result.")


def _move(means: pd.Series, at: tuple[int, int], to: tuple[int, int]) -> float:
    """The signed relative change of the mean from budget ``at`` to budget ``to``.

    NaN where ``to`` is not in the grid; below zero, the larger budget leaves less of the map (a stronger attack).
    """
    return (means[to] - means[at]) / means[at] if to in means.index else np.nan


def _budget_words(budget: tuple[int, int]) -> str:
    return f"{budget[0]} × {budget[1]}"


def budget_table(rows: pd.DataFrame, chapter: tuple[int, int]) -> pd.DataFrame:
    """Per model: the mean top-k intersection at the chapter's and RAR's budget, against the best of the grid.

    The reference is the best of the whole grid per image: the lowest top-k intersection any budget reached on it
    (an attack that runs every budget and keeps its best result, as an attacker who can score the evaluated map
    would). It is fixed before the grid is run, unlike the budget with the lowest mean, and unlike the largest
    budget it is the strongest attack the grid holds.

    Args:
        rows: the committed grid (``load``).
        chapter: the chapter's (steps, restarts), where ``None`` (or a ``None`` entry) takes RAR's steps (restarts)
            of each data set.

    Returns:
        One row per (data set, method): ``chapter``, ``rar`` and ``best`` (means over the images with their bootstrap
        intervals), ``chapter_gap`` and ``rar_gap`` (that budget minus the best, paired by image: how much more of
        the map it leaves), ``rar_budget``, ``more_steps`` and ``more_restarts`` (the signed relative change of the
        mean at RAR's budget when its steps double, and when its restarts grow to the grid's most), ``steps_effect``
        (mean change from the fewest to the most steps at one restart) and ``restarts_effect`` (from one restart to
        the most, at the chapter's steps).
    """
    chapter = (None, None) if chapter is None else chapter
    check_grid(rows, "topk_intersection", ("dataset", "method", "image", "steps", "restarts"), ())
    out = []
    for (ds, method), frame in rows.groupby(["dataset", "method"], sort=False):
        rar = rar_budget(ds)
        own = (chapter[0] or rar[0], chapter[1] or rar[1])
        check_grid(frame, "topk_intersection", ("image", "steps", "restarts"), (own, rar))
        table = frame.pivot(index="image", columns=["steps", "restarts"], values="topk_intersection")
        means = table.mean()
        steps, restarts = sorted({s for s, _ in table.columns}), sorted({r for _, r in table.columns})
        best = table.min(axis=1).to_numpy(float)

        def gap(budget, table=table, best=best):
            return bootstrap(lambda a, b: np.mean(a - b), table[budget].to_numpy(float), best)

        out.append({"dataset": ds, "method": method, "chapter": bootstrap_mean(table[own]),
                    "rar": bootstrap_mean(table[rar]), "best": bootstrap_mean(best), "chapter_gap": gap(own),
                    "rar_budget": _budget_words(rar), "rar_gap": gap(rar),
                    "more_steps": _move(means, rar, (2 * rar[0], rar[1])),
                    "more_restarts": _move(means, rar, (rar[0], restarts[-1])),
                    "steps_effect": means[(steps[-1], restarts[0])] - means[(steps[0], restarts[0])],
                    "restarts_effect": means[(own[0], restarts[-1])] - means[(own[0], restarts[0])]
                    if (own[0], restarts[-1]) in means.index else np.nan})
    return pd.DataFrame(out)


def _model(row) -> str:
    return f"{DATASET_NAMES.get(row['dataset'], row['dataset'])} {METHOD_NAMES.get(row['method'], row['method'])}"


def _of(k: int, n: int) -> str:
    return f"none of {n}" if k == 0 else f"all {n}" if k == n else f"{k} of {n}"


def budget_values(rows: pd.DataFrame, table: pd.DataFrame, manifest: dict, chapter: tuple[int, int],
                  tolerance: float = 0.02, name: str = "the chapter's budget") -> dict:
    """The chapter's sentences on the attack budget, read off ``budget_table``.

    Every interval is a 95 % bootstrap interval over the images, one per model, not corrected for the number of
    models: these sentences say how far the attack converged, they declare no comparison of the Findings family.

    Args:
        rows: the committed grid (``load``).
        table: ``budget_table(rows, chapter)``.
        manifest: the grid's manifest (``rows.attrs["manifest"]``).
        chapter: the chapter's (steps, restarts), as given to ``budget_table``.
        tolerance: the relative move of one more doubling under which a budget counts as converged.
        name: what ``chapter`` is, in the sentences ("the budget of this build's own attacks").

    Returns:
        ``ch7_budget_n`` (images per data set), ``ch7_budget_grid`` (the grid in words), ``ch7_budget_cost`` (how
        long the grid took, where), ``ch7_budget_failed`` (the grid's cells where no iterate kept the label),
        ``ch7_budget_drivers`` (what moves the statistic: steps or restarts), ``ch7_budget_chapter`` (the chapter's
        budget against the best of the grid), ``ch7_budget_rar`` (whether one more doubling moves RAR's budget by
        under ``tolerance``, and where not), ``ch7_budget_short`` (the chapter's gap in one clause, for the Findings
        page).
    """
    config, n = manifest["config"], len(table)
    over = table[table["chapter_gap"].map(lambda i: i.sign > 0)]
    worst = table.loc[table["chapter_gap"].map(lambda i: i.estimate).idxmax()]
    if chapter[0] is None and chapter[1] is None:
        chapter_words = "RAR's, which the method comparison uses"
    else:
        steps, restarts = chapter[0] or "RAR's", chapter[1] or "RAR's"
        chapter_words = f"{steps} steps and {restarts} restart{'' if restarts == 1 else 's'}"
    said = (f"with {name} ({chapter_words}) the top-100 intersection is higher than the best of the grid on "
            f"{_of(len(over), n)} models")
    if len(over):
        said += f", by up to {worst['chapter_gap']} on {_model(worst)}"
    if len(over) < n:
        said += (f"; on {'the other' if len(over) else 'all'} {n - len(over)} the difference is not "
                 f"distinguishable from zero with {config['n_images']} images")
    moves = table[["more_steps", "more_restarts"]].abs().max(axis=1, skipna=True)
    unsettled = table[moves >= tolerance].assign(move=moves[moves >= tolerance]).sort_values("move", ascending=False)
    rar_budgets = ", ".join(f"{b} on {DATASET_NAMES.get(d, d)}" for d, b in
                            table.drop_duplicates("dataset")[["dataset", "rar_budget"]].itertuples(index=False))
    rar = (f"from RAR's budget (steps × restarts: {rar_budgets}), doubling the steps, or raising the restarts to "
           f"{int(rows['restarts'].max())}, moves the mean by less than {tolerance:.0%} on "
           f"{_of(n - len(unsettled), n)} models")
    if len(unsettled):
        rar += (". It has not converged on " + ", ".join(f"{_model(r)} ({r.move:.1%})" for _, r in unsettled.iterrows())
                + f"; there RAR's budget leaves up to {unsettled['rar_gap'].map(lambda i: i.estimate).max():.3g} "
                "more of the top-100 intersection than the best of the grid")
    hardware = manifest["hardware"]
    cost = (f"{manifest['seconds']['total'] / 3600:.1f} hours on {hardware.get('cpu_count', '?')} cores of "
            f"{hardware.get('processor', 'an unnamed CPU')}")
    failed = ~rows["label_kept"].astype(bool)
    failed_words = (f"{int(failed.sum()):,} of the grid's {len(rows):,} pairs of an image and a budget, on "
                    f"{rows.loc[failed, 'unit'].nunique()} models")
    few, most = int(rows["steps"].min()), int(rows["steps"].max())
    by_steps, by_restarts = table["steps_effect"].abs().mean(), table["restarts_effect"].abs().mean()
    drivers = (f"at a fixed total length, going from {few} to {most} steps (one restart) changes the mean by "
               f"{by_steps:.3g} on average over the {n} models, and going from one to {int(rows['restarts'].max())} "
               f"restarts (the chapter's steps) by {by_restarts:.3g}")
    if max(by_steps, by_restarts) > 2 * min(by_steps, by_restarts):
        drivers += f": {'restarts' if by_restarts > by_steps else 'steps'} matter more"
    who = "RAR's budget, which the method comparison uses," if chapter == (None, None) else "the chapter's budget"
    short = (f"{who} leaves a top-100 intersection up to {sig(worst['chapter_gap'].estimate)} higher "
             f"than the best of the grid measured (distinguishable, uncorrected, on {_of(len(over), n)} seed-0 "
             "models)")
    return {"ch7_budget_n": config["n_images"], "ch7_budget_cost": cost, "ch7_budget_chapter": said,
            "ch7_budget_short": short, "ch7_budget_rar": rar, "ch7_budget_failed": failed_words,
            "ch7_budget_drivers": drivers,
            "ch7_budget_grid": (f"{', '.join(map(str, config['steps']))} steps and "
                                f"{', '.join(map(str, config['restarts']))} restarts")}


def budget_figure(summary_rows: pd.DataFrame):
    """The mean top-k intersection against IFIA's steps (``summary``'s rows).

    One panel per data set, one colour per training method, one line style per number of restarts.
    """
    from .style import method_color

    datasets = list(dict.fromkeys(summary_rows["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6), sharey=True, squeeze=False)
    styles = dict(zip(sorted(summary_rows["restarts"].unique()), (":", "--", "-"), strict=False))
    for ax, ds in zip(axes[0], datasets, strict=True):
        part = summary_rows[summary_rows["dataset"] == ds]
        for (method, restarts), line in part.groupby(["method", "restarts"], sort=False):
            ax.plot(line["steps"], line["mean"], styles.get(restarts, "-"), marker="o", ms=3,
                    color=method_color(method), label=METHOD_NAMES.get(method, method) if restarts == 1 else None)
        ax.set_xscale("log")
        ax.set_xticks(sorted(part["steps"].unique()), labels=map(str, sorted(part["steps"].unique())))
        ax.minorticks_off()
        ax.set_title(DATASET_NAMES.get(ds, ds))
        ax.set_xlabel("IFIA steps (same total length)")
    axes[0][0].set_ylabel("top-100 intersection (mean)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="0.3", ls=ls) for ls in styles.values()]
    labels += [f"{r} restart{'s' if r > 1 else ''}" for r in styles]
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig


def budget_text_table(table: pd.DataFrame, chapter: tuple[int, int]) -> pd.DataFrame:
    """``budget_table`` for the page: means as numbers, the chapter's gap with its interval, signed moves in percent.

    ``chapter`` ``(None, None)`` (the chapter uses RAR's budget): one column of means for both.
    """
    def percent(v):
        return "–" if pd.isna(v) else "0.0%" if abs(v) < 5e-4 else f"{v:+.1%}"  # no "-0.0%"

    means = {"RAR's (the chapter's)": table["rar"]} if chapter == (None, None) else {
        "this chapter's": table["chapter"], "RAR's": table["rar"]}
    gap = "RAR's minus best" if chapter == (None, None) else "this chapter's minus best"
    return pd.DataFrame({
        "data set": table["dataset"].map(lambda d: DATASET_NAMES.get(d, d)),
        "method": table["method"].map(lambda m: METHOD_NAMES.get(m, m)),
        **{name: column.map(lambda i: i.estimate) for name, column in means.items()},
        "best of the grid": table["best"].map(lambda i: i.estimate),
        gap: table["chapter_gap"].map(str),
        "RAR's: change with 2× steps": table["more_steps"].map(percent),
        "RAR's: change with 5 restarts": table["more_restarts"].map(percent)})
